"""Per-output-channel symmetric weight quantization, with quantization-aware training.

Only the weights of ``nn.Conv1d``, ``nn.Conv2d`` and ``nn.Linear`` are quantized; biases,
BatchNorm parameters and activations stay float32. Each output channel ``c`` gets one
scale ``s[c]`` and integer codes ``q`` in ``[-qmax, qmax]`` with ``qmax = 2**(bits-1) - 1``
(the code ``-2**(bits-1)`` is left unused so the grid is symmetric around zero); the
weight the network computes with is ``q * s[c]``.

The scale is calibrated rather than taken from the largest weight: for every channel the
clipping threshold is searched over fractions of ``max|w|`` for the one that minimises the
squared quantization error, because clipping a few outliers usually buys a finer grid for
all the other weights, which matters most at 2-4 bits.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "CLIP_FRACTIONS",
    "MODEL_BITS",
    "QUANTIZABLE_TYPES",
    "FakeQuantize",
    "QuantizedWeight",
    "calibrate_scale",
    "dequantize_tensor",
    "enable_qat",
    "finalize_quantization",
    "quantizable_modules",
    "quantize_tensor",
]

#: Module types whose ``weight`` is quantized (subclasses included).
QUANTIZABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)

#: Clipping thresholds tried by :func:`calibrate_scale`, as fractions of ``max|w|``.
#: Largest first, so that ties keep the wider range (less clipping).
CLIP_FRACTIONS: torch.Tensor = torch.linspace(1.0, 0.5, 41)

# Bit-widths for the tensor-level helpers (codes fit int16); models are limited to
# MODEL_BITS because that is what the search space and artifact are meant for.
_TENSOR_BITS = (2, 16)
MODEL_BITS: tuple[int, int] = (2, 8)


@dataclass
class QuantizedWeight:
    """Integer codes and per-output-channel scales of one quantized weight.

    Attributes:
        codes: Integer codes with the weight's shape (``torch.int8``; ``torch.int16`` above
            8 bits), each in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``. Stored on the CPU.
        scale: float32 scales of shape ``[out_channels]``. Stored on the CPU.
        bits: Bit-width of the codes.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    bits: int

    def dequantize(self) -> torch.Tensor:
        """The float32 weight these codes stand for."""
        return dequantize_tensor(self.codes, self.scale)


def quantizable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Conv1d/Conv2d/Linear layers of ``model``, in ``named_modules`` order.

    Args:
        model: Any network.

    Returns:
        ``(name, module)`` pairs; ``name`` is the module's ``named_modules`` name.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZABLE_TYPES)]


def calibrate_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel scale that minimises the squared quantization error.

    For every channel (dimension 0) the clipping threshold is chosen among
    :data:`CLIP_FRACTIONS` of the channel's ``max|w|``; the scale is
    ``threshold / qmax``. An all-zero channel gets scale ``1.0`` (its codes are all zero).

    Args:
        weight: Floating tensor with output channels along dimension 0 (a 1-d tensor is
            one value per channel).
        bits: Bit-width, an int in ``2..16``.

    Returns:
        float32 tensor of shape ``[weight.shape[0]]`` on ``weight``'s device.

    Raises:
        ValueError: If ``bits`` is out of range or ``weight`` is empty or 0-d.
        TypeError: If ``bits`` is not an int or ``weight`` is not a floating tensor.
    """
    bits = _check_bits(bits, *_TENSOR_BITS)
    w = _as_channels(weight)
    qmax = 2 ** (bits - 1) - 1
    max_abs = w.abs().amax(dim=1)
    best_err = torch.full_like(max_abs, float("inf"))
    best_scale = max_abs / qmax
    # One fraction at a time keeps memory at one weight-sized temporary even for big layers.
    for fraction in CLIP_FRACTIONS.tolist():
        scale = (max_abs * fraction / qmax).clamp_min(torch.finfo(torch.float32).tiny)
        fake = torch.clamp(torch.round(w / scale[:, None]), -qmax, qmax) * scale[:, None]
        err = (fake - w).pow(2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
    return torch.where(max_abs > 0, best_scale, torch.ones_like(best_scale))


def quantize_tensor(weight: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes ``clamp(round(weight / scale), -qmax, qmax)``.

    Args:
        weight: Floating tensor, output channels along dimension 0.
        scale: Per-channel scales of shape ``[weight.shape[0]]``, or a 0-d scale.
        bits: Bit-width, an int in ``2..16``.

    Returns:
        ``torch.int8`` codes for ``bits <= 8``, else ``torch.int16``; shape of ``weight``.

    Raises:
        ValueError: If ``bits`` is out of range or ``scale`` has the wrong shape or a
            non-positive entry.
        TypeError: If ``bits`` is not an int or ``weight`` is not a floating tensor.
    """
    bits = _check_bits(bits, *_TENSOR_BITS)
    _as_channels(weight)
    qmax = 2 ** (bits - 1) - 1
    s = _broadcast_scale(scale, weight)
    codes = torch.clamp(torch.round(weight.detach().float() / s), -qmax, qmax)
    return codes.to(torch.int8 if bits <= 8 else torch.int16)


def dequantize_tensor(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 values ``codes * scale``, the scale broadcast along dimension 0.

    Args:
        codes: Integer (or integer-valued) tensor, output channels along dimension 0.
        scale: Per-channel scales of shape ``[codes.shape[0]]``, or a 0-d scale.

    Returns:
        float32 tensor of ``codes``' shape.

    Raises:
        ValueError: If ``scale`` has the wrong shape or a non-positive entry.
    """
    return codes.float() * _broadcast_scale(scale, codes)


class FakeQuantize(nn.Module):
    """Parametrization: the weight as the deployed quantizer will see it (STE backward).

    The forward pass returns ``dequantize(quantize(w))`` with a scale recalibrated from the
    current weight by :func:`calibrate_scale` at every call; the backward pass is the
    identity (straight-through estimator), so the latent float weight keeps learning.
    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = _check_bits(bits, *MODEL_BITS)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            scale = calibrate_scale(weight, self.bits)
            # Inline quantize/dequantize: their argument checks would sync a GPU every step.
            qmax = 2 ** (self.bits - 1) - 1
            s = scale.reshape((-1,) + (1,) * (weight.ndim - 1))
            fake = torch.clamp(torch.round(weight.float() / s), -qmax, qmax) * s
        # Straight-through: value of `fake`, gradient of `weight`.
        return weight + (fake.to(weight.dtype) - weight).detach()

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def enable_qat(model: nn.Module, *, bits: int) -> None:
    """Switch ``model`` to quantization-aware training, in place.

    Registers a :class:`FakeQuantize` parametrization (``torch.nn.utils.parametrize``) on
    the ``weight`` of every quantizable module. Forward passes then use fake-quantized
    weights whose scales are calibrated with :func:`calibrate_scale` on every call (the
    same quantizer :func:`finalize_quantization` applies, so what training sees is what
    ships; it costs about 40 passes over the weights per forward, small next to the
    activations of a CNN); gradients pass straight through to the float weights.
    Calling it again replaces the bit-width.

    Parameters keep their identity (``parametrizations.weight.original`` is the old
    ``weight`` object), so an existing optimizer keeps working; ``state_dict`` keys change
    until :func:`finalize_quantization` is called.

    Args:
        model: Network to modify in place.
        bits: Weight bit-width, an int in ``2..8``.

    Raises:
        ValueError: If ``bits`` is out of range, or a quantizable weight already carries a
            parametrization other than this one (combining them is not supported).
        TypeError: If ``bits`` is not an int.
    """
    bits = _check_bits(bits, *MODEL_BITS)
    for name, module in quantizable_modules(model):
        _check_only_ours(name, module)
    for _, module in quantizable_modules(model):
        _remove_fake_quant(module)
        parametrize.register_parametrization(module, "weight", FakeQuantize(bits))


def finalize_quantization(model: nn.Module, *, bits: int) -> dict[str, QuantizedWeight]:
    """Quantize every quantizable weight for deployment, in place.

    Removes the QAT parametrizations (keeping the latent float weights), then for every
    quantizable module calibrates the scales, computes the codes and overwrites
    ``module.weight.data`` with the dequantized values, so the float model computes
    exactly what the deployed quantized model computes.

    Args:
        model: Network to quantize in place.
        bits: Weight bit-width, an int in ``2..8``. (Float32 models are not quantized at
            all: the caller skips this function.)

    Returns:
        ``{module_name: QuantizedWeight}`` for every quantizable module, names as in
        :func:`quantizable_modules`.

    Raises:
        ValueError: If ``bits`` is out of range, or a quantizable weight carries a
            parametrization that is not :func:`enable_qat`'s.
        TypeError: If ``bits`` is not an int.
    """
    bits = _check_bits(bits, *MODEL_BITS)
    modules = quantizable_modules(model)
    for name, module in modules:
        _check_only_ours(name, module)
    result: dict[str, QuantizedWeight] = {}
    for name, module in modules:
        _remove_fake_quant(module)
        weight = module.weight.detach()
        scale = calibrate_scale(weight, bits)
        codes = quantize_tensor(weight, scale, bits)
        module.weight.data = dequantize_tensor(codes, scale).to(weight.dtype)
        result[name] = QuantizedWeight(codes=codes.cpu(), scale=scale.float().cpu(), bits=bits)
    return result


def _check_bits(bits: int, low: int, high: int) -> int:
    if isinstance(bits, bool):
        raise TypeError(f"bits must be an int, but got bits={bits!r}")
    try:
        value = operator.index(bits)  # accepts numpy integers, rejects 4.0
    except TypeError:
        raise TypeError(f"bits must be an int, but got bits={bits!r}") from None
    if not low <= value <= high:
        raise ValueError(f"bits must satisfy {low} <= bits <= {high}, but got bits={value}")
    return value


def _as_channels(weight: torch.Tensor) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating torch.Tensor, but got {_describe(weight)}")
    if weight.ndim == 0 or weight.numel() == 0:
        raise ValueError(
            f"weight must have at least one dimension and one element, "
            f"but got shape {tuple(weight.shape)}"
        )
    return weight.detach().float().reshape(weight.shape[0], -1)


def _broadcast_scale(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(scale, torch.Tensor):
        raise TypeError(f"scale must be a torch.Tensor, but got {_describe(scale)}")
    if scale.ndim == 0:
        s = scale.float()
    elif scale.ndim == 1 and like.ndim >= 1 and scale.shape[0] == like.shape[0]:
        s = scale.float().reshape((-1,) + (1,) * (like.ndim - 1))
    else:
        raise ValueError(
            f"scale must be 0-d or of shape [{like.shape[0] if like.ndim else '?'}], "
            f"but got scale of shape {tuple(scale.shape)}"
        )
    if not bool((s > 0).all()):
        raise ValueError("scale must be positive everywhere, but got a non-positive entry")
    return s.to(like.device)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype}"
    return f"{type(value).__name__}"


def _fake_quant_count(module: nn.Module) -> tuple[int, int]:
    """(ours, total) parametrizations on ``module.weight``."""
    if not parametrize.is_parametrized(module, "weight"):
        return 0, 0
    plist = module.parametrizations["weight"]
    return sum(isinstance(p, FakeQuantize) for p in plist), len(plist)


def _check_only_ours(name: str, module: nn.Module) -> None:
    ours, total = _fake_quant_count(module)
    if total > ours:
        raise ValueError(
            f"module {name!r} has a weight parametrization that is not FakeQuantize; "
            "combining it with quantization is not supported"
        )


def _remove_fake_quant(module: nn.Module) -> None:
    ours, _ = _fake_quant_count(module)
    if ours:
        # leave_parametrized=False restores the latent float weight (same Parameter object).
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
