"""A cheap, faithful surrogate of the ``image-cnn`` search on digits, for strategy benchmarks.

It maps every point of :func:`bench_space` to the three objectives of the
``compress-train`` evaluator, in microseconds instead of the ~10 s a real trial takes,
so that strategies can be compared over many seeds. :func:`bench_space` is
:class:`~nascompress.spaces.ImageCNNSpace` with the seven dimensions of the calibration
trials (:data:`MODELLED`) left free and the later ones (pruning importance, unstructured
sparsity, quantization scheme, activation bits, low rank, feature distillation) pinned
to the values that leave the pipeline as it was for those trials (:data:`PINNED`).

What is exact and what is modelled:

* ``size_bytes`` is **exact**. For every ``(depth, width, kernel, prune/ratio, quant/bits)``
  the table builder runs the evaluator's compression steps on an untrained model: build,
  :func:`~nascompress.compression.prune_channels` (l1), quantization-aware wrapping and
  :func:`~nascompress.compression.finalize_quantization` (symmetric, one bit-width), and
  :func:`~nascompress.compression.artifact_bytes` with the evaluator's header metadata.
  The byte count depends only on tensor shapes, bit-widths and tensor order, not on
  trained values (BatchNorm tensors are filled with non-zero values first: the artifact
  stores an all-zero tensor, as a fresh BatchNorm's bias is, in a few bytes), so no
  training is needed. ``check_surrogate.py`` runs the real evaluator on the seven
  calibration configurations: all seven sizes are equal to the table's.
* ``latency_ms`` is **measured once** per pruned architecture on the machine that built
  the table, with the evaluator's default :class:`~nascompress.latency.measure.
  LatencySetup` (CPU, 1 thread, batch 16; median of three measurements), on the
  evaluator's default runtime: the model exported to ONNX and timed on ONNX Runtime,
  statically quantized to int8 (QDQ) when ``bits < 32``, float otherwise. Latency thus
  depends on depth, kernel, kept channels and whether the weights are quantized. The
  torch-eager latency (the evaluator's ``latency_runtime="torch"``) is in the table too
  (``Surrogate(runtime="torch")``). A lookup, not a model: the table keeps the machine's
  quirks and measurement noise.
* ``accuracy`` is **modelled**: a smooth analytic error model of capacity (kept
  channels, kernel, depth), pruning damage, quantization damage (worse for narrow
  layers) and a distillation gain peaking at temperature 4, calibrated by least squares
  on seven measured digits trials (:data:`CALIBRATION`), plus seeded Gaussian noise of
  :data:`NOISE_SD` (about one validation image) and rounding to the 269-image validation
  split. It is plausible, not measured: it will not rank close configurations the way
  real training does.

The tables live in ``surrogate_tables.json`` next to this file; ``python surrogate.py``
rebuilds them (under a minute on two cores).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Mapping
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from nascompress.objectives import Objective
from nascompress.spaces import ImageCNNSpace

TABLES = Path(__file__).with_name("surrogate_tables.json")
OBJECTIVES = (
    Objective("accuracy", "max", "fraction"),
    Objective("size_bytes", "min", "bytes"),
    Objective("latency_ms", "min", "ms"),
)
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10
VAL_SIZE = 269  # digits validation split (fractions 0.7 / 0.15 / 0.15, split seed 0)
NOISE_SD = 0.004

#: Measured digits trials: (depth, width, kernel, prune/ratio, bits, alpha) -> (acc, bytes).
#: Their temperatures were not recorded with them; calibration averages over the grid.
CALIBRATION = (
    ((1, 8, 3, 0.45, 2, 0.0), (0.900, 1360)),
    ((1, 16, 5, 0.05, 32, 0.6), (0.985, 12203)),
    ((1, 32, 5, 0.0, 2, 0.9), (0.993, 3254)),
    ((2, 64, 5, 0.5, 8, 0.8), (0.996, 30650)),
    ((1, 32, 3, 0.35, 2, 0.9), (0.989, 2372)),
    ((2, 32, 5, 0.05, 2, 0.9), (1.000, 8990)),
    ((3, 64, 3, 0.7, 8, 0.4), (0.966, 10205)),
)


def kept_channels(width: int, ratio: float) -> int:
    """Channels per block after pruning, by :func:`prune_channels`' own rounding rule."""
    return max(1, math.floor(width * (1.0 - ratio) + 1e-9))


# --------------------------------------------------------------------------- accuracy

#: Calibrated coefficients of :func:`model_error` (see :func:`calibrate`).
ACC_COEF: dict[str, float] = {}


def _temperature_gain(temperature: np.ndarray | float) -> np.ndarray | float:
    # Soft labels help most at moderate temperatures; T=1 is nearly hard labels and
    # T=8 washes the teacher's ranking out.
    return np.exp(-np.log(np.asarray(temperature) / 4.0) ** 2 / (2 * 0.6**2))


def model_error(
    depth, kept, kernel, ratio, bits, alpha, temperature, coef: Mapping[str, float]
) -> np.ndarray:
    """Noise-free validation error; every argument may be a numpy array (broadcast).

    ``err = cap + prune + quant``, scaled by the distillation factor:

    * ``cap = a * kept**-g * k3**[kernel == 3] * d_depth``: capacity of the kept channels;
      a 3x3 kernel sees less of an 8x8 digit per layer; depth 2 helps, depth 3 shrinks the
      map to 1x1.
    * ``prune = p * ratio**2 * depth``: damage the 5 fine-tuning epochs do not repair,
      compounding over pruned blocks.
    * ``quant = q_bits / sqrt(kept)``: fewer channels average out less rounding error.
    * ``* (1 - dist * alpha * gain(T))``: distillation from the shared teacher.
    """
    depth = np.asarray(depth, dtype=float)
    kept = np.asarray(kept, dtype=float)
    ratio = np.asarray(ratio, dtype=float)
    bits = np.asarray(bits)
    depth_factor = np.where(depth == 1, 1.0, np.where(depth == 2, coef["d2"], coef["d3"]))
    kernel_factor = np.where(np.asarray(kernel) == 3, coef["k3"], 1.0)
    cap = coef["a"] * kept ** (-coef["g"]) * kernel_factor * depth_factor
    prune = coef["p"] * ratio**2 * depth
    q_bits = np.select(
        [bits == 2, bits == 4, bits == 6, bits == 8],
        [coef["q2"], coef["q2"] * 0.25, coef["q2"] * 0.06, coef["q2"] * 0.02],
        0.0,
    )
    quant = q_bits / np.sqrt(kept)
    distill = 1.0 - coef["dist"] * np.asarray(alpha, dtype=float) * _temperature_gain(
        temperature
    )
    return (cap + prune + quant) * distill


_PRIOR = {"a": 0.12, "g": 0.8, "k3": 1.3, "d2": 0.7, "d3": 1.0, "p": 0.02, "q2": 0.1,
          "dist": 0.5}
_BOUNDS = {"a": (0.01, 1.0), "g": (0.2, 2.0), "k3": (1.0, 2.5), "d2": (0.4, 1.2),
           "d3": (0.2, 2.0), "p": (0.0, 0.2), "q2": (0.0, 0.5), "dist": (0.0, 0.6)}


def calibrate() -> tuple[dict[str, float], list[tuple[float, float]]]:
    """Fit :func:`model_error`'s coefficients to :data:`CALIBRATION`.

    Seven points and eight coefficients: a weak log-space prior towards
    :data:`_PRIOR` keeps the fit well posed. The unknown temperatures are averaged over
    the space's temperature grid.

    Returns:
        The coefficients and ``(measured, modelled)`` accuracy pairs.
    """
    from scipy.optimize import least_squares

    names = list(_PRIOR)
    temps = np.arange(1.0, 8.01, 0.5)

    def predict(coef: Mapping[str, float]) -> np.ndarray:
        out = []
        for (d, w, k, r, b, a), _ in CALIBRATION:
            err = model_error(d, kept_channels(w, r), k, r, b, a, temps, coef).mean()
            out.append(1.0 - err)
        return np.array(out)

    measured = np.array([acc for _, (acc, _) in CALIBRATION])

    def residuals(x: np.ndarray) -> np.ndarray:
        coef = dict(zip(names, x, strict=True))
        fit = (predict(coef) - measured) / 0.004  # about one validation image
        prior = [1.0 * math.log(coef[n] / _PRIOR[n]) if _PRIOR[n] > 0 and coef[n] > 0 else 0.0
                 for n in names]
        return np.concatenate([fit, prior])

    lower = [_BOUNDS[n][0] + 1e-9 for n in names]
    upper = [_BOUNDS[n][1] for n in names]
    x0 = [_PRIOR[n] for n in names]
    result = least_squares(residuals, x0, bounds=(lower, upper))
    coef = {n: float(v) for n, v in zip(names, result.x, strict=True)}
    return coef, list(zip(measured.tolist(), predict(coef).tolist(), strict=True))


# --------------------------------------------------------------------------- space

#: The dimensions the surrogate models: those of the real trials it is calibrated on.
MODELLED = ("arch/depth", "arch/width", "arch/kernel", "prune/ratio", "quant/bits",
            "distill/alpha", "distill/temperature")

#: Later dimensions of ``image-cnn``, pinned to the value that leaves the pipeline as it
#: was for the calibration trials (no accuracy data exists for the others).
PINNED: dict[str, Any] = {
    "prune/importance": "l1",
    "prune/sparsity": 0.0,
    "quant/scheme": "symmetric",
    "quant/activations": 32,
    "lowrank/ratio": 1.0,
    "distill/feature_weight": 0.0,
}


def bench_space() -> ImageCNNSpace:
    """``ImageCNNSpace`` with every dimension outside :data:`MODELLED` pinned.

    Raises:
        RuntimeError: the space has gained a dimension that is neither modelled nor
            pinned (the surrogate would silently ignore it).
    """
    dims = ImageCNNSpace().dimensions()
    unknown = sorted(set(dims) - set(MODELLED) - set(PINNED))
    missing = sorted(set(MODELLED) - set(dims))
    if unknown or missing:
        raise RuntimeError(
            f"the image-cnn space no longer matches the surrogate: dimensions {unknown} are "
            f"neither modelled nor pinned, {missing} are missing; update MODELLED / PINNED "
            "in bench/strategies/surrogate.py"
        )
    from nascompress.spaces import Categorical

    return ImageCNNSpace(
        dimensions={key: Categorical([value]) for key, value in PINNED.items() if key in dims}
    )


# --------------------------------------------------------------------------- tables


def _arch_keys(space: ImageCNNSpace):
    dims = space.dimensions()
    yield from product(
        dims["arch/depth"].grid(), dims["arch/width"].grid(), dims["arch/kernel"].grid(),
        dims["prune/ratio"].grid(),
    )


def _evaluator_params(space: ImageCNNSpace, **values: Any) -> dict[str, Any]:
    """A full params dict of ``space``: ``values`` plus the pinned dimensions."""
    params = {key: dim.grid()[0] for key, dim in space.dimensions().items()}
    params.update(values)
    return params


def build_tables(path: Path = TABLES, *, repeats: int = 3) -> dict[str, Any]:
    """Measure sizes, op counts and latencies with the real code, and write ``path``.

    Mirrors ``CompressTrainEvaluator.evaluate`` with the pinned dimensions of
    :func:`bench_space`: prune (l1, on two training images), quantize (symmetric, one
    bit-width for every layer), write the artifact with the evaluator's header; export to
    ONNX, quantize it to int8 (static, 256 calibration images) when ``bits < 32``, and
    time it on ONNX Runtime, as the default ``latency_runtime="onnxruntime"`` does. The
    torch-eager latency (``latency_runtime="torch"``) is measured too.
    """
    import copy
    import os
    import platform
    import tempfile

    import torch

    from nascompress.compression import (
        artifact_bytes,
        enable_qat,
        finalize_quantization,
        prune_channels,
        quantizable_modules,
    )
    from nascompress.compression.onnx_export import export_onnx, quantize_onnx_int8
    from nascompress.data import load_digits_splits
    from nascompress.latency.measure import LatencySetup, measure_latency
    from nascompress.latency.ort import measure_onnx_bytes

    space = bench_space()
    data = load_digits_splits()
    x_train = torch.from_numpy(data.x_train)
    example = torch.from_numpy(data.x_val[:1])
    calibration = data.x_train[:256]
    bits_grid = space.dimensions()["quant/bits"].grid()
    setup = LatencySetup()
    sizes: dict[str, int] = {}
    arch: dict[str, dict[str, Any]] = {}
    latency: dict[str, dict[str, float]] = {"onnxruntime": {}, "torch": {}}

    def timed(measure) -> float:
        return statistics.median(measure().median_ms for _ in range(repeats))

    torch.manual_seed(0)
    for depth, width, kernel, ratio in _arch_keys(space):
        params = _evaluator_params(space, **{"arch/depth": depth, "arch/width": width,
                                             "arch/kernel": kernel, "prune/ratio": ratio})
        if space.check(params) is not None:
            continue
        model = space.build_model(params, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES)
        report = prune_channels(model, x_train[:2], ratio=ratio, importance="l1")
        model.eval()
        with torch.no_grad():
            # A fresh BatchNorm holds zeros (bias, running mean), which the artifact
            # would store as empty sparse tensors; trained ones never are.
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    for tensor in (module.weight, module.bias, module.running_mean):
                        tensor.uniform_(0.1, 1.0)
                    module.running_var.uniform_(0.5, 1.5)
        kept = kept_channels(width, ratio)
        arch_key = f"{depth},{width},{kernel},{ratio}"
        arch[arch_key] = {"kept": kept, "params": report.params_after, "macs": report.macs_after}
        lat_key = f"{depth},{kernel},{kept}"
        if lat_key not in latency["torch"]:
            latency["torch"][lat_key] = timed(
                lambda model=model: measure_latency(model, example, setup)
            )
            with tempfile.TemporaryDirectory() as tmp:
                fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
                export_onnx(model, example, fp32)
                quantize_onnx_int8(fp32, int8, calibration=calibration)
                for kind, file in (("fp32", fp32), ("int8", int8)):
                    raw = file.read_bytes()
                    latency["onnxruntime"][f"{lat_key},{kind}"] = timed(
                        lambda raw=raw: measure_onnx_bytes(raw, example.numpy(), setup)
                    )
        for bits in bits_grid:
            quantized_model = copy.deepcopy(model)
            layer_bits = {name: bits for name, _ in quantizable_modules(quantized_model)}
            quantized = None
            if bits < 32:
                # Through QAT as in the evaluator: it re-registers each weight after its
                # bias, and the tensor order decides how many digits the header's
                # offsets take.
                enable_qat(quantized_model, bits=layer_bits, scheme="symmetric")
                quantized = finalize_quantization(quantized_model, bits=layer_bits,
                                                  scheme="symmetric")
            # The evaluator's header. Alpha and temperature print as 3 characters
            # everywhere on their default grids, so their values do not change the size.
            metadata = {"space": space.name, "params": {**params, "quant/bits": bits},
                        "layer_bits": layer_bits, "scheme": "symmetric",
                        "input_shape": list(INPUT_SHAPE), "num_classes": NUM_CLASSES}
            sizes[f"{arch_key},{bits}"] = len(
                artifact_bytes(quantized_model, quantized=quantized, metadata=metadata)
            )
    coef, fit = calibrate()
    tables = {
        "about": "see surrogate.py; sizes exact, latency measured once, accuracy modelled",
        "machine": {"system": platform.system(), "arch": platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "latency_setup": setup.to_dict(), "repeats": repeats},
        "arch": arch,
        "size_bytes": sizes,
        "latency_ms": latency,
        "accuracy_coef": coef,
        "calibration_fit": fit,
    }
    path.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")
    return tables


@lru_cache(maxsize=1)
def load_tables(path: str = str(TABLES)) -> dict[str, Any]:
    """The cached tables (build them with ``python surrogate.py`` when missing)."""
    return json.loads(Path(path).read_text())


# --------------------------------------------------------------------------- surrogate


RUNTIMES = ("onnxruntime", "torch")


class Surrogate:
    """Objectives of any point of :func:`bench_space` from the cached tables.

    Args:
        noise_seed: seeds the accuracy noise; the same params and seed always give the
            same accuracy (a trial is deterministic given its seed, as in the evaluator).
        runtime: whose latency: ``"onnxruntime"`` (the evaluator's default: int8 kernels
            below 32 bits, float kernels at 32) or ``"torch"`` (eager float kernels).
    """

    def __init__(self, *, noise_seed: int = 0, runtime: str = "onnxruntime") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, but got {runtime!r}")
        tables = load_tables()
        self.noise_seed = noise_seed
        self.runtime = runtime
        self.space = bench_space()
        self._arch = tables["arch"]
        self._sizes = tables["size_bytes"]
        self._latency = tables["latency_ms"][runtime]
        self.coef = tables["accuracy_coef"]

    def _latency_key(self, depth: int, kernel: int, kept: int, bits: int) -> str:
        key = f"{depth},{kernel},{kept}"
        if self.runtime == "onnxruntime":
            key += ",int8" if bits < 32 else ",fp32"
        return key

    def worst(self) -> dict[str, float]:
        """The largest size and latency anywhere in the space."""
        return {"size_bytes": float(max(self._sizes.values())),
                "latency_ms": float(max(self._latency.values()))}

    @staticmethod
    def _key(params: Mapping[str, Any]) -> tuple[int, int, int, float, int]:
        return (int(params["arch/depth"]), int(params["arch/width"]),
                int(params["arch/kernel"]), round(float(params["prune/ratio"]), 12),
                int(params["quant/bits"]))

    def true_objectives(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Noise-free objectives (used to score what a strategy found)."""
        depth, width, kernel, ratio, bits = self._key(params)
        arch = self._arch[f"{depth},{width},{kernel},{ratio}"]
        err = float(model_error(depth, arch["kept"], kernel, ratio, bits,
                                float(params["distill/alpha"]),
                                float(params["distill/temperature"]), self.coef))
        return {
            "accuracy": min(1.0, max(0.0, 1.0 - err)),
            "size_bytes": float(self._sizes[f"{depth},{width},{kernel},{ratio},{bits}"]),
            "latency_ms": float(self._latency[self._latency_key(depth, kernel, arch["kept"],
                                                                bits)]),
        }

    def evaluate(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Objectives as a trial would report them: noisy accuracy on 269 images."""
        reason = self.space.check(params)
        if reason is not None:
            raise ValueError(f"params are not a valid image-cnn point: {reason}")
        values = self.true_objectives(params)
        text = json.dumps([self.noise_seed, *self._key(params),
                           round(float(params["distill/alpha"]), 9),
                           round(float(params["distill/temperature"]), 9)])
        digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        noise = np.random.default_rng(digest).normal(0.0, NOISE_SD)
        correct = round(min(1.0, max(0.0, values["accuracy"] + noise)) * VAL_SIZE)
        values["accuracy"] = correct / VAL_SIZE
        return values

    def grid(self) -> list[dict[str, Any]]:
        """Every valid point of the space's grid (270,000 minus the invalid ones)."""
        dims = self.space.dimensions()
        pinned = {key: dims[key].grid()[0] for key in dims if key not in MODELLED}
        points = []
        for depth, width, kernel, ratio in _arch_keys(self.space):
            if kept_channels(width, ratio) < self.space.min_channels:
                continue
            for bits, alpha, temperature in product(
                dims["quant/bits"].grid(), dims["distill/alpha"].grid(),
                dims["distill/temperature"].grid(),
            ):
                points.append({"arch/depth": depth, "arch/width": width, "arch/kernel": kernel,
                               "prune/ratio": ratio, "quant/bits": bits,
                               "distill/alpha": alpha, "distill/temperature": temperature,
                               **pinned})
        return points

    def true_front(self) -> list[dict[str, float]]:
        """The exact noise-free Pareto front over the whole grid of the space.

        Size and latency do not depend on alpha and temperature, so only the most
        accurate (alpha, temperature) per compression setting can be on the front; the
        non-dominated filter then runs over those few thousand points.
        """
        best: dict[tuple, dict[str, float]] = {}
        for params in self.grid():
            key = self._key(params)
            values = self.true_objectives(params)
            if key not in best or values["accuracy"] > best[key]["accuracy"]:
                best[key] = values
        return nondominated(list(best.values()))


def nondominated(points: list[dict[str, float]]) -> list[dict[str, float]]:
    """The objective dicts of ``points`` that no other one dominates (duplicates once)."""
    vectors = np.array([[-p["accuracy"], p["size_bytes"], p["latency_ms"]] for p in points])
    vectors, index = np.unique(vectors, axis=0, return_index=True)
    keep = []
    for i, v in enumerate(vectors):
        dominated = np.all(vectors <= v, axis=1) & np.any(vectors < v, axis=1)
        if not dominated.any():
            keep.append(points[index[i]])
    return keep


if __name__ == "__main__":
    built = build_tables()
    print(f"wrote {TABLES} ({len(built['size_bytes'])} sizes, "
          f"{len(built['latency_ms']['onnxruntime'])} onnxruntime and "
          f"{len(built['latency_ms']['torch'])} torch latencies)")
    print("accuracy coefficients:", json.dumps(built["accuracy_coef"], indent=1))
    for (cfg, (acc, size)), (_, modelled) in zip(CALIBRATION, built["calibration_fit"],
                                                 strict=True):
        key = f"{cfg[0]},{cfg[1]},{cfg[2]},{cfg[3]},{cfg[4]}"
        print(f"{cfg}: accuracy measured {acc:.3f} modelled {modelled:.3f}; size of the "
              f"trial {size} (artifact format 1), now {built['size_bytes'][key]}")
