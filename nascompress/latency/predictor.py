"""Predict a model's latency on the target from its layers, calibrated by measurements.

A model is described by per-layer features, summed per layer class (:func:`model_features`).
Convolutions fall in two classes, because ONNX Runtime's CPU kernels do: those whose
output channels are a multiple of the SIMD block (16 floats on AVX-512) and whose input
channels are too (or are the few channels of an image) run on blocked "NCHWc" kernels;
every other convolution runs on a slower, less regular path. For each class: its
multiply-accumulates, its output elements and its number of layers; for the slow path
also the size of its unfolded input (``in_channels × k² × H × W``, the memory an
im2col-style kernel touches). Then linear layers' MACs, the elements that
element-wise layers (ReLU, pooling) touch, and a constant (the per-run overhead).

The latency is modelled as a non-negative combination of these, one coefficient vector
per runtime kind (``fp32`` float kernels, ``int8`` integer kernels), fitted by
non-negative least squares on *relative* errors, so a 1 ms model counts as much as a
10 ms one. A per-kind fit needs ``2 × len(FEATURES)`` measured models of that kind;
otherwise the kinds share one fit with int8 indicator features.

Measured on the image-cnn space this gets the ranking right (Kendall τ near 0.9) but
not every model within ±10 %: ONNX Runtime switches algorithms with layer sizes (a 5×5
convolution of 33 channels can take eight times as long as one of 32), which no smooth
feature captures. What the predictor is worth is reported, not assumed (:func:`score`):
on held-out measured models, the fraction within ±10 %, Kendall's τ, next to the
measurement noise floor (:func:`noise_floor`: run-to-run coefficient of variation of
the same models measured twice), which no predictor can beat. ``bench/latency`` has the
numbers.

The per-layer lookup table in :mod:`~nascompress.latency.layer_table` follows those
jumps and is the more accurate predictor (``bench/latency``); this regression needs no
timing of its own, only measured models.

:class:`LatencyPrefilter` uses either to discard candidates predicted far above a latency
constraint before they are trained (with a margin, ``factor``, for the error).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nascompress.compression.plan import CompressionPlan, compressed_structure
from nascompress.latency.layer_table import LayerTable, TablePredictor, split_kernels
from nascompress.latency.trace import leaf_calls

#: Feature names, in the order of the regression's columns.
FEATURES = (
    "conv_blocked_macs",   # convolutions on the blocked (NCHWc) kernels
    "conv_blocked_out",
    "conv_blocked_layers",
    "conv_other_macs",     # every other convolution
    "conv_other_unfold",   # in_channels * k^2 * H_out * W_out
    "conv_other_out",
    "conv_other_layers",
    "linear_macs",
    "elementwise",         # elements read by ReLU / pooling / other weightless layers
)
KINDS = ("fp32", "int8")
#: What :class:`LatencyPrefilter` can predict with.
PREFILTER_METHODS = ("regression", "layer-table")
#: SIMD block of ONNX Runtime's blocked convolutions (floats per AVX-512 register).
SIMD = 16
#: Input channels up to this count need no blocking (the image itself, 1-3 channels).
FEW_CHANNELS = 4


def model_features(model, input_shape: Sequence[int]) -> dict[str, float]:
    """Per-example layer features of ``model`` (see :data:`FEATURES`), from its leaf calls.

    BatchNorm layers are not counted: exported graphs fold them into the convolutions.
    """
    from torch import nn

    totals = dict.fromkeys(FEATURES, 0.0)
    for module, in_shape, out_shape in leaf_calls(model, input_shape):
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            out_c, in_c = module.out_channels, module.in_channels // module.groups
            hw = out_shape[-1] * out_shape[-2]
            macs = out_c * hw * in_c * k
            if out_c % SIMD == 0 and (in_c % SIMD == 0 or module.in_channels <= FEW_CHANNELS):
                totals["conv_blocked_macs"] += macs
                totals["conv_blocked_out"] += out_c * hw
                totals["conv_blocked_layers"] += 1
            else:
                totals["conv_other_macs"] += macs
                totals["conv_other_unfold"] += module.in_channels * k * hw
                totals["conv_other_out"] += out_c * hw
                totals["conv_other_layers"] += 1
        elif isinstance(module, nn.Linear):
            totals["linear_macs"] += module.in_features * module.out_features
        elif not isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.Dropout
                            | nn.Identity | nn.Flatten):
            totals["elementwise"] += math.prod(in_shape) if in_shape is not None else 0
    return totals


def runtime_kind(params: Mapping[str, Any], runtime: str = "onnxruntime") -> str:
    """The kernels the default evaluator times ``params`` on (``"int8"`` or ``"fp32"``).

    See :meth:`~nascompress.compression.plan.CompressionPlan.runtime_kind`.
    """
    return CompressionPlan.from_params(params).runtime_kind(runtime)


# --------------------------------------------------------------------------- the model


@dataclass
class LatencyPredictor:
    """Latency (ms) as a non-negative combination of layer features, per runtime kind.

    Build with :meth:`fit`; :meth:`predict` takes a feature dict, a torch model (with
    ``input_shape``) or params of a space (with ``space``, ``input_shape`` and
    ``num_classes``). :meth:`save` / :meth:`load` write JSON.

    Attributes:
        coefficients: kind (``"fp32"``, ``"int8"`` or ``"all"``) -> feature -> ms per unit.
        setup: the latency setup the measurements were taken with (recorded, not used).
    """

    coefficients: dict[str, dict[str, float]] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    trained_on: int = 0

    @classmethod
    def fit(
        cls,
        records: Sequence[Mapping[str, Any]],
        *,
        setup: Mapping[str, Any] | None = None,
    ) -> LatencyPredictor:
        """Fit on measured models.

        Args:
            records: each with ``features`` (from :func:`model_features`),
                ``latency_ms`` (the measured median) and optionally ``kind``
                (``"fp32"`` default, or ``"int8"``).
            setup: the measurement setup, recorded with the coefficients.

        Raises:
            ValueError: fewer than 3 records, or a latency that is not a positive number.
        """
        rows = [dict(r) for r in records]
        if len(rows) < 3:
            raise ValueError(f"fit needs at least 3 measured models, but got {len(rows)}")
        for row in rows:
            value = row.get("latency_ms")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"latency_ms must be a positive number, but got {value!r}")
        predictor = cls(setup=dict(setup or {}), trained_on=len(rows))
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_kind.setdefault(row.get("kind", "fp32"), []).append(row)
        predictor.coefficients["all"] = _fit_rows(rows, with_kind=True)
        for kind, members in by_kind.items():
            if len(members) >= 2 * len(FEATURES):
                predictor.coefficients[kind] = _fit_rows(members, with_kind=False)
        return predictor

    def predict_features(self, features: Mapping[str, float], kind: str = "fp32") -> float:
        if not self.coefficients:
            raise ValueError("the predictor is not fitted; call LatencyPredictor.fit first")
        if kind in self.coefficients:
            return _apply(self.coefficients[kind], features, kind=None)
        return _apply(self.coefficients["all"], features, kind=kind)

    def predict(
        self,
        model_or_params,
        *,
        kind: str | None = None,
        input_shape: Sequence[int] | None = None,
        space=None,
        num_classes: int | None = None,
    ) -> float:
        """Predicted latency in ms of a feature dict, a torch model, or params of ``space``."""
        if isinstance(model_or_params, Mapping) and all(k in model_or_params for k in FEATURES):
            return self.predict_features(model_or_params, kind or "fp32")
        if isinstance(model_or_params, Mapping):
            if space is None or input_shape is None or num_classes is None:
                raise ValueError("predicting from params needs space, input_shape and "
                                 "num_classes")
            model = compressed_structure(space, model_or_params, input_shape=input_shape,
                                         num_classes=num_classes)
            return self.predict_features(model_features(model, input_shape),
                                         kind or runtime_kind(model_or_params))
        if input_shape is None:
            raise ValueError("predicting from a model needs input_shape")
        return self.predict_features(model_features(model_or_params, input_shape),
                                     kind or "fp32")

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "coefficients": self.coefficients,
                "setup": self.setup, "trained_on": self.trained_on}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyPredictor:
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError("the saved predictor uses other features than this version")
        return cls(coefficients={k: dict(v) for k, v in data["coefficients"].items()},
                   setup=dict(data.get("setup") or {}), trained_on=int(data["trained_on"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LatencyPredictor:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _columns(with_kind: bool) -> list[str]:
    return ["const", *FEATURES, *(["int8_const", "int8_macs"] if with_kind else [])]


def _row(features: Mapping[str, float], kind: str | None, with_kind: bool) -> list[float]:
    row = [1.0, *(float(features.get(name, 0.0)) for name in FEATURES)]
    if with_kind:
        int8 = 1.0 if kind == "int8" else 0.0
        macs = sum(float(features.get(n, 0.0)) for n in
                   ("conv_blocked_macs", "conv_other_macs", "linear_macs"))
        layers = sum(float(features.get(n, 0.0)) for n in
                     ("conv_blocked_layers", "conv_other_layers"))
        row += [int8 * (1.0 + layers), int8 * macs]
    return row


def _fit_rows(rows: Sequence[Mapping[str, Any]], *, with_kind: bool) -> dict[str, float]:
    import numpy as np
    from scipy.optimize import nnls

    names = _columns(with_kind)
    a = np.array([_row(r["features"], r.get("kind", "fp32"), with_kind) for r in rows])
    y = np.array([float(r["latency_ms"]) for r in rows])
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    # Relative least squares: divide each row by its target, so every model's relative
    # error weighs the same; columns scaled to [0, 1] for a well-conditioned solve.
    weights, _ = nnls((a / scale) / y[:, None], np.ones_like(y), maxiter=50 * a.shape[1])
    return {name: float(w / s) for name, w, s in zip(names, weights, scale, strict=True)}


def _apply(coefficients: Mapping[str, float], features: Mapping[str, float],
           kind: str | None) -> float:
    with_kind = "int8_const" in coefficients
    row = _row(features, kind, with_kind)
    return float(sum(coefficients[name] * value
                     for name, value in zip(_columns(with_kind), row, strict=True)))


# --------------------------------------------------------------------------- scoring


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's τ-b between two equally long sequences."""
    from scipy.stats import kendalltau

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"kendall_tau needs two sequences of equal length >= 2, got "
                         f"{len(a)} and {len(b)}")
    return float(kendalltau(a, b).statistic)


def noise_floor(pairs: Sequence[tuple[float, float]]) -> float:
    """Mean run-to-run coefficient of variation of repeated medians of the same models.

    Each pair (or longer tuple) holds one model's medians from independent passes.
    """
    cvs = []
    for values in pairs:
        values = [float(v) for v in values]
        if len(values) >= 2 and statistics.fmean(values) > 0:
            cvs.append(statistics.stdev(values) / statistics.fmean(values))
    return statistics.fmean(cvs) if cvs else math.nan


def score(predicted: Sequence[float], measured: Sequence[float], *,
          tolerance: float = 0.1) -> dict[str, float]:
    """Fraction within ±``tolerance`` (relative), Kendall τ, median absolute % error."""
    errors = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    return {
        "n": float(len(errors)),
        "within": sum(e <= tolerance for e in errors) / len(errors),
        "kendall_tau": kendall_tau(predicted, measured),
        "median_abs_error": statistics.median(errors),
        "max_abs_error": max(errors),
    }


# --------------------------------------------------------------------------- filtering


def is_hopeless(
    params: Mapping[str, Any],
    *,
    latency_bound: float,
    predictor: LatencyPredictor,
    space,
    input_shape: Sequence[int],
    num_classes: int,
    factor: float = 1.5,
    runtime: str = "onnxruntime",
) -> tuple[bool, float]:
    """Whether ``params`` is predicted above ``factor × latency_bound``, and the prediction.

    Strategies and runners use it to skip candidates before training them. The factor
    leaves room for the predictor's error: only candidates far over the bound go.
    """
    predicted = predictor.predict(params, space=space, input_shape=input_shape,
                                  num_classes=num_classes, kind=runtime_kind(params, runtime))
    return predicted > factor * latency_bound, predicted


class LatencyPrefilter:
    """Tells the runner which candidates to skip: predicted > ``factor`` × the bound.

    Calibrated online from the search's own measurements on the target (every COMPLETE
    trial with a freshly measured ``latency_ms``, fed through :meth:`observe`): it filters
    nothing until ``min_records`` of them exist.

    Two predictors (``method``):

    * ``"layer-table"`` (needs ``time_kernel``): a
      :class:`~nascompress.latency.layer_table.TablePredictor`. Every distinct layer
      of a candidate is timed alone once, through ``time_kernel`` (on the target, under
      the search's latency gate, when the session builds it), and the model's latency is
      the calibrated sum. On ``bench/latency`` this puts held-out models within ±10 %
      where the regression does not; a candidate's first prediction costs the timing of
      the layers not yet in the table (a few tenths of a second each).
    * ``"regression"``: a :class:`LatencyPredictor` on layer features, refitted after every
      ``refit_every`` new measurements; a given ``predictor`` is used from the start.
      Measurements taken under another runtime kind than the candidate's count only
      through the shared fit.

    Args:
        bound: the latency constraint's bound (``latency_ms <= bound``), in ms.
        space, input_shape, num_classes: to build the candidate's compressed structure.
        factor: skip above ``factor × bound``.
        min_records: measured trials needed before filtering starts.
        refit_every: (regression) refit after this many new measurements.
        predictor: (regression) an already calibrated predictor, optional.
        runtime: the evaluator's latency runtime (decides the kernels' kind).
        method: ``"regression"`` or ``"layer-table"``.
        time_kernel: (layer-table) ``time_kernel(kernel, kind) -> ms``.
    """

    def __init__(self, *, bound: float, space, input_shape, num_classes: int,
                 factor: float = 1.5, min_records: int = 20, refit_every: int = 10,
                 predictor: LatencyPredictor | None = None,
                 runtime: str = "onnxruntime", method: str = "regression",
                 time_kernel=None) -> None:
        if method not in PREFILTER_METHODS:
            raise ValueError(f"method must be one of {list(PREFILTER_METHODS)}, but got "
                             f"{method!r}")
        if method == "layer-table" and time_kernel is None:
            raise ValueError("method='layer-table' needs time_kernel (it times layers)")
        self.runtime = runtime
        self.bound = float(bound)
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.factor = factor
        self.min_records = min_records
        self.refit_every = refit_every
        self.predictor = predictor
        self.method = method
        self._time_kernel = time_kernel
        self._table_predictor = None
        if method == "layer-table":
            self._table_predictor = TablePredictor(LayerTable(setup={}))
        self._rows: list[dict[str, Any]] = []
        self._fitted_on = 0

    @property
    def calibrated(self) -> bool:
        if self.method == "layer-table":
            return len(self._rows) >= self.min_records
        return self.predictor is not None

    def observe(self, record: Mapping[str, Any]) -> None:
        """Learn from a finished trial record (ignored unless COMPLETE and freshly measured)."""
        metrics = record.get("metrics") or {}
        latency = (record.get("objectives") or {}).get("latency_ms")
        if record.get("state") != "COMPLETE" or not isinstance(latency, int | float) \
                or not latency > 0 or metrics.get("latency_cached"):
            return
        try:
            kind = runtime_kind(record["params"], self.runtime)
            model = compressed_structure(self.space, record["params"],
                                         input_shape=self.input_shape,
                                         num_classes=self.num_classes)
            if self._table_predictor is not None:
                kernels = self._timed_kernels(model, kind)
                row = {"kernel_ms": self._table_predictor.table.total_ms(kernels, kind)}
            else:
                row = {"features": model_features(model, self.input_shape)}
        except Exception:  # a space the predictor cannot read: the filter just stays off
            return
        self._rows.append({**row, "latency_ms": float(latency), "kind": kind})
        if len(self._rows) < self.min_records:
            return
        if self._table_predictor is not None:
            self._table_predictor.calibrate(self._rows)  # two numbers per kind: cheap
        elif len(self._rows) - self._fitted_on >= (self.refit_every if self._fitted_on else 0):
            self.predictor = LatencyPredictor.fit(self._rows)
            self._fitted_on = len(self._rows)

    def _timed_kernels(self, model, kind: str) -> list:
        """``model``'s kernels, each in the table (timing those it lacks)."""
        kernels = split_kernels(model, self.input_shape)
        self._table_predictor.table.ensure(kernels, kind, self._time_kernel)
        return kernels

    def predict(self, params: Mapping[str, Any]) -> float:
        """Predicted latency (ms) of ``params`` (times missing layers for layer-table)."""
        kind = runtime_kind(params, self.runtime)
        if self._table_predictor is None:
            return self.predictor.predict(params, space=self.space,
                                          input_shape=self.input_shape,
                                          num_classes=self.num_classes, kind=kind)
        model = compressed_structure(self.space, params, input_shape=self.input_shape,
                                     num_classes=self.num_classes)
        return self._table_predictor.predict_kernels(self._timed_kernels(model, kind), kind)

    def __call__(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """``(reason, metrics)`` when ``params`` should be skipped, else None."""
        if not self.calibrated:
            return None
        try:
            predicted = self.predict(params)
        except Exception:
            return None
        if not predicted > self.factor * self.bound:
            return None
        reason = (f"latency predictor ({self.method}): {predicted:.4g} ms predicted, above "
                  f"{self.factor:g} x the constraint latency_ms <= {self.bound:g} "
                  "(not trained)")
        trained_on = (len(self._rows) if self._table_predictor is not None
                      else self.predictor.trained_on)
        return reason, {"predicted_latency_ms": predicted, "pruned_by": "latency_predictor",
                        "predictor": self.method, "predictor_trained_on": trained_on}
