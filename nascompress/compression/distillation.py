"""Knowledge distillation from a teacher network.

Soft labels (Hinton et al., 2015): :func:`distillation_loss`. Intermediate features
(FitNets, Romero et al., 2015): :class:`FeatureDistiller` with :func:`default_feature_pairs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeatureDistiller", "default_feature_pairs", "distillation_loss"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    alpha: float,
    temperature: float,
    label_smoothing: float = 0.0,
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
        label_smoothing: smoothing of the hard-label cross-entropy, in ``[0, 1)``.

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
        hard = (F.cross_entropy(student_logits, targets, label_smoothing=label_smoothing)
                if label_smoothing else F.cross_entropy(student_logits, targets))
        loss = loss + (1.0 - alpha) * hard
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


class FeatureDistiller(nn.Module):
    """Intermediate-feature distillation (FitNets-style hints) between two networks.

    For every ``(student_name, teacher_name)`` pair a forward hook captures the output of
    that module in each model, and a learned projection maps the student feature to the
    teacher's width: a ``1x1`` ``Conv2d`` for ``[batch, channels, h, w]`` features, a
    ``Linear`` for ``[batch, features]`` ones, both with bias. A projection between equal
    widths starts as the identity, so identical features start at zero loss; others keep
    PyTorch's default initialisation.

    :meth:`loss` is the mean over pairs of ``MSE(proj(student_feature), teacher_feature)``
    (mean over all elements). Raw MSE is the default because in the ``image-cnn`` family
    the hooked features are BatchNorm + ReLU outputs, already on a unit-like scale, and
    the teacher is fixed for a whole search, so one loss weight fits all students. With
    ``normalize=True`` each sample's projected student feature and teacher feature are
    flattened and scaled to unit L2 norm, and the per-pair loss is the squared distance of
    those unit vectors (``2 - 2 * cosine``, in ``[0, 4]``) averaged over the batch: it
    ignores feature scale and does not shrink with the feature size, for teachers whose
    activations are not normalised.

    When the two feature maps differ in height or width, the larger one is reduced with
    ``adaptive_avg_pool2d`` to the smaller size in that dimension. Pooling (rather than
    upsampling the smaller one) adds no invented detail and makes the projection cheaper;
    it commutes with the ``1x1`` projection, so the student is pooled before projecting.

    Usage: build the distiller after any structural change of the student (pruning,
    factorization; the projections are sized from ``example_input``), add
    ``distiller.parameters()`` (only the projections) to the student's optimizer, and per
    step run ``student(x)``, the teacher under ``torch.no_grad()`` or
    ``torch.inference_mode()`` on the same ``x``, then add ``beta * distiller.loss()`` to
    the training loss. The projections are a training aid: they are not part of the
    student and are not shipped; call :meth:`remove` when training ends (the hooks live on
    the models, so copies or pickles of the student made before would carry them). The teacher's
    features are detached, so the teacher never receives gradients. The teacher runs every
    step rather than having its features cached per batch: for the small CNNs searched
    here its forward pass is a fraction of the student's forward + backward, and a cache
    would tie the distiller to a fixed batch order and augmentation and hold every
    batch's features in memory.

    Each hook keeps a copy of the latest output (a module reused within one forward pass
    keeps its last call's output). Copying matters when a later in-place operation, such
    as ``ReLU(inplace=True)`` after a hooked BatchNorm, would otherwise change the stored
    tensor.

    Args:
        student: The network being trained. Not registered as a submodule.
        teacher: The frozen reference network. Not registered as a submodule.
        pairs: ``(student module name, teacher module name)`` pairs, names as in
            ``named_modules()``; see :func:`default_feature_pairs`.
        example_input: A batch both models accept; run once through each (in eval mode
            and without gradients, so BatchNorm statistics are not touched) to size the
            projections.
        normalize: Compare L2-normalised features instead of raw ones (see above).

    Raises:
        ValueError: If ``pairs`` is empty or names a module a model does not have (the
            message lists the valid names), or a pair's features are not both 2-D or both
            4-D.
        TypeError: If a pair is not two strings or ``example_input`` is not a tensor.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        pairs: Sequence[tuple[str, str]],
        *,
        example_input: torch.Tensor,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        pairs = _check_pairs(pairs, student, teacher)
        if not isinstance(example_input, torch.Tensor):
            raise TypeError(
                "example_input must be a torch.Tensor, "
                f"but got example_input of type {type(example_input).__name__}"
            )
        self.pairs: list[tuple[str, str]] = pairs
        self.normalize = bool(normalize)
        self._student_features: dict[str, torch.Tensor] = {}
        self._teacher_features: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

        student_modules = dict(student.named_modules())
        teacher_modules = dict(teacher.named_modules())
        for s_name in dict.fromkeys(s for s, _ in pairs):
            self._handles.append(
                student_modules[s_name].register_forward_hook(
                    _capture(self._student_features, s_name, detach=False)
                )
            )
        for t_name in dict.fromkeys(t for _, t in pairs):
            self._handles.append(
                teacher_modules[t_name].register_forward_hook(
                    _capture(self._teacher_features, t_name, detach=True)
                )
            )

        try:
            _probe(student, example_input)
            _probe(teacher, example_input)
            projections = []
            for s_name, t_name in pairs:
                s_feat = self._student_features[s_name]
                t_feat = self._teacher_features[t_name]
                projections.append(_projection(s_name, t_name, s_feat, t_feat))
        except Exception:
            self.remove()
            raise
        self.projections = nn.ModuleList(projections)
        self._clear()

    def forward(self) -> torch.Tensor:
        """Same as :meth:`loss`."""
        return self.loss()

    def loss(self) -> torch.Tensor:
        """Feature loss for the latest forward passes of the student and the teacher.

        Returns:
            A scalar tensor; differentiable with respect to the student and the
            projections.

        Raises:
            RuntimeError: If a hooked feature has not been captured (run both models first,
                or :meth:`remove` was called).
            ValueError: If the captured batch sizes or channel counts do not match the
                ones seen at construction (rebuild the distiller after pruning).
        """
        losses = []
        for (s_name, t_name), projection in zip(self.pairs, self.projections, strict=True):
            if s_name not in self._student_features or t_name not in self._teacher_features:
                raise RuntimeError(
                    f"no captured features for pair ({s_name!r}, {t_name!r}): run a forward "
                    "pass of both the student and the teacher before loss()"
                )
            s_feat = self._student_features[s_name]
            t_feat = self._teacher_features[t_name]
            if t_feat.is_inference():
                # Inference-mode tensors cannot be saved for backward; a copy made outside
                # inference mode is an ordinary tensor.
                t_feat = t_feat.clone()
            if s_feat.shape[0] != t_feat.shape[0]:
                raise ValueError(
                    f"student and teacher batch sizes differ for pair ({s_name!r}, "
                    f"{t_name!r}): {s_feat.shape[0]} vs {t_feat.shape[0]}; run both on the "
                    "same batch"
                )
            expected = projection.in_channels if s_feat.ndim == 4 else projection.in_features
            if s_feat.shape[1] != expected:
                raise ValueError(
                    f"student feature {s_name!r} has {s_feat.shape[1]} channels but its "
                    f"projection expects {expected}; rebuild the FeatureDistiller after "
                    "changing the student's structure"
                )
            if s_feat.ndim == 4:
                size = tuple(
                    min(s, t) for s, t in zip(s_feat.shape[2:], t_feat.shape[2:], strict=True)
                )
                if tuple(s_feat.shape[2:]) != size:
                    s_feat = F.adaptive_avg_pool2d(s_feat, size)
                if tuple(t_feat.shape[2:]) != size:
                    t_feat = F.adaptive_avg_pool2d(t_feat, size)
            projected = projection(s_feat)
            t_feat = t_feat.to(projected.dtype)
            if self.normalize:
                diff = F.normalize(projected.flatten(1), dim=1) - F.normalize(
                    t_feat.flatten(1), dim=1
                )
                losses.append(diff.pow(2).sum(1).mean())
            else:
                losses.append(F.mse_loss(projected, t_feat))
        return torch.stack(losses).mean()

    def remove(self) -> None:
        """Remove every hook and drop the captured features; safe to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._clear()

    def __enter__(self) -> FeatureDistiller:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _clear(self) -> None:
        self._student_features.clear()
        self._teacher_features.clear()


def default_feature_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[str, str]]:
    """Pair every ``nn.ReLU`` of the student with the teacher's ReLU at the same relative depth.

    The ReLU modules of each model are listed in ``named_modules()`` order (execution order
    for ``nn.Sequential`` networks); in the ``image-cnn`` family there is one per block,
    after its BatchNorm and before its pooling, so this pairs block outputs. Student ReLU
    ``i`` of ``n_s`` (0-based) covers relative depth ``(i + 1) / n_s`` and is paired with
    the shallowest teacher ReLU ``j`` of ``n_t`` whose relative depth ``(j + 1) / n_t`` is at
    least as deep: ``j = ceil((i + 1) * n_t / n_s) - 1``. The last blocks are always paired
    with each other; with a shallower teacher several student blocks share a teacher block.

    Args:
        student: The network being trained.
        teacher: The reference network.

    Returns:
        One ``(student name, teacher name)`` pair per student ReLU.

    Raises:
        ValueError: If either model has no ``nn.ReLU`` module (``F.relu`` calls cannot be
            hooked; pass explicit pairs).
    """
    s_relus = [name for name, m in student.named_modules() if isinstance(m, nn.ReLU)]
    t_relus = [name for name, m in teacher.named_modules() if isinstance(m, nn.ReLU)]
    for which, found in (("student", s_relus), ("teacher", t_relus)):
        if not found:
            raise ValueError(
                f"{which} has no nn.ReLU modules to pair; pass FeatureDistiller explicit pairs"
            )
    n_s, n_t = len(s_relus), len(t_relus)
    # Integer ceil division: exact, no float rounding at ties.
    return [(s_relus[i], t_relus[((i + 1) * n_t + n_s - 1) // n_s - 1]) for i in range(n_s)]


def _check_pairs(
    pairs: Sequence[tuple[str, str]], student: nn.Module, teacher: nn.Module
) -> list[tuple[str, str]]:
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs must name at least one (student, teacher) module pair, got none")
    for pair in pairs:
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(n, str) for n in pair)
        ):
            raise TypeError(
                f"each pair must be (student module name, teacher module name), but got {pair!r}"
            )
    for which, model, index in (("student", student, 0), ("teacher", teacher, 1)):
        valid = [name for name, _ in model.named_modules() if name]
        unknown = sorted({pair[index] for pair in pairs} - set(valid))
        if unknown:
            raise ValueError(
                f"pairs name {which} modules that do not exist: {unknown}; valid names are {valid}"
            )
    return [(s, t) for s, t in pairs]


def _capture(store: dict[str, torch.Tensor], name: str, *, detach: bool):
    def hook(module: nn.Module, args: object, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"FeatureDistiller can only hook modules that return a tensor, but {name!r} "
                f"returned {type(output).__name__}"
            )
        store[name] = (output.detach() if detach else output).clone()

    return hook


def _probe(model: nn.Module, example_input: torch.Tensor) -> None:
    # Eval mode: BatchNorm must not update its running statistics (and a batch of one
    # would fail in training mode).
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for module, mode in modes.items():
            module.training = mode


def _projection(s_name: str, t_name: str, s_feat: torch.Tensor, t_feat: torch.Tensor) -> nn.Module:
    if s_feat.ndim != t_feat.ndim or s_feat.ndim not in (2, 4):
        raise ValueError(
            f"pair ({s_name!r}, {t_name!r}) needs two [batch, features] or two "
            f"[batch, channels, h, w] features, but got shapes {tuple(s_feat.shape)} and "
            f"{tuple(t_feat.shape)}"
        )
    c_s, c_t = s_feat.shape[1], t_feat.shape[1]
    kwargs = {"device": s_feat.device, "dtype": s_feat.dtype}
    if s_feat.ndim == 4:
        projection: nn.Module = nn.Conv2d(c_s, c_t, 1, **kwargs)
    else:
        projection = nn.Linear(c_s, c_t, **kwargs)
    if c_s == c_t:
        with torch.no_grad():
            projection.weight.copy_(torch.eye(c_t, **kwargs).reshape(projection.weight.shape))
            projection.bias.zero_()
    return projection
