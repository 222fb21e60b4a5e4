"""Structured channel pruning on top of torch-pruning's dependency graph.

Channels are physically removed (tensors shrink), so the pruned model is smaller and
cheaper on any dense runtime; this is not a sparsity mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["IMPORTANCES", "PruningReport", "prune_channels"]

#: Importance criteria accepted by :func:`prune_channels`, mapped to the norm degree of
#: torch-pruning's group magnitude importance.
IMPORTANCES: dict[str, int] = {"l1": 1, "l2": 2}

# Absorbs float noise such as 10 * (1 - 0.7) == 3.0000000000000004 or 2.9999999999999996
# when turning a ratio into a channel count.
_COUNT_EPS = 1e-9


@dataclass
class PruningReport:
    """What :func:`prune_channels` did; JSON-able through :func:`dataclasses.asdict`.

    Attributes:
        ratio: Requested fraction of output channels removed per prunable group.
        importance: Importance criterion used (``"l1"`` or ``"l2"``).
        params_before: Parameter count before pruning.
        params_after: Parameter count after pruning.
        macs_before: torch-pruning's operation count before pruning, for one sample (the
            first of ``example_inputs``): multiply-accumulates of Conv/Linear layers (plus
            their bias adds) and one or two ops per element of norm/activation/pooling layers.
        macs_after: The same count after pruning.
        channels: Module name -> ``[out_channels_before, out_channels_after]`` for every
            Conv and Linear layer (``out_features`` for Linear).
    """

    ratio: float
    importance: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    channels: dict[str, list[int]]


def prune_channels(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    ratio: float,
    importance: str = "l1",
    global_pruning: bool = False,
    ignored_layers: Sequence[nn.Module] | None = None,
) -> PruningReport:
    """Physically remove the least important output channels of ``model``, in place.

    torch-pruning traces ``model`` on ``example_inputs`` to build its dependency graph,
    so coupled layers shrink together: a conv's BatchNorm, the next conv's input channels
    and, through ``Flatten``, the matching ``in_features`` of the next Linear.

    Local pruning (the default) removes ``n - max(1, floor(n * (1 - ratio)))`` channels of
    every prunable group of ``n`` channels, so every layer keeps at least one channel (plain
    torch-pruning would instead leave a group untouched when the ratio rounds its channel
    count down to zero). With ``global_pruning=True`` one threshold is applied across all
    groups, ranked by torch-pruning's mean-normalised importance; a group that the threshold
    would empty is then left untouched by torch-pruning, so the achieved ratio can be lower
    than asked: read the report.

    Pruning replaces parameters by new tensors: build optimizers after pruning. Training
    mode and ``requires_grad`` flags are restored afterwards (torch-pruning itself leaves
    the model in eval mode and every pruned parameter trainable).

    Args:
        model: Network to prune; modified in place. It must not carry parametrizations
            (prune before :func:`~nascompress.compression.enable_qat`).
        example_inputs: A batch the model accepts, used for tracing and op counting.
        ratio: Fraction of output channels to remove, in ``[0, 1)``. ``0`` leaves the
            model untouched and only reports its size.
        importance: ``"l1"`` or ``"l2"``: the group magnitude norm of each channel
            (torch-pruning's ``MagnitudeImportance(p=1)`` or ``p=2``).
        global_pruning: Rank channels across layers instead of within each layer.
        ignored_layers: Modules whose output channels must not be pruned. When ``None``,
            every Conv/Linear whose ``out_channels``/``out_features`` equals the last
            dimension of the model's output is ignored, which protects the classifier
            (and, by this rule, any other layer of that width).

    Returns:
        A :class:`PruningReport` with sizes and op counts before and after.

    Raises:
        ValueError: If ``ratio`` is outside ``[0, 1)``, ``importance`` is unknown, or the
            model carries parametrizations.
        TypeError: If ``example_inputs`` is not a tensor, or ``ignored_layers`` is ``None``
            and the model's output is not a tensor.
    """
    ratio = _check_ratio(ratio)
    if importance not in IMPORTANCES:
        raise ValueError(
            f"importance must be one of {sorted(IMPORTANCES)}, but got importance={importance!r}"
        )
    if not isinstance(example_inputs, torch.Tensor):
        raise TypeError(
            "example_inputs must be a torch.Tensor, "
            f"but got example_inputs of type {type(example_inputs).__name__}"
        )
    if example_inputs.ndim == 0:
        raise ValueError("example_inputs must be a batch (ndim >= 1), but got a 0-d tensor")
    parametrized = [name for name, m in model.named_modules() if parametrize.is_parametrized(m)]
    if parametrized:
        # torch-pruning assigns new Parameters to `weight`, which a parametrization forbids.
        raise ValueError(
            f"model must not carry parametrizations when pruning, but got them on {parametrized}; "
            "prune before enabling quantization-aware training"
        )

    training_modes = {m: m.training for m in model.modules()}
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        macs_before, params_before = _count(model, example_inputs)
        before = _out_channels(model)
        if ratio > 0.0:
            if ignored_layers is None:
                ignored_layers = _classifier_layers(model, example_inputs)
            _run_pruner(
                model,
                example_inputs,
                ratio=ratio,
                p=IMPORTANCES[importance],
                global_pruning=global_pruning,
                ignored_layers=list(ignored_layers),
            )
        macs_after, params_after = _count(model, example_inputs)
        after = _out_channels(model)
    finally:
        for module, mode in training_modes.items():
            module.training = mode
        for name, param in model.named_parameters():
            # Pruned layers get fresh Parameters with requires_grad=True; keep frozen layers frozen.
            param.requires_grad_(requires_grad.get(name, True))

    return PruningReport(
        ratio=ratio,
        importance=importance,
        params_before=params_before,
        params_after=params_after,
        macs_before=macs_before,
        macs_after=macs_after,
        channels={name: [before[name], after.get(name, 0)] for name in before},
    )


def _check_ratio(ratio: float) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TypeError(f"ratio must be a float, but got ratio={ratio!r}")
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:  # also rejects NaN
        raise ValueError(f"ratio must satisfy 0 <= ratio < 1, but got ratio={ratio}")
    return ratio


def _count(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    # count_ops_and_params works on a deep copy in eval mode, so the model is not touched.
    # It divides by the batch size but adds Linear biases once per batch, so the count
    # drifts with the batch size; a single sample makes it a well-defined per-sample count.
    macs, params = tp.utils.count_ops_and_params(model, example_inputs[:1])
    return int(round(macs)), int(params)


def _out_channels(model: nn.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            counts[name] = int(module.out_channels)
        elif isinstance(module, nn.Linear):
            counts[name] = int(module.out_features)
    return counts


def _classifier_layers(model: nn.Module, example_inputs: torch.Tensor) -> list[nn.Module]:
    model.eval()  # modes are restored by the caller
    with torch.no_grad():
        output = model(example_inputs)
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            "cannot find the classifier: the model output is not a tensor "
            f"(got {type(output).__name__}); pass ignored_layers explicitly"
        )
    width = output.shape[-1]
    return [
        m
        for m in model.modules()
        if (isinstance(m, nn.modules.conv._ConvNd) and m.out_channels == width)
        or (isinstance(m, nn.Linear) and m.out_features == width)
    ]


def _run_pruner(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    ratio: float,
    p: int,
    global_pruning: bool,
    ignored_layers: list[nn.Module],
) -> None:
    # The dependency graph is traced through autograd, so it needs grad-enabled mode and
    # at least one parameter that requires grad (flags are restored by the caller).
    for param in model.parameters():
        param.requires_grad_(True)
    with torch.enable_grad():
        ratio_dict = None
        if not global_pruning:
            ratio_dict = _per_layer_ratios(model, ratio, ignored_layers)
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs,
            importance=tp.importance.MagnitudeImportance(p=p),
            global_pruning=global_pruning,
            pruning_ratio=ratio,
            pruning_ratio_dict=ratio_dict,
            ignored_layers=ignored_layers,
        )
        pruner.step()


def _per_layer_ratios(
    model: nn.Module, ratio: float, ignored_layers: list[nn.Module]
) -> dict[nn.Module, float]:
    """Per-layer ratios that make torch-pruning keep ``max(1, floor(n * (1 - ratio)))``.

    torch-pruning keeps ``int(n * (1 - r))`` channels and silently skips a group when that
    is zero, so a high ratio on a narrow layer would prune nothing at all. It also rounds
    float noise down. Handing it ``r = (n - keep - 0.5) / n`` makes ``n * (1 - r)`` equal
    ``keep + 0.5``, which truncates to exactly ``keep``.
    """
    ignored = {id(m) for layer in ignored_layers for m in layer.modules()}
    ratios: dict[nn.Module, float] = {}
    for module in model.modules():
        if id(module) in ignored:
            continue
        if isinstance(module, nn.modules.conv._ConvNd):
            n = module.out_channels
        elif isinstance(module, nn.Linear):
            n = module.out_features
        else:
            continue
        keep = max(1, math.floor(n * (1.0 - ratio) + _COUNT_EPS))
        ratios[module] = max(0.0, (n - keep - 0.5) / n)
    return ratios
