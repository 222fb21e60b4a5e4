"""The ``user-model`` supernet, bootstrapped from the user's pre-trained model.

As NNCF's BootstrapNAS does, the supernet *is* the user's model (loaded with its
checkpoint); nothing is re-initialised. What is elastic is found on the model itself,
once, by :func:`find_structure` (the space calls it when ``elastic: true``):

* **width** (``arch/width_mult``, a share in ``(0, 1]``): torch-pruning's
  :class:`~torch_pruning.DependencyGraph` finds the channel groups, the sets of channels
  that must shrink together (a convolution's filters, its BatchNorm, the matching input
  slice of every layer that reads them; residual additions couple whole stages into one
  group; a depthwise convolution shrinks with the channels that feed it; ``Flatten`` maps
  a channel onto its block of ``Linear`` inputs). At width ``r`` every group of ``n``
  channels keeps its first ``max(1, floor(r * n + 0.5))``. The layers that produce the
  model's output (those pruning protects: a Conv/Linear as wide as the output) are never
  shrunk, nor are groups touching layers the masking below does not handle (grouped but
  not depthwise or transposed convolutions, LayerNorm, GroupNorm, embeddings, attention,
  bare parameters...): those stay at full width and the space records why
  (``space.to_dict()["left_fixed"]``).
* **depth** (``arch/<blocks>/depth``): a *block* is a child of an ``nn.Sequential`` that
  holds at least one Conv/Linear, runs once per forward, and whose output has its input's
  shape on an example batch (found by a forward trace). Consecutive blocks of one
  ``Sequential`` form a run, named after its blocks (``blocks.2``, ``layer1.1-2``); its
  key counts the leading blocks kept, ``0`` to the run's length, the others are replaced
  by ``nn.Identity`` (Once-for-All skips a stage's trailing blocks the same way). A
  residual block skipped is its shortcut; a squeeze-excite module inside a ``Sequential``
  is a block too (skipping it turns SE off). A model without such blocks has no depth
  keys.
* **bits** (``quant/bits``, ``quant/scheme``): every Conv1d/Conv2d/Linear weight (the
  layers :meth:`~nascompress.compression.plan.CompressionPlan.finalize_` quantizes) is
  fake-quantized in the forward by the plan's own stateless quantizer, straight-through,
  as in :mod:`~nascompress.supernet.mobilenet`.

How a subnet runs inside the supernet (training and :meth:`ElasticUserModel.forward`):
the model runs through :func:`torch.func.functional_call` with each Conv/Linear weight
replaced by the subnet's *slice* of it (kept output rows, kept input columns) quantized
at the subnet's bit-width and put back into a tensor of zeros of the full shape; skipped
blocks are swapped for ``nn.Identity`` for the duration of the call. The parameters and
the ``state_dict`` stay the user's (keys ``model.<name>``).

Why masking the weights is exact: a kept channel of any layer is computed from kept
input channels only, with exactly the weights the extracted layer has; a dropped
channel may carry any value (e.g. ``act(bias)`` after BatchNorm), but it reaches no kept
channel, because every layer that reads it multiplies it by a zero column. This needs
no assumption on the activations (``f(0)`` need not be 0, hard-swish and sigmoid gates
are fine); it assumes that channels are mixed only by the Conv/Linear layers the
dependency graph sees. Per-channel operations (BatchNorm, activations, pooling,
element-wise sums and products, concatenation, flatten) are fine; a parameter-free op
that mixes channels (a mean or softmax over the channel dimension, a channel shuffle)
is not. :func:`find_structure` therefore checks, before any training, that a narrowed
and shortened subnet run masked equals the extracted model, and leaves width or any
run that fails at full size, recording why. Slicing before quantizing makes the
quantizer see exactly the extracted layer's weight, so the per-layer k-means codebook
is right too, not only per-channel scales.

:meth:`ElasticUserModel.sort_channels_` (after the warm-up) permutes every elastic group
by importance (torch-pruning's group L1 magnitude over the whole group), physically and
consistently in every tensor of the group, so the full model computes the same function
and narrower subnets keep the most important channels. :meth:`ElasticUserModel.extract`
then builds the real subnet: a deep copy of the model, each group's trailing channels
removed by torch-pruning, skipped blocks replaced by ``nn.Identity``. Its structure is
what ``space.build_model(params)`` builds (:func:`bootstrap_subnet`), so artifacts,
export and pick reload it like any model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from nascompress.compression._channels import _classifier_layers
from nascompress.supernet._elastic import FLOAT_BITS, Supernet, fake_quant

WIDTH_KEY = "arch/width_mult"
#: The width :func:`find_structure` checks extraction at.
PROBE_WIDTH = 0.5

_OPTYPE = tp.ops.OPTYPE
#: Graph nodes without tensors of their own: they only carry channels through.
_PASS_THROUGH = {_OPTYPE.ELEMENTWISE, _OPTYPE.CONCAT, _OPTYPE.SPLIT, _OPTYPE.RESHAPE,
                 _OPTYPE.SLICE, _OPTYPE.UNBIND, _OPTYPE.EXPAND}
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
_MIXING = (nn.modules.conv._ConvNd, nn.Linear)


# -- what is elastic ---------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """The part of ``<module>.<attr>`` along ``dim`` that one channel group indexes:
    ``idxs[i]`` holds the group's channel ``roots[i]``."""

    module: str
    attr: str
    dim: int
    idxs: tuple[int, ...]
    roots: tuple[int, ...]


@dataclass(frozen=True)
class ChannelGroup:
    """``size`` channels that shrink together, named by torch-pruning's root layer."""

    root: str
    size: int
    slices: tuple[Slice, ...]


@dataclass(frozen=True)
class BlockRun:
    """Consecutive skippable children ``indices`` of the ``Sequential`` at ``container``."""

    container: str
    indices: tuple[int, ...]

    @property
    def blocks(self) -> tuple[str, ...]:
        prefix = f"{self.container}." if self.container else ""
        return tuple(f"{prefix}{i}" for i in self.indices)

    @property
    def key(self) -> str:
        first, last = self.blocks[0], self.indices[-1]
        return f"arch/{first if len(self.indices) == 1 else f'{first}-{last}'}/depth"


@dataclass(frozen=True)
class Structure:
    """What is elastic in a model, and what was left at full size (``left_fixed``)."""

    groups: tuple[ChannelGroup, ...]
    runs: tuple[BlockRun, ...]
    left_fixed: tuple[str, ...] = ()

    def run(self, key: str) -> BlockRun:
        return next(run for run in self.runs if run.key == key)


def kept_channels(size: int, ratio: float) -> int:
    """Channels a group of ``size`` keeps at width ``ratio`` (at least one)."""
    return max(1, min(size, math.floor(ratio * size + 0.5)))


def example_batch(input_shape: Sequence[int], device: torch.device | str = "cpu",
                  batch: int = 2) -> torch.Tensor:
    return torch.zeros(batch, *input_shape, device=device)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode, every module's mode restored after."""
    modes = {m: m.training for m in model.modules()}
    try:
        yield model.eval()
    finally:
        for module, mode in modes.items():
            module.training = mode


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's graph of ``model``, traced in eval mode (modes and
    ``requires_grad`` flags restored)."""
    flags = {p: p.requires_grad for p in model.parameters()}
    model.requires_grad_(True)  # the trace follows autograd
    try:
        with evaluating(model), torch.enable_grad():
            return tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                         verbose=False)
    finally:
        for parameter, flag in flags.items():
            parameter.requires_grad_(flag)


def _tensors(node, out: bool) -> list[tuple[str, int]] | str:
    """``(attr, dim)`` of the tensors a graph node's channels index, or why they are not
    handled."""
    module, kind = node.module, node.type
    if kind in _PASS_THROUGH:
        return []
    if kind == _OPTYPE.OUTPUT:
        return "reaches the model's output"
    if kind == _OPTYPE.CONV:
        if module.transposed or module.groups != 1:
            return f"{type(module).__name__} with groups={module.groups}" + (
                " (transposed)" if module.transposed else "")
        return [("weight", 0), ("bias", 0)] if out else [("weight", 1)]
    if kind == _OPTYPE.DEPTHWISE_CONV:
        if module.in_channels != module.out_channels or module.transposed:
            return f"{type(module).__name__} with a channel multiplier"
        return [("weight", 0), ("bias", 0)]
    if kind == _OPTYPE.LINEAR:
        return [("weight", 0), ("bias", 0)] if out else [("weight", 1)]
    if kind == _OPTYPE.BN:
        return [(attr, 0) for attr in _BN_TENSORS]
    if kind == _OPTYPE.PRELU:
        return [("weight", 0)] if module.num_parameters > 1 else []
    return f"a {type(module).__name__} layer"


def _group_slices(graph, group, names: Mapping[Any, str]) -> tuple[Slice, ...] | str:
    merged: dict[tuple[str, str, int], dict[int, int]] = {}
    for item in group:
        dep = item.dep
        tensors = _tensors(dep.target, graph.is_out_channel_pruning_fn(dep.handler))
        if isinstance(tensors, str):
            return tensors
        if not tensors:
            continue
        name = names.get(dep.target.module)
        roots = item.root_idxs
        if name is None or roots is None or any(r is None for r in roots):
            return f"an untraceable use of {type(dep.target.module).__name__}"
        for attr, dim in tensors:
            if getattr(dep.target.module, attr, None) is None:
                continue
            mapping = merged.setdefault((name, attr, dim), {})
            for idx, root in zip(item.idxs, roots, strict=True):
                if mapping.setdefault(int(idx), int(root)) != int(root):
                    return f"{name}.{attr} indexed twice by one group"
    return tuple(Slice(name, attr, dim, tuple(sorted(m)), tuple(m[i] for i in sorted(m)))
                 for (name, attr, dim), m in merged.items())


def channel_groups(model: nn.Module, example: torch.Tensor
                   ) -> tuple[tuple[ChannelGroup, ...], tuple[str, ...]]:
    """The elastic channel groups of ``model`` and, for the others, why they stay fixed."""
    names = {module: name for name, module in model.named_modules()}
    with evaluating(model):
        protected = _classifier_layers(model, example)
    graph = dependency_graph(model, example)
    groups, fixed = [], []
    for group in graph.get_all_groups(ignored_layers=protected,
                                      root_module_types=_MIXING):
        root = names.get(group[0].dep.target.module, "?")
        slices = _group_slices(graph, group, names)
        if isinstance(slices, str):
            fixed.append(f"channels of {root} stay at full width: {slices}")
            continue
        groups.append(ChannelGroup(root, len(group[0].idxs), slices))
    return tuple(groups), tuple(fixed)


def block_runs(model: nn.Module, example: torch.Tensor) -> tuple[BlockRun, ...]:
    """The runs of skippable blocks (see the module docstring), found by one forward."""
    with evaluating(model):
        protected = {id(m) for m in _classifier_layers(model, example)}
    seen: dict[int, list[tuple[Any, Any]]] = {}
    candidates: list[tuple[str, int, nn.Module]] = []
    hooks = []

    def record(module, args, kwargs, output):
        seen.setdefault(id(module), []).append((
            tuple(args[0].shape) if len(args) == 1 and not kwargs
            and isinstance(args[0], torch.Tensor) else None,
            tuple(output.shape) if isinstance(output, torch.Tensor) else None))

    for name, container in model.named_modules():
        if not isinstance(container, nn.Sequential):
            continue
        for index, (child_name, child) in enumerate(container.named_children()):
            inner = [m for m in child.modules() if m is not child]
            if (child_name == str(index) and any(isinstance(m, _MIXING) for m in inner)
                    and not any(id(m) in protected for m in child.modules())):
                candidates.append((name, index, child))
                hooks.append(child.register_forward_hook(record, with_kwargs=True))
    try:
        with evaluating(model), torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    runs: list[BlockRun] = []
    for container, index, child in candidates:
        calls = seen.get(id(child), [])
        if len(calls) != 1 or calls[0][0] is None or calls[0][0] != calls[0][1]:
            continue
        last = runs[-1] if runs else None
        if last and last.container == container and last.indices[-1] == index - 1:
            runs[-1] = BlockRun(container, (*last.indices, index))
        else:
            runs.append(BlockRun(container, (index,)))
    return tuple(runs)


def find_structure(model: nn.Module, input_shape: Sequence[int]) -> Structure:
    """What is elastic in ``model``, checked before any training.

    Finds the channel groups and the runs of skippable blocks, then checks that a subnet
    at width :data:`PROBE_WIDTH` with every run at depth 0 (outermost runs, then
    innermost ones) computes, masked inside the supernet, what the extracted model
    computes. When a probe fails, width and each run are checked alone; whatever fails
    stays at full size, with the reason in ``left_fixed``.
    """
    example = example_batch(input_shape)
    groups, fixed = channel_groups(model, example)
    runs = block_runs(model, example)
    structure = Structure(groups, runs, fixed)
    probe = torch.randn(4, *input_shape, generator=torch.Generator().manual_seed(0))

    def problem(structure: Structure, runs: Sequence[BlockRun]) -> str | None:
        subnet = {WIDTH_KEY: PROBE_WIDTH if structure.groups else 1.0,
                  **{run.key: 0 for run in runs}}
        return _mismatch(model, structure, subnet, probe)

    outer = [r for r in runs if not _nested(r, runs)]
    inner = [r for r in runs if not any(_nested(o, [r]) for o in runs if o is not r)]
    if problem(structure, outer) is None and problem(structure, inner) is None:
        return structure
    notes = list(fixed)
    width_problem = problem(Structure(groups, ()), [])
    if width_problem:
        notes.append(f"width stays fixed: {width_problem}")
        groups = ()
    kept = []
    for run in runs:
        why = problem(Structure(groups, (run,)), [run])
        if why:
            notes.append(f"blocks {', '.join(run.blocks)} stay: {why}")
        else:
            kept.append(run)
    structure = Structure(groups, tuple(kept), tuple(notes))
    for chosen in (outer, inner):
        chosen = [r for r in chosen if r in kept]
        why = problem(structure, chosen)
        if why:
            raise ValueError(f"space.options.model: its elastic parts do not combine: {why}")
    return structure


def _nested(run: BlockRun, runs: Sequence[BlockRun]) -> bool:
    """Whether ``run`` lies inside a block of another run of ``runs``."""
    return any(other is not run and any(run.container == b or run.container.startswith(b + ".")
                                        for b in other.blocks) for other in runs)


def _mismatch(model: nn.Module, structure: Structure, subnet: Mapping[str, Any],
              probe: torch.Tensor) -> str | None:
    """Why the masked subnet and the extracted one disagree on ``probe`` (or ``None``)."""
    try:
        with evaluating(model), torch.no_grad():
            masked = run_subnet(model, structure, subnet, probe)
            extracted = extract_subnet(model, structure, subnet, probe.shape[1:]).eval()(probe)
    except Exception as exc:  # a torch-pruning or shape failure is the answer too
        return f"running or extracting the subnet fails ({type(exc).__name__}: {exc})"
    scale = float(masked.abs().max()) if masked.numel() else 1.0
    if masked.shape != extracted.shape or not torch.allclose(
            masked, extracted, rtol=1e-4, atol=1e-5 * max(1.0, scale)):
        return ("the extracted subnet computes something else than the masked one (the "
                "model mixes channels outside the Conv/Linear layers torch-pruning sees)")
    return None


# -- running a subnet ----------------------------------------------------------------------


def skipped_blocks(structure: Structure, subnet: Mapping[str, Any]) -> list[str]:
    """Paths of the blocks ``subnet`` skips, outermost only, in model order."""
    paths = [path for run in structure.runs
             for path in run.blocks[int(subnet.get(run.key, len(run.indices))):]]
    return [p for p in paths if not any(p.startswith(q + ".") for q in paths)]


def _under(name: str, paths: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in paths)


def kept_indices(model: nn.Module, structure: Structure, ratio: float
                 ) -> dict[str, tuple[torch.Tensor | None, torch.Tensor | None]]:
    """Per Conv/Linear layer narrowed at width ``ratio``: the kept output rows and input
    columns of its weight (``None``: all)."""
    dropped: dict[tuple[str, int], set[int]] = {}
    for group in structure.groups:
        keep = kept_channels(group.size, ratio)
        if keep == group.size:
            continue
        for s in group.slices:
            if s.attr == "weight" and s.dim in (0, 1):
                drop = {i for i, root in zip(s.idxs, s.roots, strict=True) if root >= keep}
                dropped.setdefault((s.module, s.dim), set()).update(drop)
    kept: dict[str, list[torch.Tensor | None]] = {}
    for (name, dim), drop in dropped.items():
        module = model.get_submodule(name)
        if not isinstance(module, _MIXING):
            continue
        size = module.weight.shape[dim]
        index = torch.tensor([i for i in range(size) if i not in drop], dtype=torch.long)
        kept.setdefault(name, [None, None])[dim] = index
    return {name: (rows, cols) for name, (rows, cols) in kept.items()}


def subnet_weight(weight: torch.Tensor, rows: torch.Tensor | None,
                  cols: torch.Tensor | None, bits: int, scheme: str) -> torch.Tensor:
    """The subnet's slice of ``weight``, fake-quantized, inside zeros of the full shape."""
    part = weight
    if rows is not None:
        rows = rows.to(weight.device)
        part = part.index_select(0, rows)
    if cols is not None:
        cols = cols.to(weight.device)
        part = part.index_select(1, cols)
    part = fake_quant(part, bits, scheme)
    if rows is None and cols is None:
        return part
    if rows is None:
        rows = torch.arange(weight.shape[0], device=weight.device)
    if cols is None:
        cols = torch.arange(weight.shape[1], device=weight.device)
    return weight.new_zeros(weight.shape).index_put((rows[:, None], cols[None, :]), part)


def _bits(subnet: Mapping[str, Any]) -> tuple[int, str]:
    return int(subnet.get("quant/bits", FLOAT_BITS)), str(subnet.get("quant/scheme",
                                                                      "symmetric"))


@contextmanager
def skipping(model: nn.Module, paths: Sequence[str]) -> Iterator[None]:
    """``model`` with the blocks at ``paths`` replaced by ``nn.Identity`` (restored after)."""
    swapped = []
    try:
        for path in paths:
            parent, _, index = path.rpartition(".")
            container = model.get_submodule(parent)
            swapped.append((container, index, container._modules[index]))
            container._modules[index] = nn.Identity()
        yield
    finally:
        for container, index, module in reversed(swapped):
            container._modules[index] = module


def run_subnet(model: nn.Module, structure: Structure, subnet: Mapping[str, Any],
               x: torch.Tensor, *, kept=None) -> torch.Tensor:
    """``model``'s forward as the subnet computes it (see the module docstring)."""
    from nascompress.compression.quantization import QUANTIZABLE_TYPES

    skipped = skipped_blocks(structure, subnet)
    if kept is None:
        kept = kept_indices(model, structure, float(subnet.get(WIDTH_KEY, 1.0)))
    bits, scheme = _bits(subnet)
    weights = {}
    for name, module in model.named_modules():
        if not isinstance(module, _MIXING) or _under(name, skipped):
            continue
        rows, cols = kept.get(name, (None, None))
        quantize = bits < FLOAT_BITS and isinstance(module, QUANTIZABLE_TYPES)
        if rows is None and cols is None and not quantize:
            continue
        weights[f"{name}.weight" if name else "weight"] = subnet_weight(
            module.weight, rows, cols, bits if quantize else FLOAT_BITS, scheme)
    with skipping(model, skipped):
        return torch.func.functional_call(model, weights, (x,))


# -- extraction and channel order ------------------------------------------------------


@torch.no_grad()
def extract_subnet(model: nn.Module, structure: Structure, subnet: Mapping[str, Any],
                   input_shape: Sequence[int]) -> nn.Module:
    """A real copy of ``model`` narrowed and shortened as ``subnet`` says (float weights,
    train mode, gradients cleared)."""
    device = next(model.parameters()).device
    out = copy.deepcopy(model)
    out.zero_grad(set_to_none=True)
    ratio = float(subnet.get(WIDTH_KEY, 1.0))
    cuts = [(g.root, list(range(kept_channels(g.size, ratio), g.size)))
            for g in structure.groups if kept_channels(g.size, ratio) < g.size]
    if cuts:
        graph = dependency_graph(out, example_batch(input_shape, device))
        for root, idxs in cuts:
            module = out.get_submodule(root)
            pruner = graph.get_pruner_of_module(module)
            graph.get_pruning_group(module, pruner.prune_out_channels, idxs).prune()
    for path in skipped_blocks(structure, subnet):
        parent, _, index = path.rpartition(".")
        out.get_submodule(parent)._modules[index] = nn.Identity()
    out.requires_grad_(True)
    return out.train()


@torch.no_grad()
def sort_channels(model: nn.Module, structure: Structure, input_shape: Sequence[int]) -> None:
    """Reorder every elastic group of ``model`` by importance, largest first, in place
    (group L1 magnitude, torch-pruning's ``GroupMagnitudeImportance(p=1)``); the model's
    function is unchanged."""
    device = next(model.parameters()).device
    graph = dependency_graph(model, example_batch(input_shape, device))
    scorer = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)
    for group in structure.groups:
        module = model.get_submodule(group.root)
        pruner = graph.get_pruner_of_module(module)
        full = graph.get_pruning_group(module, pruner.prune_out_channels,
                                       list(range(group.size)))
        order = torch.argsort(scorer(full).cpu(), descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order))
        for s in group.slices:
            tensor = getattr(model.get_submodule(s.module), s.attr)
            root_of = dict(zip(s.idxs, s.roots, strict=True))
            perm = torch.arange(tensor.shape[s.dim])
            perm[list(s.idxs)] = torch.tensor(
                sorted(s.idxs, key=lambda i: (int(rank[root_of[i]]), i)), dtype=torch.long)
            tensor.data.copy_(tensor.data.index_select(s.dim, perm.to(tensor.device)))


def is_full(structure: Structure, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` name the whole model (full width, every block kept)."""
    ratio = float(params.get(WIDTH_KEY, 1.0))
    return (all(kept_channels(g.size, ratio) == g.size for g in structure.groups)
            and not skipped_blocks(structure, params))


def bootstrap_subnet(model: nn.Module, structure: Structure, params: Mapping[str, Any],
                     input_shape: Sequence[int]) -> nn.Module:
    """The subnet ``params`` name, taken from a freshly loaded ``model``: channels sorted
    by importance, then extracted (``model`` itself when ``params`` name all of it). Its
    structure is what :meth:`ElasticUserModel.extract` returns for ``params``."""
    if is_full(structure, params):
        return model
    sort_channels(model, structure, input_shape)
    return extract_subnet(model, structure, params, input_shape)


# -- the supernet ----------------------------------------------------------------------------


class ElasticUserModel(Supernet):
    """The supernet of a :class:`~nascompress.spaces.UserModelSpace` with
    ``elastic: true``: the user's pre-trained model, run as any of its subnets.

    Built by ``space.build_supernet(input_shape=..., num_classes=...)``; keeps the
    contract of :mod:`~nascompress.supernet._elastic`. See the module docstring for
    what is elastic and how a subnet runs.

    Args:
        space: the elastic ``user-model`` space (its model, checkpoint, structure and
            the choices of its elastic dimensions).
        input_shape: one example's shape; must be the space's ``input_shape``.
        num_classes: logits the model produces (checked on an example batch).

    Raises:
        ValueError: ``input_shape`` differs from the space's, the model's output has
            another width, or a width choice lies outside ``(0, 1]``.
    """

    def __init__(self, space, *, input_shape: Sequence[int], num_classes: int) -> None:
        if tuple(space.input_shape or ()) != tuple(input_shape):
            raise ValueError(
                f"space.options.input_shape: {list(space.input_shape or [])} is not the "
                f"dataset's example shape {list(input_shape)}; set it to "
                f"{list(input_shape)}")
        super().__init__(space, input_shape=input_shape, num_classes=num_classes)
        self.structure: Structure = space.elastic_structure
        for value in self.choices.get(WIDTH_KEY, []):
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 < value <= 1:
                raise ValueError(f"space.dimensions.{WIDTH_KEY}: width shares must lie in "
                                 f"(0, 1], but got {value!r}; use e.g. [0.5, 0.75, 1.0]")
        self.model = space.load_model()
        with evaluating(self.model), torch.no_grad():
            out = self.model(example_batch(self.input_shape))
        if tuple(out.shape[1:2]) != (num_classes,):
            raise ValueError(f"space.options.model: the model outputs {tuple(out.shape)} "
                             f"for a batch of 2, not (2, {num_classes}) logits")
        self._kept: dict[float, Any] = {}

    # -- forward -----------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ratio = float(self._active.get(WIDTH_KEY, 1.0))
        if ratio not in self._kept:  # depends on the width only: computed once per share
            self._kept[ratio] = kept_indices(self.model, self.structure, ratio)
        return run_subnet(self.model, self.structure, self._active, x,
                          kept=self._kept[ratio])

    # -- extraction and channel order ------------------------------------------------

    def extract(self, params: Mapping[str, Any]) -> nn.Module:
        """The subnet as a real model (a pruned, shortened copy of the user's model)
        with float weights; its structure is ``space.build_model(params)``'s. In eval
        mode it computes what the supernet computes for that subnet at 32 bits (at
        fewer bits once the compression plan has quantized it)."""
        return extract_subnet(self.model, self.structure, self.subnet(params),
                              self.input_shape)

    def sort_channels_(self) -> None:
        """Order every elastic channel group by importance in place (the full model's
        function is unchanged)."""
        sort_channels(self.model, self.structure, self.input_shape)
