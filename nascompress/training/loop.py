"""The built-in trainer: epochs over a loader with the recipe, distillation and GPU options."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nascompress.compression import distillation_loss
from nascompress.training.recipe import Recipe, select_channels_last, select_precision

#: The recipe every search used before recipes could be chosen.
DEFAULT_RECIPE = Recipe()


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a generator for data shuffling."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def to_device(inputs: Any, labels: Any, device: str, *, channels_last: bool = False):
    """One batch as tensors on ``device``.

    Copies to a GPU are non-blocking (they overlap compute when the loader pins its
    memory); on the CPU, and for data already on the device, nothing is copied.
    """
    inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels)
    non_blocking = str(device).startswith("cuda")
    inputs = inputs.to(device, non_blocking=non_blocking)
    labels = labels.to(device, non_blocking=non_blocking)
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, labels


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy, with label smoothing when asked."""
    if label_smoothing:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return F.cross_entropy(logits, labels)


class Distillation:
    """The distillation term of a training phase, for one student.

    Soft labels come from a table of teacher logits computed once per search
    (``teacher_logits``, indexed by sample position: in-memory data without
    augmentation, where they are the same every epoch) or, without the table or when
    the batch's positions are unknown (streamed or augmented data, a user's loop), from
    the teacher run on each batch without gradients. A ``feature_distiller`` (hooked on
    student and teacher) adds ``feature_weight * distiller.loss()``.

    Args:
        alpha: weight of the soft-label term in ``[0, 1]``.
        temperature: softmax temperature.
        teacher: the teacher module (eval mode, on the training device).
        teacher_logits: the per-sample table, or ``None``.
        feature_distiller: a :class:`~nascompress.compression.FeatureDistiller`.
        feature_weight: weight of the feature term.
        label_smoothing: smoothing of the hard-label term.
    """

    def __init__(self, *, alpha: float = 0.0, temperature: float = 1.0,
                 teacher: nn.Module | None = None, teacher_logits: torch.Tensor | None = None,
                 feature_distiller: nn.Module | None = None, feature_weight: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        self.alpha = alpha
        self.temperature = temperature
        self.teacher = teacher
        self.teacher_logits = teacher_logits
        self.feature_distiller = feature_distiller
        self.feature_weight = feature_weight
        self.label_smoothing = label_smoothing
        if alpha > 0 and teacher is None and teacher_logits is None:
            raise ValueError("distillation with alpha > 0 needs a teacher or its logits")

    @property
    def features(self) -> bool:
        return (self.feature_distiller is not None and self.teacher is not None
                and self.feature_weight > 0)

    @property
    def active(self) -> bool:
        return self.alpha > 0 or self.features

    def parameters(self) -> list[nn.Parameter]:
        """What trains with the student (the feature projections)."""
        return list(self.feature_distiller.parameters()) if self.features else []

    def without_features(self) -> Distillation:
        """The same soft-label term after the feature hooks were removed."""
        return Distillation(alpha=self.alpha, temperature=self.temperature,
                            teacher=self.teacher, teacher_logits=self.teacher_logits,
                            label_smoothing=self.label_smoothing)

    def run_teacher(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for a batch (its hooks capture its features)."""
        with torch.no_grad():
            return self.teacher(inputs)

    def loss(self, logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor, *,
             positions: Any = None, teacher_out: torch.Tensor | None = None) -> torch.Tensor:
        """The phase's loss for one batch whose student ``logits`` were just computed.

        Args:
            positions: where the batch's samples sit in the split (for the table).
            teacher_out: the teacher's logits, when the caller already ran it.
        """
        if teacher_out is None and (
                self.features or (self.alpha > 0 and (self.teacher_logits is None
                                                     or positions is None))):
            teacher_out = self.run_teacher(inputs)
        if self.alpha > 0:
            soft = (self.teacher_logits[positions]
                    if self.teacher_logits is not None and positions is not None
                    else teacher_out)
            loss = distillation_loss(logits, soft, labels, alpha=self.alpha,
                                     temperature=self.temperature,
                                     label_smoothing=self.label_smoothing)
        else:
            loss = cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if self.features:
            loss = loss + self.feature_weight * self.feature_distiller.loss()
        return loss


@dataclass
class PhaseStats:
    """What one training phase did: samples seen and wall time (images/s for benches)."""

    images: int = 0
    seconds: float = 0.0
    precision: str = "fp32"
    channels_last: bool = False

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def loader_length(loader: Iterable[Any]) -> int | None:
    """Batches per epoch, or ``None`` for an iterable that cannot say."""
    try:
        return max(1, len(loader))  # type: ignore[arg-type]
    except TypeError:
        return None


def make_optimizer(recipe: Recipe, parameters: list[nn.Parameter], lr: float):
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=recipe.weight_decay)
    if recipe.weight_decay:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(parameters, lr=lr)


def make_scheduler(recipe: Recipe, optimizer, *, epochs: int, steps_per_epoch: int | None):
    """The learning-rate schedule, stepped once per batch (per epoch without a length).

    Without warm-up the cosine is torch's ``CosineAnnealingLR`` over all steps, as it
    always was; a warm-up is a linear ramp followed by the cosine (or a constant).
    """
    unit = steps_per_epoch or 1
    total = epochs * unit
    warmup = min(recipe.warmup_epochs * unit, total // 2)
    if warmup == 0:
        if recipe.schedule == "constant":
            return None
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    cosine = recipe.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast_context(device: str, precision) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for a mixed-precision phase; nothing at all in float32."""
    if not precision.autocast:
        return contextlib.nullcontext()
    return torch.autocast(device_type=str(device).split(":")[0], dtype=precision.dtype)


@contextlib.contextmanager
def nchw_strided_pointwise(model: nn.Module, device: str):
    """While in the block, ``model``'s strided 1x1 convolutions see NCHW inputs on the CPU.

    Why: oneDNN's backward of a strided 1x1 convolution over a channels-last input with
    few input channels (1-6 crashed, 7, 8, 12 and 16 did not) corrupts the heap on some
    CPUs (torch 2.13.0+cpu on an AMD EPYC: the process dies; no other kernel crashed;
    ``bench/training/onednn_conv_sweep.md`` lists the shapes). Activations can
    turn channels-last unasked (a layer whose weight strides look channels-last).
    Forward pre-hooks give such inputs NCHW strides (:func:`nchw`: a copy, for those
    layers only) and are removed on exit; on CUDA nothing is hooked.
    """
    if str(device).startswith("cuda"):
        yield
        return
    handles = [module.register_forward_pre_hook(_nchw_input) for module in model.modules()
               if isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1)
               and tuple(module.stride) != (1, 1)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def nchw(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when its strides are NCHW's, else an NCHW copy.

    Not ``x.contiguous()``: a channels-last tensor with one channel (or 1x1 pixels) is
    "contiguous" too, and oneDNN still takes its strides for channels-last (one input
    channel crashed like four in ``bench/training/onednn_conv_sweep.py``).
    """
    expected, step = [], 1
    for size in reversed(x.shape):
        expected.append(step)
        step *= max(size, 1)
    if x.stride() == tuple(reversed(expected)):
        return x
    return x.clone(memory_format=torch.contiguous_format)


def _nchw_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (nchw(x), *args[1:])
    return None


def train_epochs(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    epochs: int,
    lr: float,
    recipe: Recipe = DEFAULT_RECIPE,
    device: str = "cpu",
    distill: Distillation | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    on_batch_end: Callable[[], None] | None = None,
) -> PhaseStats:
    """Train ``model`` (already on ``device``) in place for ``epochs`` over ``loader``.

    ``loader`` yields ``(inputs, labels)`` batches and is iterated once per epoch; an
    :class:`~nascompress.data.ArrayLoader` also says where each batch's samples sit, so
    a ``distill`` table of teacher logits can follow its shuffled order. The loss is
    cross-entropy (``recipe.label_smoothing``) or ``distill``'s.

    On CUDA the phase uses the recipe's mixed precision (bf16 autocast, or fp16 with a
    ``GradScaler``) and ``channels_last`` image batches; nothing in the loop reads a
    value back to the host (no ``.item()``), so batches queue up on the GPU. The CPU
    path is plain float32, as it always was.

    ``on_batch_end()`` runs after every optimizer step: a cheap hook where training may
    pause (the latency gate's checkpoint, see
    :meth:`nascompress.latency.client.TrialLatency.checkpoint`); ``on_epoch_end(epoch)``
    after each epoch (reports, early stopping).

    Returns:
        The phase's :class:`PhaseStats` (images seen, seconds, precision).
    """
    device = str(device)
    precision = select_precision(device, recipe.amp)
    stats = PhaseStats(precision=precision.name)
    if epochs <= 0:
        return stats
    started = time.perf_counter()
    distill = distill if distill is not None and distill.active else None
    smoothing = recipe.label_smoothing
    parameters = list(model.parameters())
    if distill is not None:
        parameters += distill.parameters()
        if distill.teacher is not None:
            distill.teacher.eval()
    optimizer = make_optimizer(recipe, parameters, lr)
    steps = loader_length(loader)
    scheduler = make_scheduler(recipe, optimizer, epochs=epochs, steps_per_epoch=steps)
    scaler = torch.amp.GradScaler("cuda") if precision.scaler else None
    channels_last = None  # decided on the first batch, from its rank
    indexed = (distill is not None and distill.teacher_logits is not None
               and hasattr(loader, "indexed"))
    with nchw_strided_pointwise(model, device):
        for epoch in range(epochs):
            model.train()
            batches = (loader.indexed() if indexed
                       else ((None, x, y) for x, y in loader))  # type: ignore[attr-defined]
            for positions, inputs, labels in batches:
                if channels_last is None:
                    channels_last = select_channels_last(device, recipe.channels_last,
                                                         torch.as_tensor(inputs).dim())
                    if channels_last:
                        model.to(memory_format=torch.channels_last)
                    stats.channels_last = channels_last
                inputs, labels = to_device(inputs, labels, device, channels_last=channels_last)
                with autocast_context(device, precision):
                    teacher_out = (distill.run_teacher(inputs)
                                   if distill is not None and distill.features else None)
                    logits = model(inputs)
                    if distill is not None:
                        loss = distill.loss(logits, inputs, labels, positions=positions,
                                            teacher_out=teacher_out)
                    else:
                        loss = cross_entropy(logits, labels, label_smoothing=smoothing)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                if scheduler is not None and steps is not None:
                    scheduler.step()
                stats.images += len(labels)  # a shape, not a value: no host sync
                if on_batch_end is not None:
                    on_batch_end()
            if scheduler is not None and steps is None:
                scheduler.step()
            if on_epoch_end is not None:
                on_epoch_end(epoch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # the queued work belongs to this phase's time
    stats.seconds = time.perf_counter() - started
    if channels_last:
        model.to(memory_format=torch.contiguous_format)  # compression expects NCHW weights
    return stats


@torch.inference_mode()
def predict_logits(model: nn.Module, loader: Iterable[Any], *,
                   device: str = "cpu") -> torch.Tensor:
    """Logits of ``model`` over every batch of ``loader`` (eval mode), on ``device``."""
    model.eval()
    return torch.cat([model(to_device(x, y, device)[0]) for x, y in loader])


@torch.inference_mode()
def accuracy(model: nn.Module, loader: Iterable[Any], *, device: str = "cpu") -> float:
    """Top-1 accuracy in [0, 1] over every batch of ``loader``.

    Correct predictions are counted on the device and read back once. The fraction is
    rounded to float32, as the mean of a float32 tensor (how it was computed before
    the data was streamed), so seeded searches repeat their numbers exactly.
    """
    model.eval()
    correct, total = None, 0
    for inputs, labels in loader:
        inputs, labels = to_device(inputs, labels, device)
        hits = (model(inputs).argmax(dim=1) == labels).sum()
        correct = hits if correct is None else correct + hits
        total += len(labels)
    if not total:
        raise ValueError("loader must yield at least one batch, but yielded none")
    return float(correct.cpu().double().div(total).float())
