"""The built-in ``image-cnn`` space: a small CNN family × pruning × quantization × distillation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nascompress.compression.plan import CompressionPlan, find_knob
from nascompress.spaces._base import SearchSpace
from nascompress.spaces._dimensions import Categorical, Dimension, Float, Int
from nascompress.spaces._registry import register_space


def _all_values(dimension: Dimension) -> list[Any] | None:
    grid = dimension.grid()
    if grid is not None:
        return grid
    return [dimension.low, dimension.high]  # type: ignore[attr-defined]


def dimension_problem(key: str, dimension: Dimension) -> str | None:
    """Why ``dimension`` is not a usable range for the knob ``key`` (or ``None``).

    Shared by every built-in space that exposes these knobs. Compression knobs follow
    the rules of :data:`nascompress.compression.plan.KNOBS`; the architecture and
    distillation rules are the spaces' own.
    """
    values = _all_values(dimension)
    if any(isinstance(v, bool) for v in values):
        return "values must be numbers or names, not true/false"
    knob = find_knob(key)
    discrete = key.startswith("arch/") or (knob is not None and knob.discrete)
    if discrete and dimension.grid() is None:
        # A continuous range is checked by its ends only, and would propose 4.37 bits.
        return "must be a categorical or integer dimension (a finite set of values)"
    if knob is not None:
        if any(not knob.accepts(v) for v in values):
            return f"every value {knob.requirement}"
    elif key == "distill/feature_weight":
        if any(not v >= 0 for v in values):
            return "feature distillation weight must be >= 0"
    elif key == "distill/alpha":
        if any(not 0.0 <= v <= 1.0 for v in values):
            return "distillation alpha must lie in [0, 1]"
    elif key == "distill/temperature":
        if any(not v > 0 for v in values):
            return "distillation temperature must be > 0"
    elif key in ("arch/depth", "arch/width", "arch/kernel"):
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
            return f"{key.split('/')[1]} values must be integers >= 1"
        if key == "arch/kernel" and any(v % 2 == 0 for v in values):
            return "kernel sizes must be odd (so 'same' padding keeps the feature map size)"
    return None


def compression_dimensions() -> dict[str, Dimension]:
    """The default ranges of the compression knobs, shared by the built-in spaces."""
    return {
        "prune/ratio": Float(0.0, 0.7, step=0.05),
        "prune/importance": Categorical(["l1", "taylor", "fpgm"]),
        "prune/sparsity": Float(0.0, 0.8, step=0.1),
        "quant/bits": Categorical([2, 4, 6, 8, 32]),
        "quant/scheme": Categorical(["symmetric", "affine", "kmeans"]),
        "quant/activations": Categorical([8, 32]),
        "lowrank/ratio": Float(0.25, 1.0, step=0.25),
        "distill/alpha": Float(0.0, 0.9, step=0.1),
        "distill/temperature": Float(1.0, 8.0, step=0.5),
        "distill/feature_weight": Float(0.0, 1.0, step=0.25),
    }


def too_few_channels(params: Mapping[str, Any], channels: int, *, min_channels: int,
                     where: str) -> str | None:
    """Why ``prune/ratio`` leaves fewer than ``min_channels`` of ``channels`` (or ``None``).

    ``where`` names the layer in the reason (``"arch/width=16"``, ``"the narrowest
    stage's 8"``). Structured pruning removes the same fraction from every layer, so the
    narrowest one decides.
    """
    kept = int(channels * (1.0 - params["prune/ratio"]))
    if kept >= min_channels:
        return None
    return (f"prune/ratio={params['prune/ratio']} leaves {kept} of {where} channels; at "
            f"least min_channels={min_channels} must remain")


@register_space("image-cnn")
class ImageCNNSpace(SearchSpace):
    """Stacks of ``conv(k×k) → BatchNorm → ReLU → max-pool`` blocks and a linear head.

    Dimensions:
        ``arch/depth`` number of conv blocks; ``arch/width`` channels per block;
        ``arch/kernel`` kernel size;
        ``prune/ratio`` fraction of channels physically removed from every prunable
        conv; ``prune/importance`` how channels are ranked (l1, l2, taylor, fpgm);
        ``prune/sparsity`` fraction of the remaining weights zeroed (unstructured:
        smaller artifact through a sparse encoding, no latency gain);
        ``quant/bits`` weight bit-width (32 = float); ``quant/scheme`` symmetric,
        affine or kmeans (non-uniform codebook); ``quant/activations`` 8 to fake-quantize
        layer inputs to 8 bits, 32 to keep them float;
        ``lowrank/ratio`` rank kept by SVD / Tucker-2 factorization (1.0 = none);
        ``distill/alpha`` weight of the soft-label loss (0 = no distillation);
        ``distill/temperature`` softmax temperature of that loss;
        ``distill/feature_weight`` weight of the intermediate-feature loss (0 = none).

    With ``mixed_precision=True``, ``quant/bits`` is replaced by one bit-width per layer:
    ``quant/bits/block0`` .. ``quant/bits/block{max_depth-1}`` and ``quant/bits/head``
    (dimensions of blocks a shallower model does not have are ignored).

    Joint constraint: pruning must leave at least ``min_channels`` channels per block,
    so a narrow network cannot be pruned as hard as a wide one. ``quant/scheme`` is
    ignored for layers kept at 32 bits.

    Args:
        dimensions: overrides of the default ranges.
        min_channels: smallest channel count a block may keep after pruning.
        mixed_precision: search a bit-width per layer instead of one for the model.
    """

    name = "image-cnn"

    def __init__(
        self,
        *,
        dimensions: Mapping[str, Any] | None = None,
        min_channels: int = 4,
        mixed_precision: bool = False,
    ):
        if not isinstance(min_channels, int) or isinstance(min_channels, bool) or min_channels < 1:
            raise ValueError(
                f"space.min_channels must be an integer >= 1, but got {min_channels!r}"
            )
        if not isinstance(mixed_precision, bool):
            raise ValueError(
                f"space.mixed_precision must be true or false, but got {mixed_precision!r}"
            )
        self.min_channels = min_channels
        self.mixed_precision = mixed_precision
        super().__init__(dimensions=dimensions)

    def default_dimensions(self) -> dict[str, Dimension]:
        dims: dict[str, Dimension] = {
            "arch/depth": Int(1, 3),
            "arch/width": Categorical([8, 16, 32, 64]),
            "arch/kernel": Categorical([3, 5]),
            **compression_dimensions(),
        }
        if getattr(self, "mixed_precision", False):
            per_layer = dims.pop("quant/bits")
            max_depth = 3
            for block in range(max_depth):
                dims[f"quant/bits/block{block}"] = per_layer
            dims["quant/bits/head"] = per_layer
        return dims

    def layer_bits(self, params: Mapping[str, Any], layer_names: list[str]) -> dict[str, int]:
        """Bit-width per quantizable layer (conv blocks in order, then the head)."""
        return CompressionPlan.from_params(params).bits_by_top(layer_names)

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        return dimension_problem(key, dimension)

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        return too_few_channels(params, params["arch/width"], min_channels=self.min_channels,
                                where=f"arch/width={params['arch/width']}")

    def build_model(
        self, params: Mapping[str, Any], *, input_shape: tuple[int, ...], num_classes: int
    ):
        import torch.nn as nn

        channels, height, width = input_shape
        depth, filters, kernel = params["arch/depth"], params["arch/width"], params["arch/kernel"]
        layers: list[nn.Module] = []
        in_channels = channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(in_channels, filters, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
            ]
            if min(height, width) >= 2:  # pool while there is something left to pool
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = filters
        layers += [nn.Flatten(), nn.Linear(filters * height * width, num_classes)]
        return nn.Sequential(*layers)
