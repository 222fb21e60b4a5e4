"""Unstructured magnitude pruning: zero the smallest weights, keep the shapes.

Unlike :func:`~nascompress.compression.prune_channels`, nothing is removed: tensors keep
their shape and dense kernels do the same work on zeros. **Unstructured sparsity does not
make dense kernels faster, so latency is not expected to change**; what it can buy is a
smaller artifact, through a sparse encoding (see :func:`sparse_encoding_size`), and only
when enough weights are zero for the encoding to beat the dense one.

Typical use::

    report = magnitude_prune_(model, sparsity=0.8)   # zeros + masks
    enable_sparse_training(model)                    # masks enforced while fine-tuning
    train(model)
    finalize_sparsity(model)                         # plain weights with zeros, masks gone

Only the ``weight`` of Conv and Linear layers is pruned; biases and normalization
parameters stay dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "SPARSIFIABLE_TYPES",
    "SPARSITY_MASK",
    "SparsityMask",
    "SparsityReport",
    "enable_sparse_training",
    "finalize_sparsity",
    "magnitude_prune_",
    "sparse_encoding_size",
]

#: Module types whose ``weight`` :func:`magnitude_prune_` prunes (subclasses included).
SPARSIFIABLE_TYPES: tuple[type[nn.Module], ...] = (nn.modules.conv._ConvNd, nn.Linear)

#: Name of the non-persistent buffer holding a layer's mask (True = weight kept). It is not
#: saved in state_dict, so artifacts and checkpoints do not change shape.
SPARSITY_MASK = "sparsity_mask"

_SCOPES = ("layer", "global")

# Absorbs float noise such as 10 * 0.3 == 3.0000000000000004 or 2.9999999999999996.
_COUNT_EPS = 1e-9


@dataclass
class SparsityReport:
    """What :func:`magnitude_prune_` did; JSON-able through :func:`dataclasses.asdict`.

    Attributes:
        sparsity: Requested fraction of zero weights.
        scope: ``"layer"`` (each layer on its own) or ``"global"`` (one threshold).
        layers: Module name -> achieved fraction of zeros in its ``weight``.
        achieved: Fraction of zeros over all pruned weights together.
        params_total: Parameter count of the whole model (biases and norms included).
        nonzero_params: Nonzero parameters of the whole model.
    """

    sparsity: float
    scope: str
    layers: dict[str, float]
    achieved: float
    params_total: int
    nonzero_params: int


class SparsityMask(nn.Module):
    """Parametrization ``w -> w * mask``: pruned weights stay zero while training.

    The gradient reaching the latent weight is zero where the mask is, so masked entries
    of the latent weight only move through weight decay or momentum, and the computed
    weight is zero there whatever they hold.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        # Not persistent: the state_dict keeps only `parametrizations.weight.original`.
        self.register_buffer("mask", mask.bool(), persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask.to(weight.dtype)

    def extra_repr(self) -> str:
        return f"density={float(self.mask.float().mean()):.3f}"


def magnitude_prune_(model: nn.Module, *, sparsity: float, scope: str = "layer") -> SparsityReport:
    """Zero the smallest-magnitude weights of every Conv/Linear layer, in place.

    Exactly ``floor(n * sparsity)`` entries are zeroed: per layer of ``n`` weights with
    ``scope="layer"``, or among all ``n`` pruned weights together with ``scope="global"``
    (so layers with small weights lose more of them). Ties are broken by position, so the
    count is exact even when many weights are equal (for instance already zero). A boolean
    mask is kept on each layer (a non-persistent buffer) for
    :func:`enable_sparse_training` and :func:`finalize_sparsity`.

    This does not make the model faster: dense kernels multiply the zeros too, and
    latency is not expected to change. It can make the shipped artifact smaller when it
    is stored with a sparse encoding.

    Args:
        model: Network to prune in place. It must not carry parametrizations.
        sparsity: Fraction of weights to zero, in ``[0, 1)``.
        scope: ``"layer"`` or ``"global"``.

    Returns:
        A :class:`SparsityReport` with the achieved sparsity per layer.

    Raises:
        ValueError: If ``sparsity`` is outside ``[0, 1)``, ``scope`` is unknown, the model
            has no Conv/Linear layer, or it carries parametrizations.
        TypeError: If ``sparsity`` is not a number.
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"sparsity must be a float, but got sparsity={sparsity!r}")
    sparsity = float(sparsity)
    if not 0.0 <= sparsity < 1.0:  # also rejects NaN
        raise ValueError(f"sparsity must satisfy 0 <= sparsity < 1, but got sparsity={sparsity}")
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {list(_SCOPES)}, but got scope={scope!r}")
    parametrized = [name for name, m in model.named_modules() if parametrize.is_parametrized(m)]
    if parametrized:
        raise ValueError(
            f"model must not carry parametrizations, but got them on {parametrized}; "
            "prune before enabling quantization-aware or sparse training"
        )
    layers = _sparsifiable(model)
    if not layers:
        raise ValueError("model has no Conv/Linear layer to prune")

    with torch.no_grad():
        if scope == "layer":
            for _, module in layers:
                weight = module.weight
                keep = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
                keep[_smallest(weight.abs().flatten(), _count(weight.numel(), sparsity))] = False
                _set_mask(module, keep.view_as(weight))
        else:
            magnitudes = torch.cat([m.weight.detach().abs().flatten().cpu() for _, m in layers])
            keep = torch.ones(magnitudes.numel(), dtype=torch.bool)
            keep[_smallest(magnitudes, _count(magnitudes.numel(), sparsity))] = False
            start = 0
            for _, module in layers:
                n = module.weight.numel()
                chunk = keep[start : start + n].to(module.weight.device)
                _set_mask(module, chunk.view_as(module.weight))
                start += n

    per_layer = {name: _zero_fraction(module.weight) for name, module in layers}
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    total = sum(m.weight.numel() for _, m in layers)
    params = list(model.parameters())
    return SparsityReport(
        sparsity=sparsity,
        scope=scope,
        layers=per_layer,
        achieved=zeros / total,
        params_total=sum(p.numel() for p in params),
        nonzero_params=sum(int(torch.count_nonzero(p)) for p in params),
    )


def enable_sparse_training(model: nn.Module) -> None:
    """Keep the pruned weights at zero while fine-tuning, in place.

    Registers a :class:`SparsityMask` parametrization (``torch.nn.utils.parametrize``) on
    the ``weight`` of every layer :func:`magnitude_prune_` masked. The latent parameter
    keeps its identity (``parametrizations.weight.original``), so an optimizer built before
    or after this call works; ``state_dict`` keys change until :func:`finalize_sparsity`.

    It coexists with nothing else: a layer whose weight already carries any
    parametrization (quantization-aware training included) is refused, and
    :func:`~nascompress.compression.enable_qat` refuses a masked layer in turn. Finalize
    the sparsity before quantization-aware training; note that QAT fine-tuning then
    trains the zeros back unless they are masked again.

    Args:
        model: A model pruned by :func:`magnitude_prune_`.

    Raises:
        ValueError: If no layer carries a mask, or a masked layer's weight is already
            parametrized (including by an earlier call).
    """
    layers = _masked(model)
    if not layers:
        raise ValueError("model has no sparsity masks: call magnitude_prune_ first")
    taken = [name for name, m in layers if parametrize.is_parametrized(m, "weight")]
    if taken:
        raise ValueError(
            f"weights of {taken} already carry a parametrization; sparse training does not "
            "combine with others (and is not enabled twice)"
        )
    for _, module in layers:
        mask = getattr(module, SPARSITY_MASK)
        with torch.no_grad():
            module.weight.mul_(mask)  # in case the weights moved since magnitude_prune_
        parametrize.register_parametrization(module, "weight", SparsityMask(mask))


def finalize_sparsity(model: nn.Module) -> dict[str, float]:
    """Bake the masks into plain weights and drop them, in place.

    Removes the :class:`SparsityMask` parametrizations leaving ``weight = latent * mask``
    (a plain Parameter with zeros), re-applies the mask on layers that were never put in
    sparse training, and deletes the mask buffers. The model is then an ordinary dense
    model whose weights happen to contain zeros; later training may make them nonzero.

    Args:
        model: A model pruned by :func:`magnitude_prune_`, with or without
            :func:`enable_sparse_training`.

    Returns:
        Module name -> fraction of zeros in its ``weight``, for every masked layer.

    Raises:
        ValueError: If a masked layer's weight carries a parametrization other than a
            single :class:`SparsityMask` (nothing is changed then).
    """
    layers = _masked(model)
    for name, module in layers:
        if parametrize.is_parametrized(module, "weight"):
            plist = module.parametrizations["weight"]
            if len(plist) != 1 or not isinstance(plist[0], SparsityMask):
                raise ValueError(
                    f"module {name!r} has a weight parametrization other than SparsityMask; "
                    "remove it before finalize_sparsity"
                )
    result: dict[str, float] = {}
    for name, module in layers:
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        else:
            with torch.no_grad():
                module.weight.mul_(getattr(module, SPARSITY_MASK))
        delattr(module, SPARSITY_MASK)
        result[name] = _zero_fraction(module.weight)
    return result


def sparse_encoding_size(tensor: torch.Tensor, *, value_bits: int) -> dict:
    """Byte counts of a tensor's payload under dense and two sparse encodings.

    An entry counts as zero when it equals 0 in ``tensor``: pass float weights or integer
    codes of a symmetric quantizer (where code 0 means 0), not codes with a zero-point.
    Values are bit-packed at ``value_bits`` each; sizes are rounded up to whole bytes.

    - ``dense_bytes``: every entry, ``ceil(numel * value_bits / 8)``.
    - ``bitmap_bytes``: one bit per entry saying whether it is nonzero, then the nonzero
      values: ``ceil(numel / 8) + ceil(nonzeros * value_bits / 8)``.
    - ``index_bytes``: the flat index of each nonzero as ``uint16`` (when ``numel <=
      65536``) or ``uint32``, then the nonzero values:
      ``nonzeros * index_width + ceil(nonzeros * value_bits / 8)``.

    Shapes, scales and any container header are not included: the artifact writer adds
    those whatever the encoding. The smallest of the three is the honest choice; with
    moderate sparsity it is often the dense one.

    Args:
        tensor: The tensor to encode (any dtype and shape).
        value_bits: Bits per stored value, an int in ``1..64``.

    Returns:
        ``{"numel", "nonzeros", "value_bits", "dense_bytes", "bitmap_bytes", "index_bytes",
        "index_dtype", "smallest"}``, where ``index_dtype`` is ``"uint16"`` or ``"uint32"``
        and ``smallest`` is ``"dense"``, ``"bitmap"`` or ``"index"`` (ties prefer that
        order).

    Raises:
        TypeError: If ``tensor`` is not a tensor or ``value_bits`` not an int.
        ValueError: If ``value_bits`` is outside ``1..64`` or the tensor has more than
            ``2**32`` entries.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, but got {type(tensor).__name__}")
    if isinstance(value_bits, bool) or not isinstance(value_bits, int):
        raise TypeError(f"value_bits must be an int, but got value_bits={value_bits!r}")
    if not 1 <= value_bits <= 64:
        raise ValueError(f"value_bits must satisfy 1 <= value_bits <= 64, but got {value_bits}")
    numel = tensor.numel()
    if numel > 2**32:
        raise ValueError(f"tensor must have at most 2**32 entries for uint32 indices, got {numel}")
    nonzeros = int(torch.count_nonzero(tensor))
    values = math.ceil(nonzeros * value_bits / 8)
    index_width, index_dtype = (2, "uint16") if numel <= 2**16 else (4, "uint32")
    sizes = {
        "dense": math.ceil(numel * value_bits / 8),
        "bitmap": math.ceil(numel / 8) + values,
        "index": nonzeros * index_width + values,
    }
    return {
        "numel": numel,
        "nonzeros": nonzeros,
        "value_bits": value_bits,
        "dense_bytes": sizes["dense"],
        "bitmap_bytes": sizes["bitmap"],
        "index_bytes": sizes["index"],
        "index_dtype": index_dtype,
        "smallest": min(sizes, key=sizes.__getitem__),  # first minimum: dense, bitmap, index
    }


def _sparsifiable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, SPARSIFIABLE_TYPES)
        and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]


def _masked(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if hasattr(m, SPARSITY_MASK)]


def _count(n: int, sparsity: float) -> int:
    return min(n, math.floor(n * sparsity + _COUNT_EPS))


def _smallest(magnitudes: torch.Tensor, k: int) -> torch.Tensor:
    # A stable sort makes ties (zeros, equal weights) deterministic and the count exact,
    # where thresholding at the k-th value would zero every tied entry.
    return torch.sort(magnitudes, stable=True).indices[:k]


def _set_mask(module: nn.Module, keep: torch.Tensor) -> None:
    module.weight.mul_(keep.to(module.weight.dtype))
    if hasattr(module, SPARSITY_MASK):
        delattr(module, SPARSITY_MASK)  # pruning again replaces the mask (zeros stay zeros)
    module.register_buffer(SPARSITY_MASK, keep, persistent=False)


def _zero_fraction(weight: torch.Tensor) -> float:
    return float((weight == 0).sum()) / weight.numel()
