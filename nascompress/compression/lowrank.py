"""Low-rank factorization of Linear and Conv2d layers.

A Linear layer becomes two thinner ones by truncated SVD; a ``k x k`` convolution becomes
``1x1 -> k x k -> 1x1`` by a Tucker-2 decomposition of its weight over the output and
input channel modes. The replacements are plain ``nn.Linear`` / ``nn.Conv2d`` modules in
an ``nn.Sequential``, so the factorized model trains, quantizes, exports and can be
channel-pruned with torch-pruning like any other network (prune the rank channels too).

Whether a layer is factorized depends only on its shape and the arguments, never on its
weights, so calling :func:`apply_lowrank_` with the same arguments on a freshly built model
reproduces the architecture; that is how an artifact template is rebuilt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "LowRankReport",
    "apply_lowrank_",
    "factorize_conv_tucker2",
    "factorize_linear",
]

#: Convolutions with fewer input channels than this are never factorized. The input mode
#: of such a layer has nothing to compress (``in_rank <= c_in``), so Tucker-2 would only add
#: a near-useless ``1x1`` projection; such layers are usually the first of the network, the
#: one that runs at full input resolution, where an extra layer costs the most latency for
#: a parameter saving of a few hundred weights at best.
MIN_TUCKER_IN_CHANNELS = 4

# Absorbs float noise such as 0.3 * 10 == 3.0000000000000004 when turning a ratio into a rank.
_RANK_EPS = 1e-9


@dataclass
class LowRankReport:
    """What :func:`apply_lowrank_` did; JSON-able through :func:`dataclasses.asdict`.

    Attributes:
        rank_ratio: Requested fraction of each layer's full rank that is kept.
        params_before: Parameter count of the whole model before factorization.
        params_after: Parameter count after factorization.
        layers: Original module name -> ``{"kind": "svd" | "tucker2", "ranks": [...],
            "params_before": int, "params_after": int}`` for every factorized layer.
            ``ranks`` is ``[rank]`` for SVD and ``[in_rank, out_rank]`` for Tucker-2. The
            factors are registered as ``<name>.0``, ``<name>.1`` (and ``<name>.2``).
    """

    rank_ratio: float
    params_before: int
    params_after: int
    layers: dict[str, dict] = field(default_factory=dict)


def factorize_linear(layer: nn.Linear, *, rank: int) -> nn.Sequential:
    """Split a Linear layer into two by truncated SVD.

    ``W ~= U_r S_r V_r^T`` becomes ``Linear(in, rank, bias=False)`` with weight
    ``sqrt(S_r) V_r^T`` followed by ``Linear(rank, out)`` with weight ``U_r sqrt(S_r)`` and
    the original bias. The singular values are split evenly between the factors so both
    have comparable ranges, which keeps the per-channel quantization error of the two
    factors alike. At ``rank == min(in, out)`` the output is reproduced up to float error;
    the truncation is the best rank-``rank`` approximation of ``W`` (Eckart-Young).

    Args:
        layer: The layer to factorize; it is not modified.
        rank: Inner width, ``1 <= rank <= min(in_features, out_features)``.

    Returns:
        ``nn.Sequential(first, second)`` on the layer's device and dtype, in the layer's
        training mode.

    Raises:
        TypeError: If ``layer`` is not an ``nn.Linear`` or ``rank`` is not an integer.
        ValueError: If ``rank`` is out of range.
    """
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"layer must be an nn.Linear, but got {type(layer).__name__}")
    out_features, in_features = layer.weight.shape
    rank = _check_rank("rank", rank, min(in_features, out_features))
    weight = layer.weight.detach()
    # float64 so that a full-rank factorization reproduces the layer to well below 1e-4.
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    root = s[:rank].sqrt()
    kwargs = {"device": weight.device, "dtype": weight.dtype}
    first = nn.Linear(in_features, rank, bias=False, **kwargs)
    second = nn.Linear(rank, out_features, bias=layer.bias is not None, **kwargs)
    with torch.no_grad():
        first.weight.copy_(root[:, None] * vh[:rank])
        second.weight.copy_(u[:, :rank] * root[None, :])
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach())
    return _finish(nn.Sequential(first, second), layer)


def factorize_conv_tucker2(
    layer: nn.Conv2d, *, in_rank: int, out_rank: int, hooi_iters: int = 2
) -> nn.Sequential:
    """Split a convolution into ``1x1 -> k x k core -> 1x1`` by a Tucker-2 decomposition.

    The weight ``W[c_out, c_in, kh, kw]`` is approximated as
    ``core x_0 U_out x_1 U_in`` with orthonormal ``U_out[c_out, out_rank]`` and
    ``U_in[c_in, in_rank]``. They start from the HOSVD (leading left singular vectors of
    the mode-0 and mode-1 unfoldings, via ``torch.linalg.svd``) and are refined by
    ``hooi_iters`` sweeps of higher-order orthogonal iteration, each of which can only
    lower the reconstruction error. The layers are:

    - ``Conv2d(c_in, in_rank, 1, bias=False)`` with weight ``U_in^T``;
    - ``Conv2d(in_rank, out_rank, (kh, kw), bias=False)`` with the core and the original
      stride, padding, dilation and padding mode (padding commutes with the bias-free
      channel projection before it, so the result equals the original layer's);
    - ``Conv2d(out_rank, c_out, 1)`` with weight ``U_out`` and the original bias.

    With ``in_rank == c_in`` and ``out_rank == c_out`` the output is reproduced up to float
    error.

    Args:
        layer: The convolution to factorize (``groups == 1``); it is not modified.
        in_rank: Channels after the input projection, ``1 <= in_rank <= c_in``.
        out_rank: Channels out of the core, ``1 <= out_rank <= c_out``.
        hooi_iters: Refinement sweeps after the HOSVD initialisation, ``>= 0``.

    Returns:
        ``nn.Sequential(first, core, last)`` on the layer's device and dtype, in the
        layer's training mode.

    Raises:
        TypeError: If ``layer`` is not an ``nn.Conv2d`` or a rank is not an integer.
        ValueError: If ``layer.groups != 1`` or a rank or ``hooi_iters`` is out of range.
    """
    if not isinstance(layer, nn.Conv2d):
        raise TypeError(f"layer must be an nn.Conv2d, but got {type(layer).__name__}")
    if layer.groups != 1:
        # A grouped conv's weight is block-diagonal across groups; one Tucker-2 over all
        # channels would densify it, i.e. usually grow it.
        raise ValueError(
            f"Tucker-2 needs a convolution with groups == 1, but got groups={layer.groups}"
        )
    c_out, c_in, kh, kw = layer.weight.shape
    in_rank = _check_rank("in_rank", in_rank, c_in)
    out_rank = _check_rank("out_rank", out_rank, c_out)
    if isinstance(hooi_iters, bool) or not isinstance(hooi_iters, int) or hooi_iters < 0:
        raise ValueError(f"hooi_iters must be an integer >= 0, but got hooi_iters={hooi_iters!r}")

    weight = layer.weight.detach()
    w = weight.double()
    u_out = _leading_left(w.reshape(c_out, -1), out_rank)
    u_in = _leading_left(w.transpose(0, 1).reshape(c_in, -1), in_rank)
    for _ in range(hooi_iters):
        # Each factor is re-fitted with the other one fixed (alternating least squares).
        projected = torch.einsum("oihw,ip->ophw", w, u_in)
        u_out = _leading_left(projected.reshape(c_out, -1), out_rank)
        projected = torch.einsum("oihw,oq->iqhw", w, u_out)
        u_in = _leading_left(projected.reshape(c_in, -1), in_rank)
    core = torch.einsum("oihw,oq,ip->qphw", w, u_out, u_in)

    kwargs = {"device": weight.device, "dtype": weight.dtype}
    first = nn.Conv2d(c_in, in_rank, 1, bias=False, **kwargs)
    middle = nn.Conv2d(
        in_rank,
        out_rank,
        (kh, kw),
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        bias=False,
        padding_mode=layer.padding_mode,
        **kwargs,
    )
    last = nn.Conv2d(out_rank, c_out, 1, bias=layer.bias is not None, **kwargs)
    with torch.no_grad():
        first.weight.copy_(u_in.T.reshape(in_rank, c_in, 1, 1))
        middle.weight.copy_(core)
        last.weight.copy_(u_out.reshape(c_out, out_rank, 1, 1))
        if layer.bias is not None:
            last.bias.copy_(layer.bias.detach())
    return _finish(nn.Sequential(first, middle, last), layer)


def apply_lowrank_(
    model: nn.Module,
    *,
    rank_ratio: float,
    min_rank: int = 1,
    skip: Sequence[str] = (),
    skip_classifier: bool = True,
) -> LowRankReport:
    """Factorize, in place, every layer of ``model`` where that saves parameters.

    Candidates are every ``nn.Linear`` (truncated SVD, :func:`factorize_linear`) and every
    ``nn.Conv2d`` with a kernel larger than ``1x1``, ``groups == 1`` and at least
    :data:`MIN_TUCKER_IN_CHANNELS` input channels (Tucker-2,
    :func:`factorize_conv_tucker2`). Ranks are ``max(min_rank, round(rank_ratio * n))``
    (rounded half up, capped at ``n``) where ``n`` is ``min(out, in)`` for a Linear, and
    ``c_in`` / ``c_out`` for the two Tucker-2 ranks. A candidate is replaced only if the
    factors have strictly fewer parameters than the layer; all other modules are left
    alone. The decision depends on shapes only, so the same call on a freshly built model
    yields the same architecture (for instance, a template for
    :func:`~nascompress.compression.load_artifact`).

    Factorize before enabling quantization-aware training, and build optimizers afterwards
    (the replaced layers' parameters are gone). Channel pruning with torch-pruning works on
    the result; it also prunes the rank channels between the factors.

    Args:
        model: Network to modify in place.
        rank_ratio: Fraction of each layer's full rank to keep, in ``(0, 1]``.
        min_rank: Smallest rank kept, ``>= 1``.
        skip: Module names (as in ``named_modules``) never to factorize.
        skip_classifier: Leave the last ``nn.Linear`` in module order (the output layer of
            a sequential classifier) alone: its error goes straight to the logits and it is
            small anyway.

    Returns:
        A :class:`LowRankReport`.

    Raises:
        TypeError: If ``rank_ratio`` or ``min_rank`` has the wrong type.
        ValueError: If ``rank_ratio`` is outside ``(0, 1]``, ``min_rank < 1``, a name in
            ``skip`` is not a module of ``model``, or the model carries parametrizations.
    """
    if isinstance(rank_ratio, bool) or not isinstance(rank_ratio, (int, float)):
        raise TypeError(f"rank_ratio must be a float, but got rank_ratio={rank_ratio!r}")
    rank_ratio = float(rank_ratio)
    if not 0.0 < rank_ratio <= 1.0:  # also rejects NaN
        raise ValueError(f"rank_ratio must satisfy 0 < rank_ratio <= 1, but got {rank_ratio=}")
    if isinstance(min_rank, bool) or not isinstance(min_rank, int):
        raise TypeError(f"min_rank must be an integer, but got min_rank={min_rank!r}")
    if min_rank < 1:
        raise ValueError(f"min_rank must be >= 1, but got min_rank={min_rank}")
    if isinstance(skip, str):
        # A bare string would otherwise be read as a sequence of one-character names.
        raise TypeError(f"skip must be a sequence of module names, but got the string {skip!r}")
    modules = dict(model.named_modules())
    unknown = sorted(set(skip) - set(modules))
    if unknown:
        raise ValueError(f"skip names modules that model does not have: {unknown}")
    parametrized = [name for name, m in modules.items() if parametrize.is_parametrized(m)]
    if parametrized:
        raise ValueError(
            f"model must not carry parametrizations when factorizing, but got them on "
            f"{parametrized}; factorize before enabling quantization-aware training"
        )

    skipped = set(skip)
    if skip_classifier:
        linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
        if linears:
            skipped.add(linears[-1])

    params_before = _n_params(model)
    report = LowRankReport(rank_ratio=rank_ratio, params_before=params_before, params_after=0)
    # Decide on the original module list first: replacing while iterating would revisit the
    # new factors.
    plan: list[tuple[str, nn.Module, str, list[int]]] = []
    for name, module in modules.items():
        if name in skipped or name == "":
            continue
        choice = _plan_layer(module, rank_ratio, min_rank)
        if choice is not None:
            plan.append((name, module, *choice))

    for name, module, kind, ranks in plan:
        if kind == "svd":
            replacement = factorize_linear(module, rank=ranks[0])
        else:
            replacement = factorize_conv_tucker2(module, in_rank=ranks[0], out_rank=ranks[1])
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, replacement)
        report.layers[name] = {
            "kind": kind,
            "ranks": ranks,
            "params_before": _n_params(module),
            "params_after": _n_params(replacement),
        }
    report.params_after = _n_params(model)
    return report


def _plan_layer(
    module: nn.Module, rank_ratio: float, min_rank: int
) -> tuple[str, list[int]] | None:
    """``(kind, ranks)`` if factorizing ``module`` saves parameters, else ``None``."""
    if isinstance(module, nn.Linear):
        out_features, in_features = module.weight.shape
        rank = _ratio_rank(rank_ratio, min(out_features, in_features), min_rank)
        before = out_features * in_features
        after = rank * (in_features + out_features)
        return ("svd", [rank]) if after < before else None
    if isinstance(module, nn.Conv2d):
        c_out, c_in, kh, kw = module.weight.shape
        if module.groups != 1 or kh * kw == 1 or c_in < MIN_TUCKER_IN_CHANNELS:
            return None
        in_rank = _ratio_rank(rank_ratio, c_in, min_rank)
        out_rank = _ratio_rank(rank_ratio, c_out, min_rank)
        before = c_out * c_in * kh * kw
        after = c_in * in_rank + in_rank * out_rank * kh * kw + out_rank * c_out
        return ("tucker2", [in_rank, out_rank]) if after < before else None
    return None


def _ratio_rank(rank_ratio: float, full: int, min_rank: int) -> int:
    # Half up, not Python's round-half-to-even, so ties always go the same way: ratio 0.5
    # keeps 3 of 5 channels just as it keeps 2 of 3 (banker's rounding gives 2 for both).
    rank = math.floor(rank_ratio * full + 0.5 + _RANK_EPS)
    return min(full, max(min_rank, rank))


def _check_rank(name: str, rank: int, full: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"{name} must be an integer, but got {name}={rank!r}")
    if not 1 <= rank <= full:
        raise ValueError(f"{name} must satisfy 1 <= {name} <= {full}, but got {name}={rank}")
    return rank


def _leading_left(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` leading left singular vectors of ``matrix``, as columns."""
    # A wide-enough basis needs the full U when rank exceeds the matrix's short side (e.g. a
    # conv with c_out > c_in * kh * kw); the extra columns span the null space.
    full = rank > min(matrix.shape)
    u, _, _ = torch.linalg.svd(matrix, full_matrices=full)
    return u[:, :rank]


def _finish(replacement: nn.Sequential, layer: nn.Module) -> nn.Sequential:
    replacement.train(layer.training)
    frozen = not layer.weight.requires_grad
    if frozen:
        for param in replacement.parameters():
            param.requires_grad_(False)
    return replacement


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
