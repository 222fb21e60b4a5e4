"""Checks and layer lookups shared by the channel pruners.

:mod:`~nascompress.compression.pruning` (torch-pruning criteria) and
:mod:`~nascompress.compression.nni_pruning` (NNI's choices) both use them; they live here
so that only ``pruning`` imports ``nni_pruning`` (lazily, for the NNI criteria) and
never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from nascompress.compression.sparsity import SPARSITY_MASK

#: The calibration set of Taylor importance is split into at most this many batches.
#: Gradients accumulate over all of them (weighted by batch size, so they equal the
#: gradient of the loss over the whole calibration set); splitting only bounds memory.
TAYLOR_BATCHES = 4

Calibration = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_ratio(ratio: float, name: str = "ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TypeError(f"{name} must be a float, but got {name}={ratio!r}")
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must satisfy 0 <= ratio < 1, but got {name}={ratio}")
    return ratio


def _check_calibration(calibration: object, importance: str) -> Calibration:
    if calibration is None:
        raise ValueError(
            f"importance={importance!r} needs gradients: pass calibration=(inputs, labels), "
            "but got calibration=None"
        )
    if (
        not isinstance(calibration, (tuple, list))
        or len(calibration) != 2
        or not all(isinstance(t, torch.Tensor) for t in calibration)
    ):
        raise ValueError(
            "calibration must be a pair of tensors (inputs, labels), "
            f"but got calibration of type {type(calibration).__name__}"
        )
    inputs, labels = calibration
    if inputs.ndim == 0 or labels.ndim == 0 or len(inputs) != len(labels) or len(inputs) == 0:
        raise ValueError(
            "calibration inputs and labels must be non-empty batches of the same length, but "
            f"got shapes {tuple(inputs.shape)} and {tuple(labels.shape)}"
        )
    return inputs, labels


def _check_layer_ratios(
    model: nn.Module, layer_ratios: Mapping[str, float] | None
) -> dict[str, float]:
    if layer_ratios is None:
        return {}
    if not isinstance(layer_ratios, Mapping):
        raise TypeError(
            "layer_ratios must be a mapping of module name to ratio, "
            f"but got layer_ratios of type {type(layer_ratios).__name__}"
        )
    modules = dict(model.named_modules())
    checked: dict[str, float] = {}
    for name, value in layer_ratios.items():
        module = modules.get(name)
        if not isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            prunable = sorted(_out_channels(model))
            raise ValueError(
                f"layer_ratios keys must name Conv/Linear modules of the model ({prunable}), "
                f"but got layer_ratios[{name!r}]"
            )
        checked[name] = _check_ratio(value, f"layer_ratios[{name!r}]")
    return checked


def _check_not_parametrized(model: nn.Module) -> None:
    parametrized = [name for name, m in model.named_modules() if parametrize.is_parametrized(m)]
    if parametrized:
        # torch-pruning assigns new Parameters to `weight`, which a parametrization forbids.
        raise ValueError(
            f"model must not carry parametrizations when pruning, but got them on {parametrized}; "
            "prune before enabling quantization-aware or sparse training"
        )
    masked = [name for name, m in model.named_modules() if hasattr(m, SPARSITY_MASK)]
    if masked:
        # torch-pruning would shrink the weights but not the masks kept beside them.
        raise ValueError(
            f"model must not carry unstructured sparsity masks when pruning channels, but got "
            f"them on {masked}; prune channels first, or call finalize_sparsity"
        )


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
    # Channels are dim 1: (batch, classes) logits, or (batch, classes, H, W) for a
    # segmentation head; the layers that make them are the model's outputs.
    width = output.shape[1] if output.dim() >= 2 else output.shape[-1]
    return [
        m
        for m in model.modules()
        if (isinstance(m, nn.modules.conv._ConvNd) and m.out_channels == width)
        or (isinstance(m, nn.Linear) and m.out_features == width)
    ]


def _prunable_layers(
    model: nn.Module, ignored_layers: Sequence[nn.Module]
) -> list[tuple[str, nn.Module, int]]:
    """``(name, module, out_channels)`` of every Conv/Linear outside ``ignored_layers``."""
    ignored = {id(m) for layer in ignored_layers for m in layer.modules()}
    layers = []
    for name, module in model.named_modules():
        if id(module) in ignored:
            continue
        if isinstance(module, nn.modules.conv._ConvNd):
            layers.append((name, module, int(module.out_channels)))
        elif isinstance(module, nn.Linear):
            layers.append((name, module, int(module.out_features)))
    return layers
