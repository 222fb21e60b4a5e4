"""ResNet-style networks: basic or bottleneck residual blocks in stages (He et al.)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

BLOCKS = ("basic", "bottleneck")


class BasicBlock(nn.Module):
    """``3×3 → BN → ReLU → 3×3 → BN`` plus the shortcut, then ReLU; out = ``width``."""

    def __init__(self, in_channels: int, width: int, *, stride: int) -> None:
        super().__init__()
        self.out_channels = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.shortcut = _shortcut(in_channels, width, stride)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """``1×1 → 3×3 (stride) → 1×1 (×expansion)`` plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, *, stride: int) -> None:
        super().__init__()
        out = width * self.expansion
        self.out_channels = out
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
        self.shortcut = _shortcut(in_channels, out, stride)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResNet(nn.Module):
    """3×3 stem, residual stages, global average pooling, linear classifier.

    Args:
        in_channels: channels of the input images.
        num_classes: logits produced.
        block: ``"basic"`` or ``"bottleneck"``.
        blocks: blocks per stage.
        widths: width per stage (a bottleneck stage outputs 4× its width).
        strides: stride of each stage's first block.
        stem_channels: output channels of the stem (default: the first stage's width).
    """

    def __init__(self, *, in_channels: int, num_classes: int, block: str,
                 blocks: Sequence[int], widths: Sequence[int], strides: Sequence[int],
                 stem_channels: int | None = None) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, but got {block!r}")
        if not len(blocks) == len(widths) == len(strides):
            raise ValueError(
                "blocks, widths and strides must have one entry per stage, but got "
                f"(blocks={list(blocks)}, widths={list(widths)}, strides={list(strides)})")
        kind = BasicBlock if block == "basic" else Bottleneck
        stem = stem_channels or widths[0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU())
        layers: list[nn.Module] = []
        channels = stem
        for count, width, stride in zip(blocks, widths, strides, strict=True):
            for index in range(count):
                layer = kind(channels, width, stride=stride if index == 0 else 1)
                layers.append(layer)
                channels = layer.out_channels
        self.stages = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.stages(self.stem(x))))
