"""The built-in ``resnet`` space: basic or bottleneck residual stages × the compression knobs."""

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

#: Width choices per stage and the stride of each stage's first block (CIFAR-style
#: ResNet: three stages, the later ones halving the map and widening).
DEFAULT_WIDTHS = ((8, 16, 32), (16, 32, 64), (32, 64, 128))
DEFAULT_STRIDES = (1, 2, 2)


@register_space("resnet")
class ResNetSpace(SearchSpace):
    """Residual stages (He et al.) with the compression knobs of ``image-cnn``.

    Dimensions:
        ``arch/block`` ``basic`` (two 3×3 convolutions) or ``bottleneck`` (1×1, 3×3,
        1×1 widening 4×); per stage ``s``: ``arch/stage{s}/blocks`` and
        ``arch/stage{s}/width``; then the compression knobs of ``image-cnn``
        (``prune/*``, ``quant/*``, ``lowrank/ratio``, ``distill/*``). Pruning keeps the
        channels joined by residual additions consistent (one group per stage).

    Any input size and channel count: a stage strides by 2 only while the map is at
    least 4 pixels wide.

    Joint constraint: pruning must leave at least ``min_channels`` channels in the
    narrowest stage.

    Weight sharing (:meth:`build_supernet`; see :mod:`nascompress.supernet.resnet`): per
    stage ``arch/stage{s}/width`` and ``arch/stage{s}/blocks``, and ``quant/bits`` /
    ``quant/scheme`` are elastic. ``arch/block`` is not (basic and bottleneck blocks
    share no weights): the supernet covers one block type, so ``arch/block`` must hold a
    single value (:meth:`weight_sharing_problem`).

    Args:
        dimensions: overrides of the default ranges.
        widths: the width choices of each stage (one list per stage).
        strides: the stride of each stage's first block.
        max_blocks: the largest ``arch/stage{s}/blocks``.
        min_channels: smallest channel count a stage may keep after pruning.
    """

    name = "resnet"

    def __init__(self, *, dimensions: Mapping[str, Any] | None = None,
                 widths: Sequence[Sequence[int]] = DEFAULT_WIDTHS,
                 strides: Sequence[int] = DEFAULT_STRIDES, max_blocks: int = 3,
                 min_channels: int = 4):
        if (not isinstance(widths, Sequence) or not widths or not all(
                isinstance(w, Sequence) and w and all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in w)
                for w in widths)):
            raise ValueError("space.widths must be a non-empty list of width choices (lists "
                             f"of integers >= 1), one per stage, but got {widths!r}")
        if (not isinstance(strides, Sequence) or len(strides) != len(widths)
                or any(s not in (1, 2) for s in strides)):
            raise ValueError(f"space.strides must give 1 or 2 for each of the {len(widths)} "
                             f"stages, but got {strides!r}")
        for name, value in (("max_blocks", max_blocks), ("min_channels", min_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"space.{name} must be an integer >= 1, but got {value!r}")
        self.widths = [list(w) for w in widths]
        self.strides = list(strides)
        self.max_blocks = max_blocks
        self.min_channels = min_channels
        super().__init__(dimensions=dimensions)

    def default_dimensions(self) -> dict[str, Dimension]:
        dims: dict[str, Dimension] = {"arch/block": Categorical(["basic", "bottleneck"])}
        for index, choices in enumerate(self.widths):
            dims[f"arch/stage{index}/blocks"] = Int(1, self.max_blocks)
            dims[f"arch/stage{index}/width"] = Categorical(choices)
        return {**dims, **compression_dimensions()}

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        if key == "arch/block":
            values = dimension.grid() or []
            return (None if values and set(values) <= {"basic", "bottleneck"}
                    else "blocks must be among ['basic', 'bottleneck']")
        if key.startswith("arch/stage"):
            key = "arch/" + key.rsplit("/", 1)[1].replace("blocks", "depth")
        return dimension_problem(key, dimension)

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        narrowest = min(params[f"arch/stage{i}/width"] for i in range(len(self.widths)))
        return too_few_channels(params, narrowest, min_channels=self.min_channels,
                                where=f"the narrowest stage's {narrowest}")

    def build_model(self, params: Mapping[str, Any], *, input_shape: tuple[int, ...],
                    num_classes: int):
        from nascompress.models.mobilenet import stage_strides
        from nascompress.models.resnet import ResNet

        channels, height, width = input_shape
        stages = range(len(self.widths))
        return ResNet(
            in_channels=channels, num_classes=num_classes, block=params["arch/block"],
            blocks=[params[f"arch/stage{i}/blocks"] for i in stages],
            widths=[params[f"arch/stage{i}/width"] for i in stages],
            strides=stage_strides(min(height, width), self.strides))

    def elastic_dimensions(self) -> tuple[str, ...]:
        keys = [f"arch/stage{index}/{part}" for index in range(len(self.widths))
                for part in ("blocks", "width")]
        dims = self.dimensions()
        return (*keys, *(key for key in ("quant/bits", "quant/scheme") if key in dims))

    def weight_sharing_problem(self) -> str | None:
        blocks = self.dimensions()["arch/block"].grid() or []
        if len(blocks) == 1:
            return None
        return (f"space.dimensions.arch/block: weight sharing covers one block type, but "
                f"got {blocks}; set it to one, e.g. {{type: categorical, choices: "
                f"[{blocks[0]}]}}, or use evaluator 'compress-train'")

    def build_supernet(self, *, input_shape: tuple[int, ...], num_classes: int):
        """The elastic supernet (:class:`~nascompress.supernet.resnet.ElasticResNet`)."""
        from nascompress.supernet.resnet import ElasticResNet

        return ElasticResNet(self, input_shape=input_shape, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "widths": self.widths, "strides": self.strides,
                "max_blocks": self.max_blocks, "min_channels": self.min_channels}
