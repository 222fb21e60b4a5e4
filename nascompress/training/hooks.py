"""The user's training function and metric: what they are given, how they are called."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nascompress.training.loop import (
    Distillation,
    cross_entropy,
    nchw_strided_pointwise,
    to_device,
)
from nascompress.training.recipe import Precision, Recipe


class UserFunctionError(RuntimeError):
    """The user's training or metric function raised; the message names it and the error."""


@dataclass
class TrainingContext:
    """What a user training function gets for one phase: ``fn(ctx)`` trains ``ctx.model``.

    The function trains ``model`` in place (already on ``device``) for ``epochs`` and
    returns ``None`` (or ``model`` itself). It should call ``ctx.checkpoint()`` after
    every optimizer step, where the trial pauses while another trial measures latency
    on the node, and ``ctx.epoch_end(epoch)`` after each epoch, which reports the
    validation score (early stopping may stop the trial there: let its exception
    through). Whatever it raises fails the trial with that error.

    Attributes:
        phase: ``"teacher"``, ``"train"`` or ``"finetune"`` (QAT or sparse fine-tune:
            the model then carries fake-quantizers or masks, so train its parameters as
            they are and keep the module structure).
        model: the module to train.
        train_loader / val_loader: re-iterable ``(inputs, labels)`` batches (move them
            with :meth:`to_device`).
        device: ``"cpu"`` or ``"cuda"``.
        epochs, lr, batch_size: the evaluator's settings for this phase.
        seed: the trial's seed (``generator`` is seeded with it and orders the
            built-in shuffles).
        recipe: the evaluator's :class:`~nascompress.training.Recipe` (optimizer, decay,
            ... for a function that wants to honour them).
        precision: what the recipe's ``amp`` means on this device
            (``precision.dtype`` for ``torch.autocast``, ``precision.scaler`` for a
            ``GradScaler``).
        channels_last: whether image batches should go NHWC on this device.
        distill_loss: ``distill_loss(student_logits, inputs, labels)`` -> the trial's
            whole distillation loss for the batch (soft labels from the teacher, run on
            the batch without gradients, mixed with the hard-label loss by
            ``distill/alpha``; plus the feature term), or ``None`` when the trial does
            not distil. Call it right after the student's forward pass on ``inputs``.
    """

    phase: str
    model: nn.Module
    train_loader: Iterable[Any]
    val_loader: Iterable[Any]
    device: str
    epochs: int
    lr: float
    batch_size: int
    seed: int
    generator: torch.Generator
    recipe: Recipe
    precision: Precision
    channels_last: bool
    distill_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None
    checkpoint: Callable[[], None] = field(default=lambda: None)
    epoch_end: Callable[[int], None] = field(default=lambda epoch: None)

    def to_device(self, inputs: Any, labels: Any):
        """A batch on :attr:`device` (non-blocking copies; NHWC when asked)."""
        return to_device(inputs, labels, self.device, channels_last=self.channels_last)

    def loss(self, logits: torch.Tensor, inputs: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
        """The pipeline's loss: :attr:`distill_loss` when distilling, else cross-entropy."""
        if self.distill_loss is not None:
            return self.distill_loss(logits, inputs, labels)
        return cross_entropy(logits, labels, label_smoothing=self.recipe.label_smoothing)


def distill_loss_for(distill: Distillation | None):
    """The ``distill_loss`` a user function gets (``None`` when not distilling)."""
    if distill is None or not distill.active:
        return None

    def distill_loss(student_logits, inputs, labels):
        return distill.loss(student_logits, inputs, labels)

    return distill_loss


def _passes_through(exc: BaseException) -> bool:
    # Out of memory is the runner's to classify; it is not the function's bug.
    return isinstance(exc, torch.OutOfMemoryError)


def run_training_function(function: Callable[..., Any], context: TrainingContext, *,
                          field: str, path: str) -> None:
    """Call ``function(context)``; an error it raises names ``field`` and ``path``.

    While it runs, ``context.model``'s strided 1x1 convolutions see NCHW inputs on the
    CPU (:func:`~nascompress.training.loop.nchw_strided_pointwise`).

    Exceptions raised by the pipeline's own callbacks (``checkpoint``, ``epoch_end``:
    an early-stopping decision, say) pass through unchanged.

    Raises:
        UserFunctionError: the function raised (chained to its exception).
        TypeError: it returned something other than ``None`` or ``context.model``.
    """
    ours: list[BaseException] = []

    def passing(callback):
        def call(*args):
            try:
                return callback(*args)
            except BaseException as exc:
                ours.append(exc)
                raise
        return call

    context.checkpoint = passing(context.checkpoint)
    context.epoch_end = passing(context.epoch_end)
    try:
        # The built-in trainer's CPU guard against a oneDNN heap corruption covers the
        # user's function too: the crash would take the whole worker process with it.
        with nchw_strided_pointwise(context.model, context.device):
            result = function(context)
    except Exception as exc:
        if any(exc is seen for seen in ours) or _passes_through(exc):
            raise
        raise UserFunctionError(f"{field} {path!r} raised {type(exc).__name__}: {exc}") from exc
    if result is not None and result is not context.model:
        raise TypeError(f"{field} {path!r} must train ctx.model in place and return None, "
                        f"but got {type(result).__name__}")


def score_metric(function: Callable[..., Any], model: nn.Module, loader: Iterable[Any],
                 device: str, *, field: str, path: str) -> float:
    """``function(model, loader, device)`` in eval mode, checked to be a finite number.

    Raises:
        UserFunctionError: the function raised.
        TypeError: it returned something that is not a finite real number.
    """
    model.eval()
    try:
        with torch.no_grad():
            value = function(model, loader, device)
    except Exception as exc:
        if _passes_through(exc):
            raise
        raise UserFunctionError(f"{field} {path!r} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))):
        raise TypeError(f"{field} {path!r} must return a finite real number, but got "
                        f"{value!r}")
    return float(value)
