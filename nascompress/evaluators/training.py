"""A small, deterministic supervised training loop with optional soft-label distillation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nascompress.compression import distillation_loss


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a generator for data shuffling."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


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
    """Train ``model`` in place with Adam and a cosine-decayed learning rate.

    With ``teacher_logits`` (aligned with ``x``) and ``alpha > 0`` the loss is the
    soft-label distillation loss; otherwise plain cross-entropy. Teacher logits are
    precomputed once per search: without data augmentation they are the same every
    epoch, so recomputing them per batch would only burn CPU.

    With a ``feature_distiller`` (a :class:`~nascompress.compression.FeatureDistiller`
    hooked on ``model`` and ``teacher_model``) and ``feature_weight > 0``, the teacher
    runs on every batch (no gradients) and ``feature_weight * distiller.loss()`` is
    added; the distiller's projections train with the student.

    ``on_batch_end()`` runs after every optimizer step: a cheap hook where training may
    pause (the latency gate's checkpoint, see
    :meth:`nascompress.latency.client.TrialLatency.checkpoint`).
    """
    if epochs <= 0:
        return
    features = feature_distiller is not None and teacher_model is not None and feature_weight > 0
    parameters = list(model.parameters())
    if features:
        parameters += list(feature_distiller.parameters())
        teacher_model.eval()
    optimizer = torch.optim.Adam(parameters, lr=lr)
    steps_per_epoch = max(1, -(-len(x) // batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    distill = teacher_logits is not None and alpha > 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            if features:
                with torch.no_grad():
                    teacher_model(x[idx])  # its hooks capture the teacher's features
            logits = model(x[idx])
            if distill:
                loss = distillation_loss(
                    logits, teacher_logits[idx], y[idx], alpha=alpha, temperature=temperature
                )
            else:
                loss = F.cross_entropy(logits, y[idx])
            if features:
                loss = loss + feature_weight * feature_distiller.loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if on_batch_end is not None:
                on_batch_end()
        if on_epoch_end is not None:
            on_epoch_end(epoch)


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float((predict_logits(model, x).argmax(dim=1) == y).float().mean())
