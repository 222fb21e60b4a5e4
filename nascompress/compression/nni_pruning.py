"""Channel choices from NNI's pruners, removed physically by torch-pruning.

NNI (Microsoft's Neural Network Intelligence) 3.0 is the last release (2023) of an archived
project. Its pruners still compute masks on current torch (checked with NNI 3.0 on torch
2.13: ``L1NormPruner``, ``L2NormPruner``, ``FPGMPruner`` and ``TaylorPruner``), but its
``ModelSpeedup``, which would shrink the masked model, does not: its tracer fails inside
``nni.common.concrete_trace_utils`` (``AttributeError: 'NoneType' object has no attribute
'startswith'``). So NNI is used here for one thing only: deciding which output channels
to drop. The model is then pruned by :func:`~nascompress.compression.prune_channels`
(``importance="nni-l1"``, ...), through torch-pruning's dependency graph, which removes
exactly the channels NNI masked.

NNI is an optional extra (``pip install 'nascompress[nni]'``) because it is archived,
heavy, and only a cross-check of the built-in torch-pruning criteria; it is imported
lazily, so this module imports without it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from nascompress.compression._channels import (
    TAYLOR_BATCHES,
    _check_calibration,
    _check_layer_ratios,
    _check_not_parametrized,
    _check_ratio,
    _classifier_layers,
    _prunable_layers,
)

__all__ = [
    "NNI_PRUNERS",
    "NNIMaskImportance",
    "nni_available",
    "nni_channel_importance",
    "require_nni",
]

#: NNI pruners :func:`nni_channel_importance` can run, by short name.
NNI_PRUNERS: tuple[str, ...] = ("l1", "l2", "fpgm", "taylor")

_NNI_CLASSES = {
    "l1": "L1NormPruner",
    "l2": "L2NormPruner",
    "fpgm": "FPGMPruner",
    "taylor": "TaylorPruner",
}

_OUT_CHANNEL_FNS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)

_INSTALL_HINT = (
    "NNI importances need the optional NNI package: pip install 'nascompress[nni]' "
    "(nni==3.0). It is optional because NNI is archived (last release 3.0, 2023) and heavy, "
    "and nascompress only uses it to choose channels, as a cross-check of the built-in "
    "torch-pruning criteria ('l1', 'l2', 'taylor', 'fpgm'), which need nothing extra."
)


def nni_available() -> bool:
    """Whether NNI's pruning module can be imported."""
    try:
        _import_nni_pruning()
    except ImportError:
        return False
    return True


def require_nni() -> None:
    """Raise an :class:`ImportError` with install instructions when NNI is missing."""
    _import_nni_pruning()


def nni_channel_importance(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    pruner: str = "l1",
    ratio: float,
    layer_ratios: Mapping[str, float] | None = None,
    ignored_layers: Sequence[nn.Module] | None = None,
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Which output channels NNI's pruner keeps, as a 0/1 importance per channel.

    NNI runs on a deep copy of ``model`` (``model`` is not modified), with one config
    entry per distinct ratio (``{"op_names": [...], "sparse_ratio": r}``), so each layer
    is masked on its own: NNI masks ``floor(n * r)`` of its ``n`` output channels, those
    with the lowest NNI metric (L1/L2 norm of the filter, FPGM distance sum, or Taylor
    score). NNI's public API returns masks, not its metric, hence 0/1 scores: ranked by
    torch-pruning with the same counts they select exactly NNI's channels.

    NNI looks at each layer's own weight only, unlike the built-in group criteria, which
    also weigh the BatchNorm and the next layer's input slice of a channel.

    Args:
        model: Network to score; not modified. It must not carry parametrizations.
        example_inputs: A batch the model accepts; used to find the classifier when
            ``ignored_layers`` is ``None`` (the same rule as
            :func:`~nascompress.compression.prune_channels`).
        pruner: One of :data:`NNI_PRUNERS`.
        ratio: Fraction of output channels to mask per layer, in ``[0, 1)``.
        layer_ratios: Module name -> ratio overriding ``ratio`` for that layer.
        ignored_layers: Layers NNI must not mask; see ``prune_channels``.
        calibration: ``(inputs, labels)``, required by ``"taylor"``: NNI's
            ``TaylorPruner`` accumulates gradients over up to
            :data:`~nascompress.compression.pruning.TAYLOR_BATCHES` batches of it, with a
            zero learning rate (the copy's weights do not move) and the copy in eval mode.
        loss_fn: Loss for ``"taylor"``; defaults to cross-entropy.

    Returns:
        Module name -> float tensor ``[out_channels]``, ``1.0`` where NNI keeps the channel
        and ``0.0`` where it masks it, for every Conv/Linear layer outside
        ``ignored_layers`` (layers with ratio 0 are all ones).

    Raises:
        ImportError: If NNI is not installed (the message says how to install it).
        ValueError: If ``pruner`` is unknown, a ratio is outside ``[0, 1)``,
            ``calibration`` is missing for ``"taylor"``, or the model is parametrized.
        RuntimeError: If NNI returns a mask that is not whole output channels.
    """
    nni_pruning = _import_nni_pruning()
    if pruner not in NNI_PRUNERS:
        raise ValueError(f"pruner must be one of {list(NNI_PRUNERS)}, but got pruner={pruner!r}")
    ratio = _check_ratio(ratio)
    overrides = _check_layer_ratios(model, layer_ratios)
    if pruner == "taylor":
        calibration = _check_calibration(calibration, "nni-taylor")
    _check_not_parametrized(model)

    work = copy.deepcopy(model)
    if ignored_layers is None:
        ignored_names = {id(m) for m in _classifier_layers(work, example_inputs)}
    else:
        # Map the caller's modules onto the copy by name.
        wanted = {id(m) for layer in ignored_layers for m in layer.modules()}
        originals = dict(model.named_modules())
        copies = dict(work.named_modules())
        ignored_names = {id(copies[n]) for n, m in originals.items() if id(m) in wanted}
    ignored = [m for m in work.modules() if id(m) in ignored_names]
    layers = _prunable_layers(work, ignored)

    by_ratio: dict[float, list[str]] = {}
    for name, _, _ in layers:
        by_ratio.setdefault(overrides.get(name, ratio), []).append(name)
    config_list = [
        {"op_names": names, "sparse_ratio": r} for r, names in sorted(by_ratio.items()) if r > 0
    ]

    masks: dict = {}
    if config_list:
        cls = getattr(nni_pruning, _NNI_CLASSES[pruner])
        if pruner == "taylor":
            compressor = _taylor_pruner(cls, work, config_list, calibration, loss_fn)
        else:
            compressor = cls(work, config_list)
        _, masks = compressor.compress()
        compressor.unwrap_model()

    result: dict[str, torch.Tensor] = {}
    for name, _, n in layers:
        weight_mask = (masks.get(name) or {}).get("weight")
        if weight_mask is None:
            result[name] = torch.ones(n)
            continue
        rows = weight_mask.detach().reshape(n, -1).bool()
        keep = rows.any(dim=1)
        if not bool((rows.all(dim=1) | ~keep).all()):
            raise RuntimeError(
                f"NNI returned a mask for {name!r} that does not cover whole output channels"
            )
        result[name] = keep.float().cpu()
    return result


class NNIMaskImportance(tp.importance.Importance):
    """torch-pruning importance that scores each channel by an NNI keep-mask.

    The score of a group is the mask of its root layer (``1.0`` kept, ``0.0`` masked); a
    group whose root has no mask is skipped. With per-layer counts equal to the number of
    masked channels, torch-pruning then removes exactly those channels.

    Args:
        masks: Layer module -> float tensor ``[out_channels]`` from
            :func:`nni_channel_importance`.
    """

    def __init__(self, masks: Mapping[nn.Module, torch.Tensor]) -> None:
        self.masks = dict(masks)

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        root = group[0].dep.target.module
        mask = self.masks.get(root)
        if mask is None:
            return None
        # Coupled layers (a residual add) are pruned together; NNI masks each on its own,
        # so their masks must agree for "exactly NNI's channels" to mean anything.
        for dep, idxs in list(group)[1:]:
            other = self.masks.get(dep.target.module)
            if other is not None and dep.handler in _OUT_CHANNEL_FNS:
                if not torch.equal(other[list(idxs)], mask[list(group[0].idxs)]):
                    raise ValueError(
                        "NNI masked coupled layers differently; their channels cannot be "
                        "removed as NNI chose them"
                    )
        return mask[list(group[0].idxs)].to(torch.float32)


def _import_nni_pruning():
    try:
        from nni.compression import pruning as nni_pruning
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} (import failed: {err})") from err
    return nni_pruning


def _taylor_pruner(cls, work, config_list, calibration, loss_fn):
    import nni
    from nni.compression import TorchEvaluator

    inputs, labels = calibration
    loss = loss_fn or F.cross_entropy
    batches = list(
        zip(
            torch.tensor_split(inputs, min(TAYLOR_BATCHES, len(inputs))),
            torch.tensor_split(labels, min(TAYLOR_BATCHES, len(inputs))),
            strict=True,
        )
    )

    def training_step(batch, model):
        return loss(model(batch[0]), batch[1])

    def training_func(model, optimizers, training_step, *args, max_steps=None, **kwargs):
        # Eval mode as in the built-in Taylor criterion; NNI collects the gradients in a
        # hook on each optimizer step and masks after `training_steps` of them.
        model.eval()
        for batch in batches[: max_steps or len(batches)]:
            optimizers.zero_grad()
            training_step(batch, model).backward()
            optimizers.step()

    # NNI needs a traced optimizer to patch its step; lr=0 keeps the weights fixed.
    optimizer = nni.trace(torch.optim.SGD)(work.parameters(), lr=0.0)
    evaluator = TorchEvaluator(training_func, optimizer, training_step)
    return cls(work, config_list, evaluator, training_steps=len(batches))
