"""Predict latency from a table of layers measured one by one on the target.

The regression in :mod:`~nascompress.latency.predictor` gets the ranking of
models right but cannot follow ONNX Runtime's kernel choices, which jump with channel
counts (a 5×5 convolution of 33 channels can take several times as long as one of 32).
A lookup table can: each distinct layer is exported on its own, timed once on the
target with the search's latency set-up, and remembered; a model's latency is then
predicted from the sum of its layers' times, calibrated against a few whole models that
were measured (``latency ≈ overhead + scale × Σ layer times``, one calibration per
runtime kind), in the manner of per-kernel predictors such as nn-Meter.

Layers ("kernels") are cut from the model's leaf modules in the order they run: each
convolution or linear layer starts a kernel, and the weightless modules after it
(BatchNorm, activations, pooling, flatten) join it, as ONNX Runtime fuses or runs them
next to it. A kernel is identified by its modules' configuration (``extra_repr``), the
shape it receives and the runtime kind, so a kernel shared by many models is timed once.
Models whose forward does more than run their leaf modules in sequence (residual adds,
functional calls) are predicted from their modules only; the calibration absorbs what
that misses on average.

Cost: a table entry takes one export (and an int8 quantization for ``int8``) and one
timing, about 0.1–0.5 s on a 2-core machine; spaces with a few hundred distinct layers
fill their table in minutes, after which predictions cost a forward pass of hooks.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nascompress.latency.trace import leaf_calls

#: Leaf modules that start a kernel; everything else joins the kernel before it.
_WEIGHTED = ("Conv1d", "Conv2d", "Conv3d", "Linear")

KINDS = ("fp32", "int8")


@dataclass(frozen=True)
class Kernel:
    """Consecutive leaf modules timed as one unit, and the shape they receive."""

    modules: tuple[Any, ...]
    input_shape: tuple[int, ...]  # one example, without the batch dimension

    @property
    def signature(self) -> str:
        """Stable text identifying the kernel's computation (not its weights)."""
        parts = [f"{type(m).__name__}({m.extra_repr()})" for m in self.modules]
        return " > ".join(parts) + f" @ {list(self.input_shape)}"


def split_kernels(model, input_shape: Sequence[int]) -> list[Kernel]:
    """The kernels of ``model`` in the order they run, for one example of ``input_shape``."""
    kernels: list[Kernel] = []
    current: list[Any] = []
    current_shape: tuple[int, ...] = ()
    for module, shape, _ in leaf_calls(model, input_shape):
        if type(module).__name__ in _WEIGHTED and current:
            kernels.append(Kernel(tuple(current), current_shape))
            current = []
        if not current:
            current_shape = shape or ()
        current.append(module)
    if current:
        kernels.append(Kernel(tuple(current), current_shape))
    return kernels


def kernel_onnx(kernel: Kernel, kind: str, *, calibration_examples: int = 64) -> bytes:
    """ONNX bytes of ``kernel`` alone: float, or int8 QDQ as the evaluator quantizes."""
    import numpy as np
    import torch
    from torch import nn

    from nascompress.compression.onnx_export import export_onnx, quantize_onnx_int8

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, but got {kind!r}")
    module = nn.Sequential(*(copy.deepcopy(m) for m in kernel.modules)).eval()
    for m in module.modules():
        if hasattr(m, "inplace"):
            # A kernel may start with an activation (modules before the first conv):
            # in place, it would write into the example input. The graph is the same.
            m.inplace = False
    example = torch.zeros(1, *kernel.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.onnx"
        export_onnx(module, example, path)
        if kind == "int8":
            rng = np.random.default_rng(0)
            calibration = rng.standard_normal(
                (calibration_examples, *kernel.input_shape)).astype(np.float32)
            int8 = Path(tmp) / "kernel.int8.onnx"
            quantize_onnx_int8(path, int8, calibration=calibration)
            path = int8
        return path.read_bytes()


def measure_kernel(kernel: Kernel, kind: str, setup, *, measure_onnx=None) -> float:
    """Median ms of one batch through ``kernel`` alone, timed with ``setup`` on ONNX Runtime.

    Args:
        measure_onnx: ``measure_onnx(onnx_bytes, example, setup) -> LatencyResult``, e.g. a
            search's gated, cached :meth:`TrialLatency.measure_onnx
            <nascompress.latency.client.TrialLatency.measure_onnx>`; default:
            time it here, ungated.
    """
    import numpy as np

    if measure_onnx is None:
        from nascompress.latency.ort import measure_onnx_bytes as measure_onnx

    example = np.zeros((1, *kernel.input_shape), dtype=np.float32)
    return measure_onnx(kernel_onnx(kernel, kind), example, setup).median_ms


@dataclass
class LayerTable:
    """Measured kernel times (ms) by ``kind`` and signature, with the set-up they used.

    Fill it with :meth:`ensure` (times the kernels it lacks); :meth:`save` / :meth:`load`
    keep it as JSON, so a table built once on the target serves later searches with the
    same latency set-up (the set-up is stored and checked).
    """

    setup: dict[str, Any]
    times: dict[str, dict[str, float]] = field(default_factory=dict)

    def lookup(self, kernel: Kernel, kind: str) -> float | None:
        return self.times.get(kind, {}).get(kernel.signature)

    def ensure(self, kernels: Sequence[Kernel], kind: str,
               measure: Callable[[Kernel, str], float]) -> int:
        """Time every kernel not in the table with ``measure``; returns how many were timed."""
        timed = 0
        for kernel in kernels:
            if self.lookup(kernel, kind) is None:
                value = float(measure(kernel, kind))
                if not value > 0:
                    raise ValueError(f"kernel {kernel.signature!r} measured {value!r} ms")
                self.times.setdefault(kind, {})[kernel.signature] = value
                timed += 1
        return timed

    def total_ms(self, kernels: Sequence[Kernel], kind: str) -> float:
        """Sum of the kernels' table times; ``KeyError`` names the first one missing."""
        total = 0.0
        for kernel in kernels:
            value = self.lookup(kernel, kind)
            if value is None:
                raise KeyError(f"kernel not in the {kind} table: {kernel.signature}")
            total += value
        return total

    def __len__(self) -> int:
        return sum(len(v) for v in self.times.values())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"setup": self.setup, "times": self.times},
                                         indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, setup: Mapping[str, Any] | None = None) -> LayerTable:
        """Load a saved table; with ``setup``, refuse one measured under another set-up."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if setup is not None and dict(setup) != data["setup"]:
            raise ValueError(f"{path} was measured with latency set-up {data['setup']}, "
                             f"not {dict(setup)}; build a new table for this set-up")
        return cls(setup=dict(data["setup"]),
                   times={k: {s: float(t) for s, t in v.items()}
                          for k, v in data["times"].items()})


@dataclass
class TablePredictor:
    """``latency ≈ overhead + scale × (sum of the model's kernel times)``, per kind.

    The kernel times come from a :class:`LayerTable`; ``overhead`` and ``scale`` are
    fitted on whole models that were measured (:meth:`calibrate`). A kind without
    calibration models uses ``overhead=0, scale=1``: the raw sum, which over-counts the
    per-run overhead of every kernel timed alone.
    """

    table: LayerTable
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)

    def calibrate(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Fit overhead and scale per kind from ``records``: each with ``kernel_ms`` (the
        table sum of a model), ``latency_ms`` (the model measured whole) and ``kind``.

        Least squares on relative errors (every model weighs the same, whatever its
        latency), overhead and scale kept non-negative; a kind with a single record gets
        its scale only.
        """
        import numpy as np
        from scipy.optimize import nnls

        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            by_kind.setdefault(record.get("kind", "fp32"), []).append(record)
        for kind, rows in by_kind.items():
            x = np.array([float(r["kernel_ms"]) for r in rows])
            y = np.array([float(r["latency_ms"]) for r in rows])
            if np.any(y <= 0) or np.any(x <= 0):
                raise ValueError("calibration needs positive kernel sums and latencies")
            if len(rows) == 1:
                self.calibration[kind] = (0.0, float(y[0] / x[0]))
                continue
            a = np.stack([np.ones_like(x), x], axis=1) / y[:, None]
            (overhead, scale), _ = nnls(a, np.ones_like(y))
            self.calibration[kind] = (float(overhead), float(scale))

    def predict_kernels(self, kernels: Sequence[Kernel], kind: str) -> float:
        overhead, scale = self.calibration.get(kind, (0.0, 1.0))
        return overhead + scale * self.table.total_ms(kernels, kind)
