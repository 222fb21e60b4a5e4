"""Structured channel pruning on top of torch-pruning's dependency graph.

Channels are physically removed (tensors shrink), so the pruned model is smaller and
cheaper on any dense runtime; this is not a sparsity mask (for that, see
:mod:`nascompress.compression.sparsity`).

Channel importance criteria, all computed by torch-pruning's own importance classes over
the whole dependency group of a channel (the conv's filter, its BatchNorm scale and the
matching input slice of the next layer):

- ``"l1"`` / ``"l2"``: group magnitude, ``GroupMagnitudeImportance(p=1)`` / ``(p=2)``.
- ``"taylor"``: first-order Taylor expansion of the loss, ``GroupTaylorImportance``
  (``sum |w * dL/dw|`` over the conv filter and the next layer's input slice; torch-pruning
  does not score BatchNorm here); needs calibration data to compute gradients.
- ``"fpgm"``: distance to the other filters (filter pruning via geometric median),
  ``FPGMImportance``: a channel close to all the others is deemed replaceable.
  torch-pruning measures the distances between element-wise squared weights, so a filter
  and its negation count as identical.
- ``"nni-l1"``, ``"nni-l2"``, ``"nni-fpgm"``, ``"nni-taylor"``: the channels are chosen by
  NNI's pruners (optional extra, see :mod:`nascompress.compression.nni_pruning`) and
  then removed by torch-pruning like any other criterion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from nascompress.compression._channels import (
    TAYLOR_BATCHES,
    Calibration,
    LossFn,
    _check_calibration,
    _check_layer_ratios,
    _check_not_parametrized,
    _check_ratio,
    _classifier_layers,
    _out_channels,
    _prunable_layers,
)
from nascompress.compression._knobs import IMPORTANCES

__all__ = [
    "IMPORTANCES",
    "NNI_IMPORTANCES",
    "TAYLOR_BATCHES",
    "PruningReport",
    "prune_channels",
]

# Built-in importance criteria accepted by :func:`prune_channels`: IMPORTANCES, defined
# with the other knob values of the compression plan (its leaf module _knobs; re-exported
# here).

#: Criteria computed by NNI (needs the ``nni`` extra); accepted by :func:`prune_channels`.
NNI_IMPORTANCES: tuple[str, ...] = ("nni-l1", "nni-l2", "nni-fpgm", "nni-taylor")

# Absorbs float noise such as 10 * (1 - 0.7) == 3.0000000000000004 or 2.9999999999999996
# when turning a ratio into a channel count.
_COUNT_EPS = 1e-9

_MAGNITUDE_P = {"l1": 1, "l2": 2}



@dataclass
class PruningReport:
    """What :func:`prune_channels` did; JSON-able through :func:`dataclasses.asdict`.

    Attributes:
        ratio: Requested fraction of output channels removed per prunable group.
        importance: Importance criterion used (one of :data:`IMPORTANCES` or
            :data:`NNI_IMPORTANCES`).
        params_before: Parameter count before pruning.
        params_after: Parameter count after pruning.
        macs_before: torch-pruning's operation count before pruning, for one sample (the
            first of ``example_inputs``): multiply-accumulates of Conv/Linear layers (plus
            their bias adds) and one or two ops per element of norm/activation/pooling layers.
        macs_after: The same count after pruning.
        channels: Module name -> ``[out_channels_before, out_channels_after]`` for every
            Conv and Linear layer (``out_features`` for Linear).
        iterative_steps: Number of prune steps the ratio was reached in.
        global_pruning: Whether channels were ranked across layers.
        layer_ratios: Module name -> ratio for the layers whose ratio overrode ``ratio``.
    """

    ratio: float
    importance: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    channels: dict[str, list[int]]
    iterative_steps: int = 1
    global_pruning: bool = False
    layer_ratios: dict[str, float] = field(default_factory=dict)


def prune_channels(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    ratio: float,
    importance: str = "l1",
    global_pruning: bool = False,
    ignored_layers: Sequence[nn.Module] | None = None,
    layer_ratios: Mapping[str, float] | None = None,
    iterative_steps: int = 1,
    finetune: Callable[[nn.Module, int], None] | None = None,
    calibration: Calibration | None = None,
    loss_fn: LossFn | None = None,
) -> PruningReport:
    """Physically remove the least important output channels of ``model``, in place.

    torch-pruning traces ``model`` on ``example_inputs`` to build its dependency graph,
    so coupled layers shrink together: a conv's BatchNorm, the next conv's input channels
    and, through ``Flatten``, the matching ``in_features`` of the next Linear.

    Local pruning (the default) removes ``n - max(1, floor(n * (1 - ratio)))`` channels of
    every prunable group of ``n`` channels, so every layer keeps at least one channel (plain
    torch-pruning would instead leave a group untouched when the ratio rounds its channel
    count down to zero). ``layer_ratios`` overrides ``ratio`` for named layers, with the
    same rounding. With ``global_pruning=True`` one threshold is applied across all groups
    not named in ``layer_ratios``, ranked by torch-pruning's mean-normalised importance; a
    group that the threshold would empty is then left untouched by torch-pruning, so the
    achieved ratio can be lower than asked: read the report.

    Iterative pruning (``iterative_steps=k``) uses torch-pruning's linear schedule: after
    step ``i`` a layer of ``n`` channels keeps about ``n * (1 - ratio * i / k)`` of them,
    importance being re-estimated on the current (fine-tuned) weights at every step; the
    last step lands on exactly the count one-shot pruning keeps (under global pruning, the
    same total count, though the split between layers can differ). ``finetune(model, i)`` is
    called after every step ``i = 1..k``, the last one included (so ``k`` calls), with the
    model's training modes and ``requires_grad`` flags restored. It must update the
    parameters in place (an optimizer built inside it is fine) and must not replace
    modules or add parametrizations: the dependency graph built before step 1 is reused.

    Pruning replaces parameters by new tensors: build optimizers after pruning (or inside
    ``finetune``). Training mode and ``requires_grad`` flags are restored afterwards
    (torch-pruning itself leaves the model in eval mode and every pruned parameter
    trainable).

    Args:
        model: Network to prune; modified in place. It must not carry parametrizations
            (prune before :func:`~nascompress.compression.enable_qat`).
        example_inputs: A batch the model accepts, used for tracing and op counting.
        ratio: Fraction of output channels to remove, in ``[0, 1)``. ``0`` (with no
            positive ``layer_ratios``) leaves the model untouched and only reports its size.
        importance: One of :data:`IMPORTANCES` (``"l1"``, ``"l2"``, ``"taylor"``,
            ``"fpgm"``; see the module docstring) or :data:`NNI_IMPORTANCES`. NNI criteria
            remove exactly the channels NNI masks, so their per-layer counts follow NNI's
            rounding (``floor(n * ratio)`` channels removed, which can be one fewer than the
            rule above); they support neither ``global_pruning`` nor ``iterative_steps > 1``.
        global_pruning: Rank channels across layers instead of within each layer.
        ignored_layers: Modules whose output channels must not be pruned. When ``None``,
            every Conv/Linear whose ``out_channels``/``out_features`` equals the channel
            dimension of the model's output (dim 1) is ignored, which protects the classifier
            (and, by this rule, any other layer of that width).
        layer_ratios: Module name (as in ``model.named_modules()``) -> ratio in ``[0, 1)``
            for Conv/Linear layers whose ratio differs from ``ratio``. Named layers are
            ranked on their own, also under ``global_pruning``.
        iterative_steps: Number of equal prune steps, an int ``>= 1``.
        finetune: Called as ``finetune(model, step)`` after each prune step; not called
            when nothing is to be pruned.
        calibration: ``(inputs, labels)`` on the model's device; required by ``"taylor"``
            and ``"nni-taylor"``, ignored otherwise. Gradients of ``loss_fn`` are computed
            with the model in eval mode (BatchNorm statistics are not updated), over at
            most :data:`TAYLOR_BATCHES` batches, before every prune step; the parameters'
            ``.grad`` are ``None`` afterwards.
        loss_fn: ``loss_fn(outputs, labels) -> scalar`` for Taylor importance, mean-reduced;
            defaults to cross-entropy.

    Returns:
        A :class:`PruningReport` with sizes and op counts before and after.

    Raises:
        ValueError: If ``ratio`` or a ``layer_ratios`` value is outside ``[0, 1)``,
            ``importance`` is unknown, ``iterative_steps < 1``, ``calibration`` is missing
            or malformed for Taylor importance, a ``layer_ratios`` name is not a Conv/Linear
            of the model or is ignored, an NNI criterion is combined with global or
            iterative pruning, or the model carries parametrizations or the masks of
            :func:`~nascompress.compression.sparsity.magnitude_prune_` (prune channels first).
        TypeError: If ``example_inputs`` is not a tensor, ``finetune`` is not callable,
            ``iterative_steps`` is not an int, or ``ignored_layers`` is ``None`` and the
            model's output is not a tensor.
        ImportError: If an NNI criterion is asked for and NNI is not installed.
    """
    ratio = _check_ratio(ratio)
    known = IMPORTANCES + NNI_IMPORTANCES
    if importance not in known:
        raise ValueError(
            f"importance must be one of {list(known)}, but got importance={importance!r}"
        )
    steps = _check_steps(iterative_steps)
    if finetune is not None and not callable(finetune):
        raise TypeError(
            f"finetune must be callable or None, but got finetune of type {type(finetune).__name__}"
        )
    if not isinstance(example_inputs, torch.Tensor):
        raise TypeError(
            "example_inputs must be a torch.Tensor, "
            f"but got example_inputs of type {type(example_inputs).__name__}"
        )
    if example_inputs.ndim == 0:
        raise ValueError("example_inputs must be a batch (ndim >= 1), but got a 0-d tensor")
    if importance in ("taylor", "nni-taylor"):
        calibration = _check_calibration(calibration, importance)
    if loss_fn is None:
        loss_fn = F.cross_entropy
    if importance in NNI_IMPORTANCES:
        if global_pruning:
            raise ValueError(
                f"importance={importance!r} does not support global_pruning=True: NNI "
                "chooses the channels layer by layer"
            )
        if steps != 1:
            raise ValueError(
                f"importance={importance!r} needs iterative_steps=1, but got "
                f"iterative_steps={steps}: NNI masks are computed once, on the unpruned model"
            )
        from nascompress.compression.nni_pruning import require_nni

        require_nni()  # fail before any work when the extra is missing
    overrides = _check_layer_ratios(model, layer_ratios)
    _check_not_parametrized(model)

    training_modes = {m: m.training for m in model.modules()}
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}

    def restore() -> None:
        for module, mode in training_modes.items():
            module.training = mode
        for name, param in model.named_parameters():
            # Pruned layers get fresh Parameters with requires_grad=True; keep frozen layers frozen.
            param.requires_grad_(requires_grad.get(name, True))

    try:
        macs_before, params_before = _count(model, example_inputs)
        before = _out_channels(model)
        if ratio > 0.0 or any(r > 0.0 for r in overrides.values()):
            if ignored_layers is None:
                ignored_layers = _classifier_layers(model, example_inputs)
            ignored_layers = list(ignored_layers)
            _check_not_ignored(model, overrides, ignored_layers)
            _run_pruner(
                model,
                example_inputs,
                ratio=ratio,
                importance=importance,
                global_pruning=global_pruning,
                ignored_layers=ignored_layers,
                layer_ratios=overrides,
                steps=steps,
                finetune=finetune,
                calibration=calibration,
                loss_fn=loss_fn,
                restore=restore,
            )
        macs_after, params_after = _count(model, example_inputs)
        after = _out_channels(model)
    finally:
        restore()

    return PruningReport(
        ratio=ratio,
        importance=importance,
        params_before=params_before,
        params_after=params_after,
        macs_before=macs_before,
        macs_after=macs_after,
        channels={name: [before[name], after.get(name, 0)] for name in before},
        iterative_steps=steps,
        global_pruning=bool(global_pruning),
        layer_ratios=dict(overrides),
    )


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"iterative_steps must be an int, but got iterative_steps={steps!r}")
    if steps < 1:
        raise ValueError(f"iterative_steps must be >= 1, but got iterative_steps={steps}")
    return steps


def _check_not_ignored(
    model: nn.Module, layer_ratios: Mapping[str, float], ignored_layers: Sequence[nn.Module]
) -> None:
    ignored = {id(m) for layer in ignored_layers for m in layer.modules()}
    modules = dict(model.named_modules())
    clash = [name for name in layer_ratios if id(modules[name]) in ignored]
    if clash:
        raise ValueError(
            f"layer_ratios names layers that are ignored (by ignored_layers or, when that is "
            f"None, as the classifier): {clash}"
        )


def _count(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    # count_ops_and_params works on a deep copy in eval mode, so the model is not touched.
    # It divides by the batch size but adds Linear biases once per batch, so the count
    # drifts with the batch size; a single sample makes it a well-defined per-sample count.
    macs, params = tp.utils.count_ops_and_params(model, example_inputs[:1])
    return int(round(macs)), int(params)


def _kept(n: int, ratio: float) -> int:
    return max(1, math.floor(n * (1.0 - ratio) + _COUNT_EPS))


def _ratio_for_keep(n: int, keep: int) -> float:
    """The ratio that makes torch-pruning keep exactly ``keep`` of ``n`` channels.

    torch-pruning keeps ``int(n * (1 - r))`` channels and silently skips a group when that
    is zero, so a high ratio on a narrow layer would prune nothing at all. It also rounds
    float noise down. Handing it ``r = (n - keep - 0.5) / n`` makes ``n * (1 - r)`` equal
    ``keep + 0.5``, which truncates to exactly ``keep``. Its linear iterative schedule
    scales this ``r``, so only the last step is exact, which is the one that matters.
    """
    return max(0.0, (n - keep - 0.5) / n)


def _make_importance(importance: str) -> tp.importance.Importance:
    if importance in _MAGNITUDE_P:
        return tp.importance.GroupMagnitudeImportance(p=_MAGNITUDE_P[importance])
    if importance == "taylor":
        return tp.importance.GroupTaylorImportance()
    if importance == "fpgm":
        return tp.importance.FPGMImportance(p=2)
    raise AssertionError(f"unhandled importance {importance!r}")  # validated by the caller


def _accumulate_gradients(model: nn.Module, calibration: Calibration, loss_fn: LossFn) -> None:
    inputs, labels = calibration
    total = len(inputs)
    # Eval mode: BatchNorm uses (and does not update) its running statistics, and dropout
    # is off, so the importance is a deterministic function of the weights.
    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        batches = zip(
            torch.tensor_split(inputs, min(TAYLOR_BATCHES, total)),
            torch.tensor_split(labels, min(TAYLOR_BATCHES, total)),
            strict=True,
        )
        for x, y in batches:
            loss = loss_fn(model(x), y) * (len(x) / total)
            loss.backward()


def _run_pruner(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    ratio: float,
    importance: str,
    global_pruning: bool,
    ignored_layers: list[nn.Module],
    layer_ratios: dict[str, float],
    steps: int,
    finetune: Callable[[nn.Module, int], None] | None,
    calibration: Calibration | None,
    loss_fn: LossFn,
    restore: Callable[[], None],
) -> None:
    layers = _prunable_layers(model, ignored_layers)
    if importance in NNI_IMPORTANCES:
        from nascompress.compression.nni_pruning import NNIMaskImportance, nni_channel_importance

        masks = nni_channel_importance(
            model,
            example_inputs,
            pruner=importance.removeprefix("nni-"),
            ratio=ratio,
            layer_ratios=layer_ratios,
            ignored_layers=ignored_layers,
            calibration=calibration,
            loss_fn=loss_fn,
        )
        by_module = {module: masks[name] for name, module, _ in layers}
        scorer: tp.importance.Importance = NNIMaskImportance(by_module)
        # Remove exactly as many channels as NNI masked; the mask-as-score ranks them first.
        ratio_dict: dict[nn.Module, float] | None = {
            module: _ratio_for_keep(n, int((masks[name] > 0).sum())) for name, module, n in layers
        }
    else:
        scorer = _make_importance(importance)
        if global_pruning:
            # Named layers get their own ranking scope; the rest share one global threshold.
            ratio_dict = {
                module: _ratio_for_keep(n, _kept(n, layer_ratios[name]))
                for name, module, n in layers
                if name in layer_ratios
            } or None
        else:
            ratio_dict = {
                module: _ratio_for_keep(n, _kept(n, layer_ratios.get(name, ratio)))
                for name, module, n in layers
            }

    def make_trainable() -> None:
        # The dependency graph is traced through autograd and Taylor importance reads
        # `.grad` of every layer in a group, so every parameter must require grad
        # (flags are restored before `finetune` and at the end).
        for param in model.parameters():
            param.requires_grad_(True)

    make_trainable()
    with torch.enable_grad():
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs,
            importance=scorer,
            global_pruning=global_pruning,
            pruning_ratio=ratio,
            pruning_ratio_dict=ratio_dict,
            ignored_layers=ignored_layers,
            iterative_steps=steps,
        )
    for step in range(1, steps + 1):
        if step > 1:
            _check_not_parametrized(model)  # `finetune` may have added some
            make_trainable()
        if importance == "taylor":
            # calibration was validated by prune_channels for "taylor".
            _accumulate_gradients(model, calibration, loss_fn)
        pruner.step()
        if importance == "taylor":
            # Calibration gradients must not leak into the caller's optimizer.
            model.zero_grad(set_to_none=True)
        restore()
        if finetune is not None:
            finetune(model, step)
