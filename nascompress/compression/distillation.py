"""Soft-label knowledge distillation (Hinton et al., 2015)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["distillation_loss"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Blend of hard-label cross-entropy and softened teacher-student KL divergence.

    ``(1 - alpha) * CE(student, targets)
    + alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))``, the KL averaged
    over the batch (``batchmean``). The ``T**2`` factor keeps the soft term's gradients on
    the same scale as the hard term's when ``T`` changes. A term whose weight is zero is not
    computed, so ``alpha=0`` is exactly cross-entropy and ``alpha=1`` needs no targets.
    The teacher receives no gradient (its logits are detached).

    Args:
        student_logits: ``[batch, classes]`` logits of the model being trained.
        teacher_logits: Logits of the teacher, same shape. Tensors made under
            ``torch.inference_mode`` are accepted.
        targets: ``[batch]`` class indices; may be ``None`` only when ``alpha == 1``.
        alpha: Weight of the distillation term, in ``[0, 1]``.
        temperature: Softmax temperature ``T > 0``.

    Returns:
        A scalar loss tensor.

    Raises:
        ValueError: If ``alpha`` is outside ``[0, 1]``, ``temperature`` is not a positive
            finite number, the logits' shapes differ, or ``targets`` is missing.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a float, but got alpha={alpha!r}")
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must satisfy 0 <= alpha <= 1, but got alpha={alpha}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a float, but got temperature={temperature!r}")
    if not (temperature > 0.0 and math.isfinite(temperature)):
        raise ValueError(
            f"temperature must be a positive finite number, but got temperature={temperature}"
        )
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student_logits and teacher_logits must have the same shape, but got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )

    loss = student_logits.new_zeros(())
    if alpha < 1.0:
        if targets is None:
            raise ValueError(f"targets must be given when alpha < 1, but got alpha={alpha}")
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits, targets)
    if alpha > 0.0:
        teacher = teacher_logits.detach().to(student_logits.dtype)
        kl = F.kl_div(
            F.log_softmax(student_logits / temperature, dim=-1),
            F.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        loss = loss + alpha * temperature**2 * kl
    return loss
