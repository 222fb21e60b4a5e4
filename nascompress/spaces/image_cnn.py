"""The built-in ``image-cnn`` space: a small CNN family × pruning × quantization × distillation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nascompress.spaces._base import SearchSpace
from nascompress.spaces._dimensions import Categorical, Dimension, Float, Int
from nascompress.spaces._registry import register_space

#: Bit-widths the quantizer supports; 32 means "keep float32 weights".
SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 32)


def _all_values(dimension: Dimension) -> list[Any] | None:
    grid = dimension.grid()
    if grid is not None:
        return grid
    return [dimension.low, dimension.high]  # type: ignore[attr-defined]


@register_space("image-cnn")
class ImageCNNSpace(SearchSpace):
    """Stacks of ``conv(k×k) → BatchNorm → ReLU → max-pool`` blocks and a linear head.

    Dimensions:
        ``arch/depth`` number of conv blocks; ``arch/width`` channels per block;
        ``arch/kernel`` kernel size; ``prune/ratio`` fraction of channels physically
        removed from every prunable conv; ``quant/bits`` weight bit-width (32 = float);
        ``distill/alpha`` weight of the soft-label loss (0 = no distillation);
        ``distill/temperature`` softmax temperature of that loss.

    Joint constraint: pruning must leave at least ``min_channels`` channels per block,
    so a narrow network cannot be pruned as hard as a wide one.

    Args:
        dimensions: overrides of the default ranges.
        min_channels: smallest channel count a block may keep after pruning.
    """

    name = "image-cnn"

    def __init__(self, *, dimensions: Mapping[str, Any] | None = None, min_channels: int = 4):
        if not isinstance(min_channels, int) or isinstance(min_channels, bool) or min_channels < 1:
            raise ValueError(
                f"space.min_channels must be an integer >= 1, but got {min_channels!r}"
            )
        self.min_channels = min_channels
        super().__init__(dimensions=dimensions)

    def default_dimensions(self) -> dict[str, Dimension]:
        return {
            "arch/depth": Int(1, 3),
            "arch/width": Categorical([8, 16, 32, 64]),
            "arch/kernel": Categorical([3, 5]),
            "prune/ratio": Float(0.0, 0.7, step=0.05),
            "quant/bits": Categorical([2, 4, 6, 8, 32]),
            "distill/alpha": Float(0.0, 0.9, step=0.1),
            "distill/temperature": Float(1.0, 8.0, step=0.5),
        }

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        values = _all_values(dimension)
        if key == "prune/ratio":
            if any(not 0.0 <= v < 1.0 for v in values):
                return "every pruning ratio must lie in [0, 1) (1.0 would remove every channel)"
        elif key == "quant/bits":
            if any(v not in SUPPORTED_BITS or isinstance(v, bool) for v in values):
                return f"bit-widths must be among {list(SUPPORTED_BITS)} (32 keeps float weights)"
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

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        kept = int(params["arch/width"] * (1.0 - params["prune/ratio"]))
        if kept < self.min_channels:
            return (
                f"prune/ratio={params['prune/ratio']} leaves {kept} of arch/width="
                f"{params['arch/width']} channels; at least min_channels={self.min_channels} "
                "must remain"
            )
        return None

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
