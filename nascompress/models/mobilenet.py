"""MobileNetV2/V3-style networks: inverted residual stages, depthwise convolutions,
squeeze-excite and hard-swish.

Each block is ``1×1 expand → k×k depthwise → (squeeze-excite) → 1×1 project`` with a
residual connection when the block keeps its shape (MobileNetV2). Later stages use
hard-swish and the gate of squeeze-excite is a hard sigmoid (MobileNetV3), both cheap on
integer kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "hswish": nn.Hardswish}


def make_divisible(value: float, divisor: int = 8, *, minimum: int | None = None) -> int:
    """``value`` rounded to a multiple of ``divisor`` (never more than 10 % below it).

    Channel counts that are multiples of 8 map onto SIMD lanes and integer kernels; the
    rule is MobileNet's own.
    """
    minimum = divisor if minimum is None else minimum
    rounded = max(minimum, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``depth`` blocks of ``channels`` output channels.

    The first block has stride ``stride``; ``expand`` multiplies the block's input
    channels inside it; ``kernel`` is the depthwise kernel size (odd).
    """

    channels: int
    depth: int
    expand: int
    kernel: int
    se: bool
    stride: int
    activation: str = "relu"


class SqueezeExcite(nn.Module):
    """Channel attention: global average → reduce → ReLU → expand → hard sigmoid → scale."""

    def __init__(self, channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        squeezed = make_divisible(channels / reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """``1×1 expand → k×k depthwise (stride) → (SE) → 1×1 project``, plus the input when
    the block keeps its shape."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expand: int,
                 kernel: int, se: bool, activation: str) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        hidden = in_channels * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       act()]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2,
                             groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), act()]
        if se:
            layers.append(SqueezeExcite(hidden))
        layers += [nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNet(nn.Module):
    """Stem convolution, inverted residual stages, a 1×1 head convolution, pooling, linear.

    Args:
        in_channels: channels of the input images.
        num_classes: logits produced.
        stages: the stages, in order.
        stem_channels: output channels of the 3×3 stem convolution.
        head_channels: output channels of the 1×1 convolution before pooling.
        stem_stride: stride of the stem (2 for large images, 1 for small ones).
    """

    def __init__(self, *, in_channels: int, num_classes: int, stages: Sequence[StageSpec],
                 stem_channels: int, head_channels: int, stem_stride: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels), nn.Hardswish())
        blocks: list[nn.Module] = []
        channels = stem_channels
        for stage in stages:
            for index in range(stage.depth):
                blocks.append(InvertedResidual(
                    channels, stage.channels, stride=stage.stride if index == 0 else 1,
                    expand=stage.expand, kernel=stage.kernel, se=stage.se,
                    activation=stage.activation))
                channels = stage.channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(channels, head_channels, 1, bias=False), nn.BatchNorm2d(head_channels),
            nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))


def stage_strides(input_size: int, requested: Sequence[int], *, stem_stride: int = 1) -> list[int]:
    """The strides actually used: a stage halves the feature map only while it is at least
    4 pixels wide, so small inputs (8×8) still reach the head with a 2×2 map or more."""
    size = -(-input_size // stem_stride)
    strides = []
    for stride in requested:
        use = stride if stride == 1 or size >= 4 else 1
        strides.append(use)
        size = -(-size // use)
    return strides
