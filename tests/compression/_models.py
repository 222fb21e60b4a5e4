"""Tiny models and inputs shared by the compression tests.

Imports torch: test modules import this after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def tiny_cnn(
    seed: int = 0, *, widths: Sequence[int] = (8, 8), inplace: bool = False
) -> nn.Sequential:
    """Conv -> BN -> ReLU -> MaxPool blocks, one per width, then Flatten -> Linear.

    For 1x8x8 inputs and 10 classes: the default has 8 and 8 channels, with the
    quantizable layers "0", "4" and "9". The weights come from ``torch.manual_seed(seed)``.
    """
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c_in, size = 1, 8
    for width in widths:
        layers += [
            nn.Conv2d(c_in, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=inplace),
            nn.MaxPool2d(2),
        ]
        c_in, size = width, size // 2
    layers += [nn.Flatten(), nn.Linear(c_in * size * size, 10)]
    return nn.Sequential(*layers)


def wide_cnn(seed: int = 0) -> nn.Sequential:
    """8 then 16 channels, so the two blocks prune to different widths."""
    return tiny_cnn(seed, widths=(8, 16))


def image_cnn(seed: int = 0, *, depth: int = 2, width: int = 8) -> nn.Sequential:
    """The image-cnn family: ``depth`` blocks of ``width`` channels, in-place ReLUs."""
    return tiny_cnn(seed, widths=(width,) * depth, inplace=True)


def image_batch(n: int, *, seed: int = 1) -> torch.Tensor:
    """``n`` random 1x8x8 images, the same for the same ``n`` and ``seed``."""
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
