"""The compression plan: a trial's compression knobs, validated, applied in one order.

A search trial describes its compression with flat params (``prune/ratio``,
``quant/bits``, ...). :class:`CompressionPlan` is those knobs read once, checked once
and typed; every caller that turns params into a compressed model goes through it: the
``compress-train`` evaluator (and its pre-training estimates), the latency predictor,
the artifact reloading of ``export`` and the compression bench.

Contract:

* **Knobs** (:data:`KNOBS`; the one home of their names and valid values, which the
  built-in spaces use to validate their dimensions):

  - ``lowrank/ratio`` rank kept by SVD / Tucker-2 factorization, in ``(0, 1]``; 1.0
    keeps layers unfactorized;
  - ``prune/ratio`` fraction of output channels physically removed, in ``[0, 1)``;
  - ``prune/importance`` how channels are ranked, one of :data:`IMPORTANCES`;
  - ``prune/sparsity`` fraction of the remaining weights zeroed (unstructured), in
    ``[0, 1)``;
  - ``quant/bits`` weight bit-width of every layer, one of :data:`SUPPORTED_BITS` (32
    keeps float weights); or, with mixed precision, ``quant/bits/block{i}`` for the
    ``i``-th quantizable top-level layer and ``quant/bits/head`` for the last one
    (layers without a key keep 32 bits; ``quant/bits`` wins when both are given);
  - ``quant/scheme`` one of :data:`SCHEMES` (ignored for layers kept at 32 bits);
  - ``quant/activations`` 8 to fake-quantize layer inputs to 8 bits, 32 to keep them.

  Other keys (``arch/*``, ``distill/*``, a plug-in's own) are not the plan's and are
  ignored. A missing knob takes its default, which does nothing.
* **Order** (:data:`STEPS`): low-rank → prune → sparsity → quantize. Structure first
  (:meth:`~CompressionPlan.apply_structure_`: factorize, then remove channels of the
  factorized model), then the weights' encoding (:meth:`~CompressionPlan.prepare_finetune_`
  before the fine-tune, :meth:`~CompressionPlan.finalize_` after it). Training phases
  stay with the caller.
* **Shapes do not depend on weights**: the kept rank and channel counts follow from the
  knobs alone, so an untrained model compressed as planned
  (:func:`compressed_structure`) has the trained model's layer shapes, and
  :func:`artifact_template` has the layer structure its artifact is loaded into.

This module imports no torch at import time (spaces import it); torch and the
compression functions are imported inside the methods that use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nascompress.compression._knobs import (
    ACTIVATION_BITS,
    FLOAT_BITS,
    IMPORTANCES,
    INT8_SCHEMES,
    KNOBS,
    LAYER_BITS_PREFIX,
    QUANT_BITS,
    SCHEMES,
    STEPS,
    SUPPORTED_BITS,
    Knob,
    find_knob,
)

if TYPE_CHECKING:  # torch is imported lazily: spaces import this module
    import torch

    from nascompress.compression.lowrank import LowRankReport
    from nascompress.compression.pruning import PruningReport
    from nascompress.compression.quantization import QuantizedWeight
    from nascompress.compression.sparsity import SparsityReport

__all__ = [
    "ACTIVATION_BITS",
    "FLOAT_BITS",
    "IMPORTANCES",
    "KNOBS",
    "QUANT_BITS",
    "SCHEMES",
    "STEPS",
    "SUPPORTED_BITS",
    "CompressionPlan",
    "Knob",
    "artifact_template",
    "compressed_structure",
    "find_knob",
]

@dataclass(frozen=True)
class CompressionPlan:
    """A trial's compression, read from its params; see the module docstring.

    Build with :meth:`from_params`; constructing directly validates the same way.

    Attributes:
        lowrank_ratio: ``lowrank/ratio``.
        prune_ratio: ``prune/ratio``.
        importance: ``prune/importance``.
        sparsity: ``prune/sparsity``.
        bits: ``quant/bits`` (one bit-width for every layer), or ``None`` when not given.
        per_layer_bits: ``(layer, bits)`` pairs of the ``quant/bits/<layer>`` knobs,
            sorted by layer (used when ``bits`` is ``None``).
        scheme: ``quant/scheme``.
        activation_bits: ``quant/activations``.

    Raises:
        ValueError: a knob's value is invalid; the message names the knob and the value.
    """

    lowrank_ratio: float = 1.0
    prune_ratio: float = 0.0
    importance: str = "l1"
    sparsity: float = 0.0
    bits: int | None = None
    per_layer_bits: tuple[tuple[str, int], ...] = ()
    scheme: str = "symmetric"
    activation_bits: int = FLOAT_BITS

    def __post_init__(self) -> None:
        checks = [("lowrank/ratio", self.lowrank_ratio), ("prune/ratio", self.prune_ratio),
                  ("prune/importance", self.importance), ("prune/sparsity", self.sparsity),
                  ("quant/scheme", self.scheme), ("quant/activations", self.activation_bits)]
        if self.bits is not None:
            checks.append(("quant/bits", self.bits))
        checks += [(LAYER_BITS_PREFIX + layer, b) for layer, b in self.per_layer_bits]
        for key, value in checks:
            problem = find_knob(key).problem(value, key)
            if problem:
                raise ValueError(problem)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, importance: str = "l1") -> CompressionPlan:
        """The plan of a trial's flat params (keys that are not knobs are ignored).

        Args:
            params: the trial's params.
            importance: the criterion when the params have no ``prune/importance`` (the
                evaluator's default).

        Raises:
            ValueError: ``"`prune/ratio` must lie in [0, 1) ..., but got 1.0"`` and alike.
        """
        for key, value in params.items():
            knob = find_knob(key)
            problem = knob.problem(value, key) if knob is not None else None
            if problem:
                raise ValueError(problem)
        per_layer = sorted((key.removeprefix(LAYER_BITS_PREFIX), int(value))
                           for key, value in params.items() if key.startswith(LAYER_BITS_PREFIX))
        return cls(
            lowrank_ratio=float(params.get("lowrank/ratio", 1.0)),
            prune_ratio=float(params.get("prune/ratio", 0.0)),
            importance=str(params.get("prune/importance", importance)),
            sparsity=float(params.get("prune/sparsity", 0.0)),
            bits=int(params["quant/bits"]) if "quant/bits" in params else None,
            per_layer_bits=tuple(per_layer),
            scheme=str(params.get("quant/scheme", "symmetric")),
            activation_bits=int(params.get("quant/activations", FLOAT_BITS)),
        )

    # -- what the plan does, without torch -------------------------------------------

    @property
    def quantizes(self) -> bool:
        """Whether any bit-width the params give is below 32 (weights are quantized)."""
        if self.bits is not None:
            return self.bits < FLOAT_BITS
        return any(b < FLOAT_BITS for _, b in self.per_layer_bits)

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps of :data:`STEPS` this plan does something in, in order."""
        active = {"lowrank": self.lowrank_ratio < 1.0, "prune": self.prune_ratio > 0,
                  "sparsity": self.sparsity > 0,
                  "quantize": self.quantizes or self.activation_bits < FLOAT_BITS}
        return tuple(step for step in STEPS if active[step])

    def bits_by_top(self, tops: Sequence[str]) -> dict[str, int]:
        """Bit-width per quantizable top-level layer, given in model order.

        ``quant/bits`` for every layer; otherwise ``quant/bits/block{i}`` for the
        ``i``-th and ``quant/bits/head`` for the last (32 where no knob is given, e.g.
        blocks a shallower model does not have).
        """
        if self.bits is not None:
            return dict.fromkeys(tops, self.bits)
        per_layer = dict(self.per_layer_bits)
        return {name: per_layer.get("head" if index == len(tops) - 1 else f"block{index}",
                                    FLOAT_BITS)
                for index, name in enumerate(tops)}

    def quantized_layers(self, layer_bits: Mapping[str, int]) -> dict[str, int]:
        """The layers of ``layer_bits`` whose weights are quantized (below 32 bits)."""
        return {name: b for name, b in layer_bits.items() if b < FLOAT_BITS}

    def runtime_kind(self, runtime: str = "onnxruntime") -> str:
        """The kernels ``runtime`` times this plan's model on: ``"int8"`` or ``"fp32"``.

        Quantized weights run ONNX Runtime's int8 QDQ graph (really int8, or simulated
        below 8 bits: the same kernels); the torch runtime always runs float kernels.
        """
        return "int8" if runtime != "torch" and self.quantizes else "fp32"

    def latency_kind(self, layer_bits: Mapping[str, int], *, runtime: str = "onnxruntime",
                     integer_kernels: bool = True) -> str:
        """What a latency measured on ``runtime`` stands for: fp32, int8 or simulated.

        ``"fp32"`` without quantized layers. ``"int8"`` only on ONNX Runtime when every
        layer has 8-bit symmetric or affine weights and the optimized graph runs integer
        kernels (``integer_kernels``, checked by the caller); any other quantized model
        (below 8 bits, k-means codebooks, mixed precision, the torch runtime) has no real
        kernel and is timed as a stand-in: ``"simulated"``.

        Args:
            layer_bits: bit-width per quantizable layer (:meth:`layer_bits`).
            runtime: ``"onnxruntime"`` or ``"torch"``.
            integer_kernels: whether the int8 graph's optimized form has integer ops.
        """
        if not self.quantized_layers(layer_bits):
            return "fp32"
        if runtime != "torch" and self.int8_deployable(layer_bits) and integer_kernels:
            return "int8"
        return "simulated"

    def int8_deployable(self, layer_bits: Mapping[str, int]) -> bool:
        """Whether every layer has 8-bit weights in a scheme integer kernels can run."""
        return (bool(layer_bits) and all(b == 8 for b in layer_bits.values())
                and self.scheme in INT8_SCHEMES)

    def artifact_metadata(self, *, space: str, params: Mapping[str, Any],
                          layer_bits: Mapping[str, int], input_shape: Sequence[int],
                          num_classes: int) -> dict[str, Any]:
        """The metadata an artifact of this plan records (what reloading it needs)."""
        return {"space": space, "params": dict(params), "layer_bits": dict(layer_bits),
                "scheme": self.scheme, "input_shape": list(input_shape),
                "num_classes": num_classes}

    # -- the steps, on a torch model ----------------------------------------------------

    def layer_bits(self, model: torch.nn.Module) -> dict[str, int]:
        """Bit-width of every quantizable layer of ``model`` (factorized parts share theirs).

        Layers are grouped by their top-level module (``"0.1"`` is part of ``"0"``), so a
        factorized conv keeps the bit-width of the conv it replaced.
        """
        from nascompress.compression.quantization import quantizable_modules

        layers = [name for name, _ in quantizable_modules(model)]
        by_top = self.bits_by_top(list(dict.fromkeys(name.split(".")[0] for name in layers)))
        return {name: by_top[name.split(".")[0]] for name in layers}

    def apply_lowrank_(self, model: torch.nn.Module) -> LowRankReport | None:
        """Step 1, in place: factorize at ``lowrank_ratio`` (``None`` when it is 1.0)."""
        if self.lowrank_ratio >= 1.0:
            return None
        from nascompress.compression.lowrank import apply_lowrank_

        return apply_lowrank_(model, rank_ratio=self.lowrank_ratio)

    def prune_(self, model: torch.nn.Module, example: torch.Tensor, *,
               importance: str | None = None, calibration=None) -> PruningReport:
        """Step 2, in place: remove ``prune_ratio`` of the channels.

        Always runs :func:`~nascompress.compression.prune_channels` (at ratio 0 it only
        counts parameters and MACs, which the report carries).

        Args:
            model: the (factorized) model.
            example: an example input batch (traced for the dependency graph).
            importance: overrides the plan's criterion (``"l1"`` for untrained models:
                the channel count is the same whatever the ranking, and it needs no data).
            calibration: ``(inputs, labels)`` for Taylor importance; ignored otherwise.
        """
        from nascompress.compression.pruning import prune_channels

        importance = importance or self.importance
        return prune_channels(model, example, ratio=self.prune_ratio, importance=importance,
                              calibration=calibration if importance == "taylor" else None)

    def apply_structure_(self, model: torch.nn.Module, example: torch.Tensor, *,
                         importance: str | None = None, calibration=None,
                         ) -> tuple[LowRankReport | None, PruningReport]:
        """Steps 1 and 2, in place: low-rank factorization, then channel pruning.

        Returns:
            ``(low-rank report or None, pruning report)``; see :meth:`prune_` for the
            arguments.
        """
        lowrank = self.apply_lowrank_(model)
        pruning = self.prune_(model, example, importance=importance, calibration=calibration)
        return lowrank, pruning

    def sparsify_(self, model: torch.nn.Module, *, keep_masks: bool = False,
                  ) -> SparsityReport | None:
        """Step 3, in place: zero ``sparsity`` of every layer's smallest weights.

        Args:
            model: the pruned model.
            keep_masks: also keep the zeros through training (a parametrization, removed
                by :meth:`finalize_`).

        Returns:
            The report, or ``None`` when ``sparsity`` is 0.
        """
        if self.sparsity <= 0:
            return None
        from nascompress.compression.sparsity import enable_sparse_training, magnitude_prune_

        report = magnitude_prune_(model, sparsity=self.sparsity)
        if keep_masks:
            enable_sparse_training(model)
        return report

    def prepare_finetune_(self, model: torch.nn.Module, layer_bits: Mapping[str, int], *,
                          calibration: torch.Tensor) -> SparsityReport | None:
        """Steps 3 and 4 before the fine-tune, in place.

        With sparsity: the masks, kept while training; the weights are quantized after
        the fine-tune (QAT would train the zeros back). Without: quantization-aware
        training of the quantized layers. Then 8-bit activation fake-quantization when
        ``activation_bits`` is 8, its ranges from ``calibration``.

        Returns:
            The sparsity report, or ``None`` without sparsity.
        """
        from nascompress.compression.quantization import enable_activation_quant, enable_qat

        quantized = self.quantized_layers(layer_bits)
        sparse = self.sparsify_(model, keep_masks=True)
        if sparse is None and quantized:
            enable_qat(model, bits=quantized, scheme=self.scheme)
        if self.activation_bits < FLOAT_BITS:
            enable_activation_quant(model, bits=self.activation_bits, calibration=calibration)
        return sparse

    def finalize_(self, model: torch.nn.Module, layer_bits: Mapping[str, int],
                  ) -> tuple[dict[str, float] | None, dict[str, QuantizedWeight] | None]:
        """Steps 3 and 4 after the fine-tune, in place: fix the zeros, quantize.

        Returns:
            ``(achieved sparsity per layer or None, quantized weights or None)``; the
            second goes to :func:`~nascompress.compression.save_artifact`.
        """
        from nascompress.compression.quantization import finalize_quantization
        from nascompress.compression.sparsity import finalize_sparsity

        achieved = finalize_sparsity(model) if self.sparsity > 0 else None
        quantized = self.quantized_layers(layer_bits)
        weights = (finalize_quantization(model, bits=quantized, scheme=self.scheme)
                   if quantized else None)
        return achieved, weights


def artifact_template(space, params: Mapping[str, Any], *, input_shape: Sequence[int],
                      num_classes: int) -> torch.nn.Module:
    """A freshly built model with the layer structure the trial's artifact was saved from.

    Low-rank factorization changes which layers exist (a conv becomes three), so the
    template is built and then factorized the same way (shapes only; weights, pruned
    shapes included, are then loaded from the artifact by
    :func:`~nascompress.compression.load_artifact`).

    Args:
        space: the search space (anything with ``build_model``).
        params: the trial's params.
        input_shape: one example's shape.
        num_classes: number of output logits.
    """
    model = space.build_model(params, input_shape=input_shape, num_classes=num_classes)
    CompressionPlan.from_params(params).apply_lowrank_(model)
    return model


def compressed_structure(space, params: Mapping[str, Any], *, input_shape: Sequence[int],
                         num_classes: int) -> torch.nn.Module:
    """An untrained model with the layer shapes the trial's compressed model will have.

    Factorized and pruned as the plan says (the rank and channel counts kept do not
    depend on the weights), so its layer features are the final model's. Pruning ranks
    by ``l1``: any criterion keeps the same counts, and it needs no data.
    """
    import torch

    plan = CompressionPlan.from_params(params)
    model = artifact_template(space, params, input_shape=input_shape, num_classes=num_classes)
    if plan.prune_ratio > 0:
        plan.prune_(model, torch.zeros(2, *input_shape), importance="l1")
    return model
