"""Array-based training helpers (tensors instead of loaders), for scripts and benchmarks.

The trainer lives in :mod:`nascompress.training` and reads loaders; these wrap arrays
(tensors ``x``, ``y``) in an :class:`~nascompress.data.ArrayLoader` and call it, with the
same results as before.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nascompress.data import ArrayLoader, eval_batch_size
from nascompress.training import Distillation, seed_everything
from nascompress.training import accuracy as _accuracy
from nascompress.training import predict_logits as _predict_logits
from nascompress.training import train_epochs as _train_epochs

__all__ = ["accuracy", "predict_logits", "seed_everything", "train_epochs"]


def train_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    teacher_logits: torch.Tensor | None = None,
    alpha: float = 0.0,
    temperature: float = 1.0,
    teacher_model: nn.Module | None = None,
    feature_distiller: nn.Module | None = None,
    feature_weight: float = 0.0,
    on_epoch_end: Callable[[int], None] | None = None,
    on_batch_end: Callable[[], None] | None = None,
) -> None:
    """Train ``model`` with Adam and a cosine over all steps, on ``x``'s device."""
    distill = None
    if alpha > 0 or (feature_distiller is not None and feature_weight > 0):
        distill = Distillation(alpha=alpha, temperature=temperature, teacher=teacher_model,
                               teacher_logits=teacher_logits,
                               feature_distiller=feature_distiller,
                               feature_weight=feature_weight)
    _train_epochs(model, ArrayLoader(x, y, batch_size=batch_size, shuffle=True,
                                     generator=generator),
                  epochs=epochs, lr=lr, device=str(x.device), distill=distill,
                  on_epoch_end=on_epoch_end, on_batch_end=on_batch_end)


def predict_logits(model: nn.Module, x: torch.Tensor, *,
                   batch_size: int | None = None) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode (batches of ``batch_size``, by default
    :func:`~nascompress.data.eval_batch_size`'s)."""
    batch_size = batch_size or eval_batch_size(tuple(x.shape[1:]), str(x.device))
    return _predict_logits(model, ArrayLoader(x, x.new_zeros(len(x)), batch_size=batch_size),
                           device=str(x.device))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    batch_size = eval_batch_size(tuple(x.shape[1:]), str(x.device))
    return _accuracy(model, ArrayLoader(x, y, batch_size=batch_size), device=str(x.device))
