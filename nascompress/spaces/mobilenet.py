"""The built-in ``mobilenet`` space: MobileNetV2/V3-style stages × the compression knobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nascompress.spaces._base import SearchSpace
from nascompress.spaces._dimensions import Categorical, Dimension, Int
from nascompress.spaces._registry import register_space
from nascompress.spaces.image_cnn import (
    compression_dimensions,
    dimension_problem,
    too_few_channels,
)

#: Output channels of each stage at width multiplier 1.0, and the stride of its first
#: block, for small images (MobileNetV3-Small's progression, one stage fewer).
DEFAULT_STAGES = ((16, 1), (24, 2), (40, 2), (64, 2))
#: Stages from this index on use hard-swish (MobileNetV3 uses ReLU in the early ones).
HSWISH_FROM = 2


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"space.{name} must be an integer >= 1, but got {value!r}")


@register_space("mobilenet")
class MobileNetSpace(SearchSpace):
    """Inverted residual stages (MobileNetV2/V3) with the compression knobs of ``image-cnn``.

    Dimensions:
        ``arch/width_mult`` scales every stage's channels (rounded to multiples of 8);
        per stage ``s``: ``arch/stage{s}/depth`` blocks, ``arch/stage{s}/expand`` the
        expansion ratio, ``arch/stage{s}/kernel`` the depthwise kernel (3, 5 or 7),
        ``arch/stage{s}/se`` squeeze-excite off (0) or on (1);
        then the compression knobs of ``image-cnn`` (``prune/*``, ``quant/*``,
        ``lowrank/ratio``, ``distill/*``), with the same meaning and validation.
        Pruning keeps residual-coupled channels consistent and removes a depthwise
        convolution's channels together with the channels that feed it; low-rank
        factorization leaves depthwise (grouped) and 1×1 convolutions alone.

    Any input size and channel count: a stage halves the feature map only while it is
    at least 4 pixels wide, and the stem strides by 2 only for images of 64 pixels or
    more.

    Joint constraint: pruning must leave at least ``min_channels`` channels in the
    narrowest stage.

    Weight sharing: every ``arch/`` key and ``quant/bits`` / ``quant/scheme`` are
    elastic (:meth:`build_supernet`; see :mod:`nascompress.supernet.mobilenet`).

    Args:
        dimensions: overrides of the default ranges.
        stages: ``[(channels, stride), ...]`` at width multiplier 1.0.
        max_depth: the largest ``arch/stage{s}/depth``.
        stem_channels: stem output channels at width multiplier 1.0.
        head_channels: channels of the 1×1 convolution before pooling (not scaled).
        min_channels: smallest channel count a stage may keep after pruning.
    """

    name = "mobilenet"

    def __init__(self, *, dimensions: Mapping[str, Any] | None = None,
                 stages: Sequence[Sequence[int]] = DEFAULT_STAGES, max_depth: int = 3,
                 stem_channels: int = 16, head_channels: int = 128, min_channels: int = 4):
        if not isinstance(stages, Sequence) or not stages or not all(
                isinstance(s, Sequence) and len(s) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in s)
                for s in stages):
            raise ValueError(
                "space.stages must be a non-empty list of [channels, stride] pairs of "
                f"integers >= 1, but got {stages!r}")
        for name, value in (("max_depth", max_depth), ("stem_channels", stem_channels),
                            ("head_channels", head_channels), ("min_channels", min_channels)):
            _positive_int(name, value)
        self.stages = [tuple(s) for s in stages]
        self.max_depth = max_depth
        self.stem_channels = stem_channels
        self.head_channels = head_channels
        self.min_channels = min_channels
        super().__init__(dimensions=dimensions)

    def default_dimensions(self) -> dict[str, Dimension]:
        dims: dict[str, Dimension] = {"arch/width_mult": Categorical([0.5, 0.75, 1.0])}
        for index in range(len(self.stages)):
            dims[f"arch/stage{index}/depth"] = Int(1, self.max_depth)
            dims[f"arch/stage{index}/expand"] = Categorical([2, 4, 6])
            dims[f"arch/stage{index}/kernel"] = Categorical([3, 5, 7])
            dims[f"arch/stage{index}/se"] = Categorical([0, 1])
        return {**dims, **compression_dimensions()}

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        if key == "arch/width_mult":
            values = dimension.grid() or []
            if not values or any(isinstance(v, bool) or not isinstance(v, int | float)
                                 or not 0 < v <= 4 for v in values):
                return "width multipliers must be a finite set of numbers in (0, 4]"
            return None
        if key.endswith("/se"):
            values = dimension.grid() or []
            return None if values and set(values) <= {0, 1} else "must choose among 0 and 1"
        if key.startswith("arch/stage"):
            key = "arch/" + key.rsplit("/", 1)[1].replace("expand", "width")
        return dimension_problem(key, dimension)

    def stage_channels(self, width_mult: float) -> list[int]:
        from nascompress.models.mobilenet import make_divisible

        return [make_divisible(channels * width_mult) for channels, _ in self.stages]

    def stage_activation(self, index: int) -> str:
        """``"relu"`` for the early stages, ``"hswish"`` from :data:`HSWISH_FROM` on."""
        return "hswish" if index >= HSWISH_FROM else "relu"

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        narrowest = min(self.stage_channels(params["arch/width_mult"]))
        return too_few_channels(params, narrowest, min_channels=self.min_channels,
                                where=f"the narrowest stage's {narrowest}")

    def build_model(self, params: Mapping[str, Any], *, input_shape: tuple[int, ...],
                    num_classes: int):
        from nascompress.models.mobilenet import (
            MobileNet,
            StageSpec,
            make_divisible,
            stage_strides,
        )

        channels, height, width = input_shape
        size = min(height, width)
        stem_stride = 2 if size >= 64 else 1
        strides = stage_strides(size, [s for _, s in self.stages], stem_stride=stem_stride)
        widths = self.stage_channels(params["arch/width_mult"])
        stages = [
            StageSpec(channels=widths[i], depth=params[f"arch/stage{i}/depth"],
                      expand=params[f"arch/stage{i}/expand"],
                      kernel=params[f"arch/stage{i}/kernel"],
                      se=bool(params[f"arch/stage{i}/se"]), stride=strides[i],
                      activation=self.stage_activation(i))
            for i in range(len(self.stages))
        ]
        return MobileNet(
            in_channels=channels, num_classes=num_classes, stages=stages,
            stem_channels=make_divisible(self.stem_channels * params["arch/width_mult"]),
            head_channels=self.head_channels, stem_stride=stem_stride)

    def elastic_dimensions(self) -> tuple[str, ...]:
        keys = ["arch/width_mult"]
        for index in range(len(self.stages)):
            keys += [f"arch/stage{index}/{part}" for part in ("depth", "expand", "kernel", "se")]
        dims = self.dimensions()
        return (*keys, *(key for key in ("quant/bits", "quant/scheme") if key in dims))

    def build_supernet(self, *, input_shape: tuple[int, ...], num_classes: int):
        """The elastic supernet (:class:`~nascompress.supernet.mobilenet.ElasticMobileNet`)."""
        from nascompress.supernet.mobilenet import ElasticMobileNet

        return ElasticMobileNet(self, input_shape=input_shape, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "stages": [list(s) for s in self.stages],
                "max_depth": self.max_depth, "stem_channels": self.stem_channels,
                "head_channels": self.head_channels, "min_channels": self.min_channels}
