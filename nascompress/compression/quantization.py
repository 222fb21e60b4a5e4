"""Weight quantization (three schemes, mixed precision), activation quantization and QAT.

Weights
-------
Only the weights of ``nn.Conv1d``, ``nn.Conv2d`` and ``nn.Linear`` are quantized; biases and
BatchNorm parameters stay float32. Three schemes, chosen with ``scheme=``:

- ``"symmetric"`` (the default): each output channel ``c`` has a scale ``s[c]`` and integer
  codes ``q`` in ``[-qmax, qmax]`` with ``qmax = 2**(bits-1) - 1`` (the code ``-2**(bits-1)``
  is left unused so the grid is symmetric around zero); the weight is ``q * s[c]``.
- ``"affine"``: each output channel has a scale ``s[c]`` and an integer zero-point ``z[c]``;
  codes ``q`` are in ``[0, 2**bits - 1]`` and the weight is ``(q - z[c]) * s[c]``. The grid
  spans the channel's ``[min(w), max(w)]`` (widened to contain 0) instead of ``±max|w|``, so
  a lopsided channel does not waste half of its codes.
- ``"kmeans"``: one codebook of ``2**bits`` float32 values per layer, learned by k-means
  (Lloyd's algorithm) on the layer's weights; codes are indices into the codebook. The grid
  is non-uniform, dense where the weights are dense, which lowers the error at 2-3 bits.

Calibration. Uniform scales are not taken from the extreme weights: per channel, the
clipping threshold is searched over :data:`CLIP_FRACTIONS` of the range (``max|w|`` for
symmetric, ``[min, max]`` shrunk towards 0 for affine) for the one that minimises the
squared quantization error, because clipping a few outliers buys a finer grid for all the
other weights, which matters most at 2-4 bits. k-means starts deterministically, halfway
between a linear grid over ``[min, max]`` and the ``(i + 0.5) / 2**bits`` quantiles of the
nonzero weights, and runs :data:`KMEANS_ITERATIONS` Lloyd iterations.

Zero is exact in every scheme (code 0; the zero-point; a codebook entry pinned to 0.0 when
the layer has exact zeros), so weights zeroed by unstructured pruning stay zero after
quantization and the artifact can store them sparsely.

Mixed precision. ``bits`` is an int (every quantizable layer gets it) or a mapping from
module name, as in ``model.named_modules()``, to bit-width; layers missing from the mapping
are not quantized and stay float32.

Quantization-aware training. :func:`enable_qat` puts a :class:`FakeQuantize`
parametrization on the quantized weights; it recomputes the quantizer (scales, zero-points
or the k-means codebook) from the current latent weight at every forward pass. For k-means
this means the codebook is refreshed every forward (N = 1): it keeps the quantizer
stateless, so :func:`finalize_quantization` rebuilds exactly the codebook the last forward
pass used and what training saw is what ships. Backward is the straight-through estimator
(identity gradient). Post-training quantization is :func:`finalize_quantization` alone.

Activations
-----------
:func:`enable_activation_quant` adds forward pre-hooks (:class:`ActivationFakeQuantize`)
that fake-quantize the input of every quantizable layer, per tensor and affine (scale and
zero-point, codes in ``[0, 2**bits - 1]``), calibrated on the min/max of one calibration
batch (see there why not a percentile). Hooks add no parameters or buffers, so
``state_dict`` keys, pruning and the artifact's tensor list are unchanged; the parameters
travel in the artifact header instead (:func:`activation_quant_params`,
:func:`install_activation_quant`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from nascompress.compression._knobs import QUANT_BITS, SCHEMES

__all__ = [
    "CLIP_FRACTIONS",
    "KMEANS_ITERATIONS",
    "MODEL_BITS",
    "QUANTIZABLE_TYPES",
    "SCHEMES",
    "ActivationFakeQuantize",
    "FakeQuantize",
    "QuantizedWeight",
    "activation_quant_params",
    "calibrate_affine",
    "calibrate_scale",
    "dequantize_affine",
    "dequantize_kmeans",
    "dequantize_tensor",
    "disable_activation_quant",
    "enable_activation_quant",
    "enable_qat",
    "finalize_quantization",
    "install_activation_quant",
    "kmeans_codebook",
    "quantizable_modules",
    "quantize_affine",
    "quantize_kmeans",
    "quantize_tensor",
]

#: Module types whose ``weight`` is quantized (subclasses included).
QUANTIZABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)

#: Clipping thresholds tried by :func:`calibrate_scale` and :func:`calibrate_affine`, as
#: fractions of the range. Largest first, so that ties keep the wider range (less clipping).
CLIP_FRACTIONS: torch.Tensor = torch.linspace(1.0, 0.5, 41)

# Weight quantization schemes: SCHEMES, defined with the other knob values in the
# compression plan (from its leaf module _knobs; re-exported here).

#: Lloyd iterations of :func:`kmeans_codebook`. From its start (see ``_kmeans_1d``) the error
#: changes by under 1% after about 20; each costs one binary search per centroid.
KMEANS_ITERATIONS = 20

# Bit-widths for the uniform tensor-level helpers (codes fit int16/int32); models and the
# k-means codebook (2**bits entries) are limited to MODEL_BITS, which is what the search
# space and the artifact are meant for.
_TENSOR_BITS = (2, 16)
MODEL_BITS: tuple[int, int] = (min(QUANT_BITS), max(QUANT_BITS))
_TINY = torch.finfo(torch.float32).tiny


@dataclass
class QuantizedWeight:
    """Integer codes of one quantized weight and what is needed to dequantize them.

    The first three fields keep their original meaning, so ``QuantizedWeight(codes, scale,
    bits)`` is still a symmetric weight.

    Attributes:
        codes: Integer codes with the weight's shape, on the CPU. Symmetric: ``torch.int8``
            (``torch.int16`` above 8 bits) in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``.
            Affine: ``torch.uint8`` (``torch.int32`` above 8 bits) in ``[0, 2**bits - 1]``.
            k-means: ``torch.uint8`` indices into ``codebook``.
        scale: float32 per-output-channel scales ``[out_channels]`` (symmetric, affine);
            ``None`` for k-means.
        bits: Bit-width of the codes.
        scheme: One of :data:`SCHEMES`.
        zero_point: Affine only: ``torch.int32`` zero-points ``[out_channels]`` in
            ``[0, 2**bits - 1]``.
        codebook: k-means only: float32 values ``[2**bits]``, sorted ascending.

    Raises:
        ValueError: If ``scheme`` is unknown or a field it needs is ``None``.
    """

    codes: torch.Tensor
    scale: torch.Tensor | None
    bits: int
    scheme: str = "symmetric"
    zero_point: torch.Tensor | None = None
    codebook: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _check_scheme(self.scheme)
        needs = {"symmetric": ("scale",), "affine": ("scale", "zero_point"),
                 "kmeans": ("codebook",)}[self.scheme]
        missing = [field for field in needs if getattr(self, field) is None]
        if missing:
            raise ValueError(
                f"a {self.scheme!r} QuantizedWeight needs {', '.join(missing)}, but got None"
            )

    def dequantize(self) -> torch.Tensor:
        """The float32 weight these codes stand for."""
        if self.scheme == "affine":
            return dequantize_affine(self.codes, self.scale, self.zero_point)
        if self.scheme == "kmeans":
            return dequantize_kmeans(self.codes, self.codebook)
        return dequantize_tensor(self.codes, self.scale)


def quantizable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Conv1d/Conv2d/Linear layers of ``model``, in ``named_modules`` order.

    Args:
        model: Any network.

    Returns:
        ``(name, module)`` pairs; ``name`` is the module's ``named_modules`` name.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZABLE_TYPES)]


# -- symmetric -----------------------------------------------------------------------------


def calibrate_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric scale that minimises the squared quantization error.

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
        scale = (max_abs * fraction / qmax).clamp_min(_TINY)
        fake = torch.clamp(torch.round(w / scale[:, None]), -qmax, qmax) * scale[:, None]
        err = (fake - w).pow(2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
    return torch.where(max_abs > 0, best_scale, torch.ones_like(best_scale))


def quantize_tensor(weight: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric integer codes ``clamp(round(weight / scale), -qmax, qmax)``.

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
    """float32 values ``codes * scale`` of symmetric codes, the scale broadcast along dim 0.

    Args:
        codes: Integer (or integer-valued) tensor, output channels along dimension 0.
        scale: Per-channel scales of shape ``[codes.shape[0]]``, or a 0-d scale.

    Returns:
        float32 tensor of ``codes``' shape.

    Raises:
        ValueError: If ``scale`` has the wrong shape or a non-positive entry.
    """
    return codes.float() * _broadcast_scale(scale, codes)


# -- affine --------------------------------------------------------------------------------


def calibrate_affine(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel affine scale and zero-point minimising the squared error.

    The channel's range ``[min(w, 0), max(w, 0)]`` (it always contains 0, so that 0 is
    exactly representable) is shrunk towards 0 by each of :data:`CLIP_FRACTIONS`; the
    fraction with the least squared error wins. ``scale = range / (2**bits - 1)`` and
    ``zero_point = clamp(round(-low / scale), 0, 2**bits - 1)``. An all-zero channel gets
    scale ``1.0`` and zero-point 0.

    Args:
        weight: Floating tensor with output channels along dimension 0.
        bits: Bit-width, an int in ``2..16``.

    Returns:
        ``(scale, zero_point)``: float32 and int32 tensors of shape ``[weight.shape[0]]`` on
        ``weight``'s device.

    Raises:
        ValueError: If ``bits`` is out of range or ``weight`` is empty or 0-d.
        TypeError: If ``bits`` is not an int or ``weight`` is not a floating tensor.
    """
    bits = _check_bits(bits, *_TENSOR_BITS)
    return _affine_params(_as_channels(weight), bits)


def quantize_affine(
    weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int
) -> torch.Tensor:
    """Affine integer codes ``clamp(round(weight / scale) + zero_point, 0, 2**bits - 1)``.

    Args:
        weight: Floating tensor, output channels along dimension 0.
        scale: Positive per-channel scales ``[weight.shape[0]]``, or a 0-d scale.
        zero_point: Integer per-channel zero-points ``[weight.shape[0]]`` (or 0-d), each in
            ``[0, 2**bits - 1]``.
        bits: Bit-width, an int in ``2..16``.

    Returns:
        ``torch.uint8`` codes for ``bits <= 8``, else ``torch.int32``; shape of ``weight``.

    Raises:
        ValueError: If ``bits`` is out of range, or ``scale`` / ``zero_point`` have the
            wrong shape or values.
        TypeError: If ``bits`` is not an int or ``weight`` is not a floating tensor.
    """
    bits = _check_bits(bits, *_TENSOR_BITS)
    _as_channels(weight)
    levels = 2**bits - 1
    s = _broadcast_scale(scale, weight)
    z = _broadcast_zero_point(zero_point, weight, levels).float()
    codes = torch.clamp(torch.round(weight.detach().float() / s) + z, 0, levels)
    return codes.to(torch.uint8 if bits <= 8 else torch.int32)


def dequantize_affine(
    codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor
) -> torch.Tensor:
    """float32 values ``(codes - zero_point) * scale``, broadcast along dimension 0.

    Args:
        codes: Integer tensor, output channels along dimension 0.
        scale: Positive per-channel scales ``[codes.shape[0]]``, or a 0-d scale.
        zero_point: Integer per-channel zero-points ``[codes.shape[0]]``, or 0-d.

    Returns:
        float32 tensor of ``codes``' shape.

    Raises:
        ValueError: If ``scale`` or ``zero_point`` has the wrong shape or ``scale`` a
            non-positive entry.
    """
    s = _broadcast_scale(scale, codes)
    z = _broadcast_zero_point(zero_point, codes, None)
    return (codes.to(torch.int32) - z.to(torch.int32)).float() * s


# -- k-means -------------------------------------------------------------------------------


def kmeans_codebook(
    weight: torch.Tensor, bits: int, *, iterations: int = KMEANS_ITERATIONS
) -> torch.Tensor:
    """A codebook of ``2**bits`` values fitted to all of ``weight``'s values by k-means.

    Deterministic: centroid ``i`` starts halfway between the ``i``-th point of a linear
    grid over ``[min, max]`` and the ``(i + 0.5) / 2**bits`` quantile of the nonzero
    values, then ``iterations`` Lloyd steps assign every value to its nearest centroid and
    move each centroid to the mean of its values (a centroid left without values stays put).
    When ``weight`` has exact zeros, the centroid nearest 0 is pinned to 0.0 so that pruned
    weights stay exactly zero. Small layers may yield repeated entries.

    Args:
        weight: Floating tensor of any shape (at least one element, not 0-d).
        bits: Bit-width, an int in ``2..8``.
        iterations: Lloyd iterations, an int ``>= 0``.

    Returns:
        float32 tensor ``[2**bits]``, sorted ascending, on ``weight``'s device.

    Raises:
        ValueError: If ``bits`` or ``iterations`` is out of range, or ``weight`` is empty.
        TypeError: If ``bits`` is not an int or ``weight`` is not a floating tensor.
    """
    bits = _check_bits(bits, *MODEL_BITS)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an int >= 0, but got iterations={iterations!r}")
    return _kmeans_1d(_as_channels(weight).reshape(-1), 2**bits, iterations)


def quantize_kmeans(weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook value for every element of ``weight``.

    Args:
        weight: Floating tensor of any shape.
        codebook: 1-d float tensor of ``2**bits`` values, ``bits`` in ``2..8`` (need not be
            sorted).

    Returns:
        ``torch.uint8`` indices, shape of ``weight``.

    Raises:
        ValueError: If ``codebook`` is not 1-d of length ``2**bits``.
        TypeError: If ``weight`` or ``codebook`` is not a floating tensor.
    """
    _as_channels(weight)
    book = _check_codebook(codebook)
    order = torch.argsort(book, stable=True)
    book = book.to(weight.device)
    order = order.to(weight.device)
    idx = _nearest(weight.detach().float().reshape(-1), book[order])
    return order[idx].reshape(weight.shape).to(torch.uint8)


def dequantize_kmeans(codes: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """float32 values ``codebook[codes]``.

    Args:
        codes: Integer tensor of indices into ``codebook``.
        codebook: 1-d float tensor of ``2**bits`` values.

    Returns:
        float32 tensor of ``codes``' shape.

    Raises:
        ValueError: If ``codebook`` is malformed or a code indexes past its end.
        TypeError: If ``codebook`` is not a floating tensor.
    """
    book = _check_codebook(codebook)
    index = codes.long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= book.numel()):
        raise ValueError(
            f"codes must be indices in [0, {book.numel() - 1}], but got values in "
            f"[{int(index.min())}, {int(index.max())}]"
        )
    return book.to(codes.device)[index]


# -- quantization-aware training and finalization ------------------------------------------


class FakeQuantize(nn.Module):
    """Parametrization: the weight as the deployed quantizer will see it (STE backward).

    The forward pass returns ``dequantize(quantize(w))`` with the quantizer (scales,
    zero-points, or the k-means codebook) recomputed from the current weight at every call;
    the backward pass is the identity (straight-through estimator), so the latent float
    weight keeps learning.

    Args:
        bits: Bit-width, an int in ``2..8``.
        scheme: One of :data:`SCHEMES`.
    """

    def __init__(self, bits: int, *, scheme: str = "symmetric") -> None:
        super().__init__()
        self.bits = _check_bits(bits, *MODEL_BITS)
        self.scheme = _check_scheme(scheme)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            # Unchecked internals: the public helpers' value checks would sync a GPU per step.
            fake = _dequantize_raw(_quantize_raw(weight, self.bits, self.scheme), weight.ndim)
        # Straight-through: value of `fake`, gradient of `weight`.
        return weight + (fake.to(weight.dtype) - weight).detach()

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scheme={self.scheme!r}"


def enable_qat(
    model: nn.Module, *, bits: int | Mapping[str, int], scheme: str = "symmetric"
) -> None:
    """Switch ``model`` to quantization-aware training, in place.

    Registers a :class:`FakeQuantize` parametrization (``torch.nn.utils.parametrize``) on
    the ``weight`` of every quantized module. Forward passes then use fake-quantized
    weights whose quantizer is recomputed on every call by the same code
    :func:`finalize_quantization` runs, so what training sees is what ships (symmetric and
    affine cost about 40 passes over the weights per forward, k-means one sort plus a few
    binary searches: small next to the activations of a CNN); gradients pass straight
    through to the float weights. Calling it again replaces the bit-widths and scheme
    (layers no longer listed in ``bits`` lose their fake quantizer).

    Parameters keep their identity (``parametrizations.weight.original`` is the old
    ``weight`` object), so an existing optimizer keeps working; ``state_dict`` keys change
    until :func:`finalize_quantization` is called.

    Args:
        model: Network to modify in place.
        bits: Weight bit-width in ``2..8`` for every quantizable layer, or a mapping from
            module name (as in ``named_modules``) to bit-width; unlisted layers stay float.
        scheme: ``"symmetric"``, ``"affine"`` or ``"kmeans"`` (see the module docstring).

    Raises:
        ValueError: If a bit-width is out of range, ``bits`` names modules that are not
            quantizable layers of ``model``, ``scheme`` is unknown, or a weight to change
            carries a parametrization other than this one (combining them is unsupported).
        TypeError: If a bit-width is not an int.
    """
    scheme = _check_scheme(scheme)
    plan = _plan(model, bits)
    for name, module in _touched(model, plan):
        _check_only_ours(name, module)
    for _, module in _touched(model, plan):
        _remove_fake_quant(module)
    for _, module, width in plan:
        parametrize.register_parametrization(module, "weight", FakeQuantize(width, scheme=scheme))


def finalize_quantization(
    model: nn.Module, *, bits: int | Mapping[str, int], scheme: str = "symmetric"
) -> dict[str, QuantizedWeight]:
    """Quantize the weights for deployment, in place.

    Removes the QAT parametrizations (keeping the latent float weights), then for every
    quantized module calibrates the quantizer, computes the codes and overwrites
    ``module.weight.data`` with the dequantized values, so the float model computes
    exactly what the deployed quantized model computes. Without a prior :func:`enable_qat`
    this is post-training quantization. Pass the ``bits`` and ``scheme`` QAT used.

    Args:
        model: Network to quantize in place.
        bits: Weight bit-width in ``2..8`` for every quantizable layer, or a mapping from
            module name to bit-width; unlisted layers keep their float32 weights. (Float32
            models are not quantized at all: the caller skips this function.)
        scheme: ``"symmetric"``, ``"affine"`` or ``"kmeans"``.

    Returns:
        ``{module_name: QuantizedWeight}`` for every quantized module, names as in
        :func:`quantizable_modules`, tensors on the CPU.

    Raises:
        ValueError: As for :func:`enable_qat`.
        TypeError: If a bit-width is not an int.
    """
    scheme = _check_scheme(scheme)
    plan = _plan(model, bits)
    touched = _touched(model, plan)
    for name, module in touched:
        _check_only_ours(name, module)
    for _, module in touched:
        _remove_fake_quant(module)
    result: dict[str, QuantizedWeight] = {}
    for name, module, width in plan:
        weight = module.weight.detach()
        qw = _quantize_raw(weight, width, scheme)
        module.weight.data = _dequantize_raw(qw, weight.ndim).to(weight.dtype)
        result[name] = QuantizedWeight(
            codes=qw.codes.cpu(),
            scale=None if qw.scale is None else qw.scale.float().cpu(),
            bits=width,
            scheme=scheme,
            zero_point=None if qw.zero_point is None else qw.zero_point.cpu(),
            codebook=None if qw.codebook is None else qw.codebook.float().cpu(),
        )
    return result


# -- activations ---------------------------------------------------------------------------


class ActivationFakeQuantize:
    """Forward pre-hook fake-quantizing a layer's (first) input, per tensor, affine.

    The layer computes with ``(clamp(round(x / scale) + zero_point, 0, 2**bits - 1) -
    zero_point) * scale``; the backward pass is the identity (straight-through estimator),
    so QAT keeps training through it. Non-floating inputs pass unchanged.

    Args:
        scale: Positive finite float.
        zero_point: Int in ``[0, 2**bits - 1]``.
        bits: Int in ``2..8``.

    Raises:
        ValueError: If a value is out of range.
        TypeError: If ``bits`` or ``zero_point`` is not an int.
    """

    def __init__(self, *, scale: float, zero_point: int, bits: int) -> None:
        self.bits = _check_bits(bits, *MODEL_BITS)
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            raise TypeError(f"scale must be a float, but got scale={scale!r}") from None
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive and finite, but got scale={scale!r}")
        self.scale = scale
        self.zero_point = _check_bits(zero_point, 0, 2**self.bits - 1, name="zero_point")

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
            return None
        x = args[0]
        with torch.no_grad():
            # One new tensor, then in place: scoring a quantized model runs this at every
            # layer of every batch.
            fake = torch.div(x, self.scale).round_().add_(self.zero_point)
            fake.clamp_(0, 2**self.bits - 1).sub_(self.zero_point).mul_(self.scale)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return (fake, *args[1:])  # no gradient to carry: the quantized value itself
        return (x + (fake - x).detach(), *args[1:])

    def params(self) -> dict[str, Any]:
        """``{"scale": float, "zero_point": int, "bits": int}``."""
        return {"scale": self.scale, "zero_point": self.zero_point, "bits": self.bits}

    def __repr__(self) -> str:
        return (f"ActivationFakeQuantize(scale={self.scale!r}, zero_point={self.zero_point}, "
                f"bits={self.bits})")


def enable_activation_quant(
    model: nn.Module, *, bits: int = 8, calibration: torch.Tensor
) -> dict[str, dict[str, Any]]:
    """Fake-quantize the input of every quantizable layer, calibrated on one batch.

    Runs ``model(calibration)`` once in eval mode without gradients (training flags are
    restored afterwards), with float activations everywhere, recording each quantizable
    layer's input min and max. Each range is widened to contain 0 (so zeros from ReLU and
    padding stay exact) and gives ``scale = (max - min) / (2**bits - 1)`` (rounded to
    float32) and ``zero_point = round(-min / scale)``. Plain min/max, not a percentile:
    at 8 bits the grid is fine enough that clipping outliers gains little, and min/max
    never clips what the calibration batch contains. Layers the calibration forward does not
    reach get no quantizer. Replaces any previous activation quantizers; see
    :func:`disable_activation_quant` to remove them.

    Args:
        model: Network to modify in place (hooks only: no new parameters or buffers).
        bits: Activation bit-width, an int in ``2..8``.
        calibration: A representative floating input batch on the model's device.

    Returns:
        :func:`activation_quant_params` of the modified model.

    Raises:
        ValueError: If ``bits`` is out of range, ``calibration`` is empty, or an observed
            activation is not finite.
        TypeError: If ``bits`` is not an int or ``calibration`` is not a floating tensor.
    """
    bits = _check_bits(bits, *MODEL_BITS)
    if not isinstance(calibration, torch.Tensor) or not calibration.is_floating_point():
        raise TypeError(
            f"calibration must be a floating torch.Tensor, but got {_describe(calibration)}"
        )
    if calibration.numel() == 0:
        raise ValueError(f"calibration must not be empty, but got shape "
                         f"{tuple(calibration.shape)}")
    modules = quantizable_modules(model)
    disable_activation_quant(model)
    ranges: dict[str, tuple[float, float]] = {}

    def observer(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
                low, high = torch.aminmax(args[0].detach())
                old = ranges.get(name, (0.0, 0.0))
                ranges[name] = (min(old[0], float(low)), max(old[1], float(high)))
        return hook

    handles = [module.register_forward_pre_hook(observer(name)) for name, module in modules]
    training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(calibration)
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.train(flag)

    params: dict[str, dict[str, Any]] = {}
    levels = 2**bits - 1
    for name, _ in modules:
        if name not in ranges:
            continue
        low, high = ranges[name]
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"the input of layer {name!r} is not finite on the calibration "
                             f"batch: range [{low}, {high}]")
        # Round the scale to float32 so the file's value is the one forward passes use.
        scale = float(torch.tensor((high - low) / levels, dtype=torch.float32))
        if scale <= 0:  # constant-zero input: any scale represents it exactly
            scale, zero_point = 1.0, 0
        else:
            zero_point = min(max(round(-low / scale), 0), levels)
        params[name] = {"scale": scale, "zero_point": zero_point, "bits": bits}
    install_activation_quant(model, params)
    return activation_quant_params(model)


def install_activation_quant(model: nn.Module, params: Mapping[str, Mapping[str, Any]]) -> None:
    """Install activation quantizers with given parameters (e.g. read from an artifact).

    Replaces any previous activation quantizers of ``model``.

    Args:
        model: Network to modify in place.
        params: ``{module_name: {"scale": float, "zero_point": int, "bits": int}}`` as
            returned by :func:`activation_quant_params`; names must be quantizable layers.

    Raises:
        ValueError: If a name is not a quantizable layer of ``model`` or an entry is
            malformed or out of range.
        TypeError: If a value has the wrong type.
    """
    modules = dict(quantizable_modules(model))
    unknown = sorted(str(name) for name in params if name not in modules)
    if unknown:
        raise ValueError(
            f"params names modules that are not quantizable layers of the model: {unknown}; "
            f"quantizable layers: {sorted(modules)}"
        )
    hooks: dict[str, ActivationFakeQuantize] = {}
    for name, entry in params.items():
        if not isinstance(entry, Mapping) or set(entry) != {"scale", "zero_point", "bits"}:
            raise ValueError(
                f"params[{name!r}] must be a mapping with keys 'scale', 'zero_point' and "
                f"'bits', but got {entry!r}"
            )
        try:
            hooks[name] = ActivationFakeQuantize(**entry)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"params[{name!r}]: {exc}") from None
    disable_activation_quant(model)
    for name, hook in hooks.items():
        modules[name].register_forward_pre_hook(hook)


def activation_quant_params(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The activation quantizers installed on ``model``.

    Args:
        model: Any network.

    Returns:
        ``{module_name: {"scale": float, "zero_point": int, "bits": int}}`` in
        ``named_modules`` order; empty when activations are not quantized.
    """
    result: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, ActivationFakeQuantize):
                result[name] = hook.params()
    return result


def disable_activation_quant(model: nn.Module) -> None:
    """Remove every activation quantizer from ``model`` (a no-op when there is none).

    Args:
        model: Network to modify in place.
    """
    # Hooks are found by type rather than through stored handles: a handle held by a
    # deep-copied model would still point at the original's hook table.
    for module in model.modules():
        hooks = module._forward_pre_hooks
        for key in [k for k, h in hooks.items() if isinstance(h, ActivationFakeQuantize)]:
            del hooks[key]


# -- internals -----------------------------------------------------------------------------


def _quantize_raw(weight: torch.Tensor, bits: int, scheme: str) -> QuantizedWeight:
    """Quantize without value checks; tensors stay on ``weight``'s device."""
    w = _as_channels(weight)
    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        scale = calibrate_scale(weight, bits)
        codes = torch.clamp(torch.round(w / scale[:, None]), -qmax, qmax)
        return QuantizedWeight(codes.to(torch.int8).reshape(weight.shape), scale, bits)
    if scheme == "affine":
        levels = 2**bits - 1
        scale, zero_point = _affine_params(w, bits)
        codes = torch.clamp(torch.round(w / scale[:, None]) + zero_point[:, None], 0, levels)
        return QuantizedWeight(codes.to(torch.uint8).reshape(weight.shape), scale, bits,
                               scheme="affine", zero_point=zero_point)
    flat = w.reshape(-1)
    codebook = _kmeans_1d(flat, 2**bits, KMEANS_ITERATIONS)
    codes = _nearest(flat, codebook).to(torch.uint8).reshape(weight.shape)
    return QuantizedWeight(codes, None, bits, scheme="kmeans", codebook=codebook)


def _dequantize_raw(qw: QuantizedWeight, ndim: int) -> torch.Tensor:
    """Same arithmetic as the public dequantizers (bit-identical), without their checks."""
    shape = (-1,) + (1,) * (ndim - 1)
    if qw.scheme == "kmeans":
        return qw.codebook[qw.codes.long()]
    scale = qw.scale.reshape(shape)
    if qw.scheme == "affine":
        return (qw.codes.to(torch.int32) - qw.zero_point.reshape(shape)).float() * scale
    return qw.codes.float() * scale


def _affine_params(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    levels = 2**bits - 1
    low = w.amin(dim=1).clamp_max(0)
    span = w.amax(dim=1).clamp_min(0) - low
    best_err = torch.full_like(span, float("inf"))
    best_scale = span / levels
    best_zero = torch.zeros_like(span)
    for fraction in CLIP_FRACTIONS.tolist():
        scale = (span * fraction / levels).clamp_min(_TINY)
        zero = torch.clamp(torch.round(-low * fraction / scale), 0, levels)
        codes = torch.clamp(torch.round(w / scale[:, None]) + zero[:, None], 0, levels)
        err = ((codes - zero[:, None]) * scale[:, None] - w).pow(2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        best_zero = torch.where(better, zero, best_zero)
    nonzero = span > 0
    scale = torch.where(nonzero, best_scale, torch.ones_like(best_scale))
    zero = torch.where(nonzero, best_zero, torch.zeros_like(best_zero))
    return scale, zero.to(torch.int32)


def _kmeans_1d(values: torch.Tensor, k: int, iterations: int) -> torch.Tensor:
    """Lloyd's k-means on a flat float32 tensor; returns ``k`` sorted centroids.

    Cells of sorted 1-d centroids are intervals of the sorted values, so each step needs
    only a binary search per centroid and prefix sums (float64, and deterministic on GPUs,
    unlike scatter-add), not a pass over all values. Everything stays in tensors, so a GPU
    never waits on the host.
    """
    ordered = values.sort().values
    n = ordered.numel()
    device = values.device
    prefix = torch.cat([ordered.new_zeros(1, dtype=torch.float64), ordered.double().cumsum(0)])
    has_zero = (values == 0).any()
    # Start: the mean of a linear grid over [min, max] and the quantiles of the nonzero
    # values. Quantiles alone crowd the centroids where weights are dense and leave the tails
    # coarse (Lloyd then stalls, badly at 6-8 bits); a linear grid alone wastes levels where
    # no weight lies (the gap pruning leaves around 0). Optimal 1-d quantizers place levels
    # with density ~ p**(1/3), between the two. Zeros are skipped because the pinned 0.0
    # centroid stands for them.
    steps = torch.arange(k, device=device)
    linear = ordered[0] + (ordered[-1] - ordered[0]) * steps / max(k - 1, 1)
    negatives = (ordered < 0).sum()
    zeros = (ordered == 0).sum()
    rank = (steps * 2 + 1) * (n - zeros) // (2 * k)  # rank among the nonzero values
    index = torch.where(rank < negatives, rank, rank + zeros).clamp_max(n - 1)
    centroids = _pin_zero(((linear + ordered[index]) / 2).sort().values, has_zero)
    total = torch.tensor([n], device=device)
    for _ in range(iterations):
        # Same boundaries as _nearest: value v belongs to cell i when mid[i-1] < v <= mid[i].
        mids = (centroids[1:] + centroids[:-1]) / 2
        ends = torch.cat([torch.searchsorted(ordered, mids, right=True), total])
        starts = torch.cat([total.new_zeros(1), ends[:-1]])
        counts = ends - starts
        means = ((prefix[ends] - prefix[starts]) / counts.clamp_min(1)).float()
        centroids = torch.where(counts > 0, means, centroids)
        centroids = _pin_zero(centroids.sort().values, has_zero)
    return centroids


def _pin_zero(sorted_centroids: torch.Tensor, has_zero: torch.Tensor) -> torch.Tensor:
    # Zeroing the centroid nearest 0 keeps the order; done with tensors so a GPU never syncs.
    slot = torch.arange(sorted_centroids.numel(), device=sorted_centroids.device)
    pin = (slot == sorted_centroids.abs().argmin()) & has_zero
    return torch.where(pin, torch.zeros_like(sorted_centroids), sorted_centroids)


def _nearest(values: torch.Tensor, sorted_codebook: torch.Tensor) -> torch.Tensor:
    mids = (sorted_codebook[1:] + sorted_codebook[:-1]) / 2
    return torch.bucketize(values, mids)


def _check_codebook(codebook: torch.Tensor) -> torch.Tensor:
    if not isinstance(codebook, torch.Tensor) or not codebook.is_floating_point():
        raise TypeError(
            f"codebook must be a floating torch.Tensor, but got {_describe(codebook)}"
        )
    sizes = [2**b for b in range(MODEL_BITS[0], MODEL_BITS[1] + 1)]
    if codebook.ndim != 1 or codebook.numel() not in sizes:
        raise ValueError(
            f"codebook must be 1-d with 2**bits entries for bits in {MODEL_BITS[0]}.."
            f"{MODEL_BITS[1]}, but got shape {tuple(codebook.shape)}"
        )
    return codebook.detach().float()


def _plan(model: nn.Module, bits: int | Mapping[str, int]) -> list[tuple[str, nn.Module, int]]:
    """``(name, module, bits)`` for every layer to quantize, in ``named_modules`` order."""
    modules = quantizable_modules(model)
    if not isinstance(bits, Mapping):
        width = _check_bits(bits, *MODEL_BITS)
        return [(name, module, width) for name, module in modules]
    names = {name for name, _ in modules}
    unknown = sorted(str(name) for name in bits if name not in names)
    if unknown:
        raise ValueError(
            f"bits names modules that are not quantizable layers of the model: {unknown}; "
            f"quantizable layers: {sorted(names)}"
        )
    widths = {name: _check_bits(v, *MODEL_BITS, name=f"bits[{name!r}]")
              for name, v in bits.items()}
    return [(name, module, widths[name]) for name, module in modules if name in widths]


def _touched(
    model: nn.Module, plan: list[tuple[str, nn.Module, int]]
) -> list[tuple[str, nn.Module]]:
    """Layers a (re)configuration changes: the planned ones and those carrying our QAT."""
    planned = {name for name, _, _ in plan}
    return [(name, module) for name, module in quantizable_modules(model)
            if name in planned or _fake_quant_count(module)[0]]


def _check_scheme(scheme: str) -> str:
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, but got scheme={scheme!r}")
    return scheme


def _check_bits(bits: int, low: int, high: int, *, name: str = "bits") -> int:
    if isinstance(bits, bool):
        raise TypeError(f"{name} must be an int, but got {name}={bits!r}")
    try:
        value = operator.index(bits)  # accepts numpy integers, rejects 4.0
    except TypeError:
        raise TypeError(f"{name} must be an int, but got {name}={bits!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must satisfy {low} <= {name} <= {high}, but got {name}={value}")
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
    s = _broadcast_channels(scale, like, "scale").float()
    if not bool((s > 0).all()):
        raise ValueError("scale must be positive everywhere, but got a non-positive entry")
    return s.to(like.device)


def _broadcast_zero_point(
    zero_point: torch.Tensor, like: torch.Tensor, levels: int | None
) -> torch.Tensor:
    if not isinstance(zero_point, torch.Tensor) or zero_point.is_floating_point():
        raise TypeError(
            f"zero_point must be an integer torch.Tensor, but got {_describe(zero_point)}"
        )
    z = _broadcast_channels(zero_point, like, "zero_point").to(torch.int32)
    if levels is not None and z.numel() and (int(z.min()) < 0 or int(z.max()) > levels):
        raise ValueError(
            f"zero_point must lie in [0, {levels}], but got values in "
            f"[{int(z.min())}, {int(z.max())}]"
        )
    return z.to(like.device)


def _broadcast_channels(t: torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
    if t.ndim == 0:
        return t
    if t.ndim == 1 and like.ndim >= 1 and t.shape[0] == like.shape[0]:
        return t.reshape((-1,) + (1,) * (like.ndim - 1))
    raise ValueError(
        f"{name} must be 0-d or of shape [{like.shape[0] if like.ndim else '?'}], "
        f"but got {name} of shape {tuple(t.shape)}"
    )


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
