"""Benchmark every compression technique against the uncompressed model it started from.

Usage (from the repository root)::

    .venv/bin/python bench/compression/run.py               # 3 seeds, writes results.md
    .venv/bin/python bench/compression/run.py --seeds 5     # more training seeds
    .venv/bin/python bench/compression/run.py --quick       # 1 seed, tiny budgets, smoke run

Everything runs on ``digits`` with the package's own building blocks, in the order the
``compress-train`` evaluator uses them (train -> compress -> fine-tune -> finalize ->
artifact). Each compressed model is compared with the fp32 model *of the same seed* that
it was made from (paired deltas); accuracy is measured on the validation split and on the
held-out test split. Every size is the byte length of a file this run wrote (checked
against ``os.path.getsize``), and every artifact is loaded back into a fresh model and
must give the same predictions as the model that was saved.

Latency is measured on the seed-0 models only (shapes, not training, set dense latency),
with one :class:`LatencySetup` for every row, in several interleaved rounds so that the
models being compared share the machine's load. See README.md for what each row means.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

from nascompress.compression import (  # noqa: E402
    FeatureDistiller,
    default_feature_pairs,
    load_artifact,
    save_artifact,
)
from nascompress.compression.onnx_export import (  # noqa: E402
    INTEGER_OP_TYPES,
    export_onnx,
    onnx_accuracy,
    optimized_op_types,
    ort_session,
    quantize_onnx_int8,
)
from nascompress.compression.plan import CompressionPlan, artifact_template  # noqa: E402
from nascompress.data import load_digits_splits  # noqa: E402
from nascompress.evaluators.compress_train import CALIBRATION_SAMPLES  # noqa: E402
from nascompress.latency.measure import LatencySetup, measure_latency  # noqa: E402
from nascompress.latency.ort import measure_ort_latency  # noqa: E402
from nascompress.spaces.image_cnn import ImageCNNSpace  # noqa: E402
from nascompress.training.arrays import (  # noqa: E402
    accuracy,
    predict_logits,
    seed_everything,
    train_epochs,
)

THREADS = 1
torch.set_num_threads(THREADS)

# Architectures (image-cnn space: depth x width x kernel).
WIDE = {"arch/depth": 2, "arch/width": 64, "arch/kernel": 5}  # fp32 latency >= 1 ms at batch 64
SMALL = {"arch/depth": 2, "arch/width": 16, "arch/kernel": 3}  # a typical search candidate
STUDENT = {"arch/depth": 1, "arch/width": 8, "arch/kernel": 3}
TEACHER = {"arch/depth": 3, "arch/width": 64, "arch/kernel": 5}
ARCHS = {"W": WIDE, "S": SMALL, "student": STUDENT, "teacher": TEACHER}

# (bits, scheme) of post-training quantization and of quantization-aware training.
PTQ = [(8, "symmetric"), (4, "symmetric"), (2, "symmetric")]
QAT = [(4, "symmetric"), (2, "symmetric"), (4, "affine"), (2, "affine"),
       (4, "kmeans"), (2, "kmeans")]
PRUNE_RATIO = 0.5
RANK_RATIOS = (0.5, 0.25)
SPARSITIES = (0.5, 0.8)

# Targets (accuracy in percentage points, speed-up as a ratio).
PTQ8_MAX_LOSS = 1.0
QAT4_MAX_LOSS = 2.0
PRUNE_MIN_SPEEDUP = 1.3
MIN_BASELINE_MS = 1.0


@dataclasses.dataclass
class Settings:
    seeds: int = 3
    distill_seeds: int = 5
    epochs: int = 20
    finetune_epochs: int = 5
    teacher_epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    feature_weight: float = 1.0
    latency_rounds: int = 5
    latency_batch: int = 64


# -- helpers ------------------------------------------------------------------------------

SPACE = ImageCNNSpace()


def build(arch: dict[str, int]) -> torch.nn.Module:
    return SPACE.build_model(arch, input_shape=(1, 8, 8), num_classes=10)


def lowrank_template(arch: dict[str, int], ratio: float):
    def make() -> torch.nn.Module:
        return artifact_template(SPACE, {**arch, "lowrank/ratio": ratio}, input_shape=(1, 8, 8),
                                 num_classes=10)
    return make


class Bench:
    """Holds the data, the settings, the artifact folder and every measurement."""

    def __init__(self, settings: Settings, artifact_dir: Path) -> None:
        self.s = settings
        self.dir = artifact_dir
        d = load_digits_splits()
        self.x = torch.from_numpy(d.x_train)
        self.y = torch.from_numpy(d.y_train)
        self.xv = torch.from_numpy(d.x_val)
        self.yv = torch.from_numpy(d.y_val)
        self.xt = torch.from_numpy(d.x_test)
        self.yt = torch.from_numpy(d.y_test)
        self.sizes = {"train": len(self.y), "val": len(self.yv), "test": len(self.yt)}
        self.calibration = self.x[:CALIBRATION_SAMPLES]
        self.setup = LatencySetup(device="cpu", threads=THREADS, batch_size=settings.latency_batch)
        self.setup_b1 = self.setup.replace(batch_size=1)
        # key -> seed -> {"val", "test", "size", "params", "macs", ...}
        self.res: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        # (key, runtime, batch) -> callable returning a LatencyResult
        self.timers: dict[tuple[tuple[str, str], str, int], Any] = {}
        self.lat: dict[tuple[tuple[str, str], str, int], list] = {}
        self.notes: dict[str, Any] = {}

    # training -------------------------------------------------------------------------

    def train(self, model, seed: int, **distill) -> None:
        generator = seed_everything(seed)
        train_epochs(model, self.x, self.y, epochs=self.s.epochs, lr=self.s.lr,
                     batch_size=self.s.batch_size, generator=generator, **distill)

    def finetune(self, model, seed: int) -> None:
        # Same batch order for every variant of a seed: the comparisons are paired.
        generator = torch.Generator().manual_seed(100_000 + seed)
        train_epochs(model, self.x, self.y, epochs=self.s.finetune_epochs,
                     lr=self.s.finetune_lr, batch_size=self.s.batch_size, generator=generator)

    def count(self, model) -> tuple[int, int]:
        """(params, MACs per sample) from torch-pruning's counter (ratio 0 prunes nothing)."""
        report = CompressionPlan().prune_(copy.deepcopy(model), self.x[:2])
        return report.params_after, report.macs_after

    # recording ------------------------------------------------------------------------

    def record(self, key: tuple[str, str], seed: int, model, *, quantized, template,
               params_macs: tuple[int, int] | None = None, **extra) -> dict[str, Any]:
        """Accuracy, artifact size (a written file, loaded back and checked), params, MACs."""
        model.eval()
        path = self.dir / f"{key[0]}-{key[1]}-seed{seed}.nasc".replace("/", "_")
        size = save_artifact(model, path, quantized=quantized,
                             metadata={"bench": "compression", "key": list(key), "seed": seed})
        assert os.path.getsize(path) == size, (path, size, os.path.getsize(path))
        loaded, _ = load_artifact(path, template())
        for x in (self.xv, self.xt):
            ours, theirs = predict_logits(model, x), predict_logits(loaded, x)
            if not torch.equal(ours.argmax(1), theirs.argmax(1)) or \
                    float((ours - theirs).abs().max()) > 1e-4:
                raise AssertionError(f"artifact {path} does not reproduce the saved model")
        params, macs = params_macs or self.count(model)
        entry = {"val": accuracy(model, self.xv, self.yv),
                 "test": accuracy(model, self.xt, self.yt),
                 "size": size, "file": path.name, "params": params, "macs": macs,
                 "encodings": artifact_encodings(path), **extra}
        self.res.setdefault(key, {})[seed] = entry
        return entry

    def record_onnx(self, key, seed, path: Path, nbytes: int, params_macs, **extra):
        assert os.path.getsize(path) == nbytes, (path, nbytes)
        session = ort_session(path, threads=THREADS)
        entry = {"val": onnx_accuracy(session, self.xv.numpy(), self.yv.numpy()),
                 "test": onnx_accuracy(session, self.xt.numpy(), self.yt.numpy()),
                 "size": nbytes, "file": path.name, "params": params_macs[0],
                 "macs": params_macs[1], **extra}
        self.res.setdefault(key, {})[seed] = entry
        return session

    # latency --------------------------------------------------------------------------

    def time_torch(self, key, model, batches=(None,)) -> None:
        model = copy.deepcopy(model).eval()
        for batch in batches:
            setup = self.setup if batch is None else self.setup.replace(batch_size=batch)
            self.timers[(key, "torch", setup.batch_size)] = (
                lambda m=model, st=setup: measure_latency(m, self.xv[:1], st))

    def time_ort(self, key, session, batches=(None, 1)) -> None:
        for batch in batches:
            setup = self.setup if batch is None else self.setup.replace(batch_size=batch)
            self.timers[(key, "ort", setup.batch_size)] = (
                lambda se=session, st=setup: measure_ort_latency(se, self.xv[:1].numpy(), st))

    def measure_all_latency(self) -> None:
        order = list(self.timers)
        for round_ in range(self.s.latency_rounds):
            # Alternate the direction so slow drifts of the machine's load cancel out.
            for name in (order if round_ % 2 == 0 else order[::-1]):
                self.lat.setdefault(name, []).append(self.timers[name]())


def artifact_encodings(path: Path) -> dict[str, int]:
    """How many tensors of an artifact use each sparse layout (read from its header)."""
    with open(path, "rb") as f:
        data = f.read()
    _, _, header_len = struct.unpack_from("<4sHI", data, 0)
    header = json.loads(data[10:10 + header_len])
    counts: dict[str, int] = {}
    for entry in header["tensors"]:
        layout = entry.get("sparse", "dense")
        counts[layout] = counts.get(layout, 0) + 1
    return counts


# -- the benchmark ------------------------------------------------------------------------


def run_seed(b: Bench, seed: int, keep_for_latency: bool, tmp: Path) -> None:
    for label in ("W", "S"):
        arch = ARCHS[label]
        template = lambda a=arch: build(a)  # noqa: E731
        seed_everything(seed)
        base = build(arch)
        b.train(base, seed)
        base_pm = b.count(base)
        b.record((label, "fp32"), seed, base, quantized=None, template=template)

        control = copy.deepcopy(base)
        b.finetune(control, seed)
        b.record((label, "fp32+ft"), seed, control, quantized=None, template=template)

        # Every variant is one knob of a compression plan, applied the way the
        # evaluator applies it.
        for bits, scheme in PTQ:
            model = copy.deepcopy(base)
            plan = CompressionPlan(bits=bits, scheme=scheme)
            _, q = plan.finalize_(model, plan.layer_bits(model))
            b.record((label, f"ptq{bits}-{scheme}"), seed, model, quantized=q,
                     template=template, params_macs=base_pm)
        for bits, scheme in QAT:
            model = copy.deepcopy(base)
            plan = CompressionPlan(bits=bits, scheme=scheme)
            layer_bits = plan.layer_bits(model)
            plan.prepare_finetune_(model, layer_bits, calibration=b.calibration)
            b.finetune(model, seed)
            _, q = plan.finalize_(model, layer_bits)
            b.record((label, f"qat{bits}-{scheme}"), seed, model, quantized=q,
                     template=template, params_macs=base_pm)

        if label != "W":
            if keep_for_latency:
                b.time_torch((label, "fp32"), base)
            continue

        # 5. structured pruning
        pruned = copy.deepcopy(base)
        _, report = CompressionPlan(prune_ratio=PRUNE_RATIO, importance="l1").apply_structure_(
            pruned, b.x[:2])
        pruned_before_ft = accuracy(pruned, b.xv, b.yv)
        b.finetune(pruned, seed)
        b.record(("W", "prune"), seed, pruned, quantized=None, template=template,
                 params_macs=(report.params_after, report.macs_after),
                 report=dataclasses.asdict(report), val_before_ft=pruned_before_ft)

        # 8. low-rank
        lowrank = {}
        for ratio in RANK_RATIOS:
            model = copy.deepcopy(base)
            lr_report = CompressionPlan(lowrank_ratio=ratio).apply_lowrank_(model)
            before_ft = accuracy(model, b.xv, b.yv)
            b.finetune(model, seed)
            b.record(("W", f"lowrank{ratio}"), seed, model, quantized=None,
                     template=lowrank_template(WIDE, ratio),
                     report=dataclasses.asdict(lr_report), val_before_ft=before_ft)
            lowrank[ratio] = model

        # 9. unstructured sparsity
        sparse = {}
        for sparsity in SPARSITIES:
            model = copy.deepcopy(base)
            plan = CompressionPlan(sparsity=sparsity)
            layer_bits = plan.layer_bits(model)
            sp_report = plan.prepare_finetune_(model, layer_bits, calibration=b.calibration)
            b.finetune(model, seed)
            achieved, _ = plan.finalize_(model, layer_bits)
            weights = [m.weight for m in model.modules()
                       if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
            zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
            b.record(("W", f"sparse{sparsity}"), seed, model, quantized=None, template=template,
                     achieved=zeros, layers=achieved, requested=sp_report.sparsity)
            sparse[sparsity] = model

        # 6. ONNX Runtime fp32 vs int8 (static QDQ), same trained model
        fp32_path = tmp / f"W-fp32-seed{seed}.onnx"
        int8_path = tmp / f"W-int8-seed{seed}.onnx"
        fp32_bytes = export_onnx(base, b.xv[:1], fp32_path)
        int8_bytes = quantize_onnx_int8(fp32_path, int8_path, calibration=b.calibration)
        ops = optimized_op_types(int8_path, threads=THREADS)
        fp32_ops = optimized_op_types(fp32_path, threads=THREADS)
        s_fp32 = b.record_onnx(("W", "ort-fp32"), seed, fp32_path, fp32_bytes, base_pm,
                               ops=fp32_ops)
        s_int8 = b.record_onnx(("W", "ort-int8"), seed, int8_path, int8_bytes, base_pm, ops=ops)

        if keep_for_latency:
            b.time_torch(("W", "fp32"), base)
            b.time_ort(("W", "fp32"), s_fp32)
            b.time_ort(("W", "ort-int8"), s_int8)
            variants = {"prune": pruned, **{f"lowrank{r}": m for r, m in lowrank.items()},
                        **{f"sparse{s}": m for s, m in sparse.items()}}
            for name, model in variants.items():
                b.time_torch(("W", name), model)
                path = tmp / f"W-{name}-seed{seed}.onnx"
                export_onnx(model, b.xv[:1], path)
                b.time_ort(("W", name), ort_session(path, threads=THREADS),
                           batches=(None, 1) if name == "prune" else (None,))


def run_distillation(b: Bench, tmp: Path) -> None:
    seed_everything(0)
    teacher = build(TEACHER)
    train_epochs(teacher, b.x, b.y, epochs=b.s.teacher_epochs, lr=b.s.lr,
                 batch_size=b.s.batch_size, generator=seed_everything(0))
    b.record(("teacher", "fp32"), 0, teacher, quantized=None, template=lambda: build(TEACHER))
    teacher.eval().requires_grad_(False)
    logits = predict_logits(teacher, b.x)
    b.time_torch(("teacher", "fp32"), teacher)
    template = lambda: build(STUDENT)  # noqa: E731
    for seed in range(b.s.distill_seeds):
        seed_everything(seed)
        student = build(STUDENT)
        b.train(student, seed)
        b.record(("student", "fp32"), seed, student, quantized=None, template=template)
        if seed == 0:
            b.time_torch(("student", "fp32"), student)

        seed_everything(seed)  # same initial weights and batch order as the plain student
        student = build(STUDENT)
        b.train(student, seed, teacher_logits=logits, alpha=b.s.kd_alpha,
                temperature=b.s.kd_temperature)
        b.record(("student", "kd"), seed, student, quantized=None, template=template)

        seed_everything(seed)
        student = build(STUDENT)
        distiller = FeatureDistiller(student, teacher, default_feature_pairs(student, teacher),
                                     example_input=b.x[:2])
        b.train(student, seed, teacher_model=teacher, feature_distiller=distiller,
                feature_weight=b.s.feature_weight)
        distiller.remove()
        b.record(("student", "feature-kd"), seed, student, quantized=None, template=template)


# -- reporting ----------------------------------------------------------------------------


def med(values):
    return statistics.median(values)


def pct_cell(values) -> str:
    v = [round(100 * x, 6) for x in values]
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{med(v):.1f} [{min(v):.1f}–{max(v):.1f}]"


def delta_cell(values) -> str:
    # Rounded first: float32 (torch) and float64 (ONNX) accuracies of the same predictions
    # differ by ~1e-9, which would print as "-0.0"; "+ 0.0" turns -0.0 into 0.0.
    v = [round(100 * x, 6) + 0.0 for x in values]
    if len(v) == 1:
        return f"{v[0]:+.1f}"
    return f"{med(v) + 0.0:+.1f} [{min(v):+.1f}, {max(v):+.1f}]"


def lat_summary(results) -> tuple[float, float, int, bool]:
    """(median of round medians, median of round IQRs, total timed passes, all converged)."""
    return (med([r.median_ms for r in results]), med([r.iqr_ms for r in results]),
            sum(r.repeats for r in results), all(r.converged for r in results))


def lat_cell(b: Bench, key, runtime, batch) -> str:
    results = b.lat.get((key, runtime, batch))
    if not results:
        return "–"
    m, iqr, n, ok = lat_summary(results)
    return f"{m:.3f} (IQR {iqr:.3f}, n={n}){'' if ok else '*'}"


def ratio(b: Bench, base_key, key, runtime, batch) -> tuple[float, ...] | None:
    """Speed-up base / key: ratio of the medians, min and max of the per-round ratios, and
    the ratio of the lower quartiles (less sensitive to the process being preempted)."""
    base, new = b.lat.get((base_key, runtime, batch)), b.lat.get((key, runtime, batch))
    if not base or not new:
        return None
    per_round = [x.median_ms / y.median_ms for x, y in zip(base, new, strict=True)]
    q1 = med([r.q1_ms for r in base]) / med([r.q1_ms for r in new])
    return lat_summary(base)[0] / lat_summary(new)[0], min(per_round), max(per_round), q1


#: A speed-up is flagged as noisy when its per-round ratios span more than this factor, or
#: when the median-based and Q1-based ratios differ by more than this factor.
NOISY_FACTOR = 1.25


def ratio_text(r) -> str:
    if r is None:
        return "n/a"
    rounds = f"rounds {r[1]:.2f}–{r[2]:.2f}; " if r[1] != r[2] else ""
    noisy = r[2] / r[1] > NOISY_FACTOR or max(r[0], r[3]) / min(r[0], r[3]) > NOISY_FACTOR
    return f"{r[0]:.2f}x [{rounds}Q1 ratio {r[3]:.2f}x]" + (" NOISY" if noisy else "")


def build_table(b: Bench) -> tuple[str, list[str], list[str]]:
    s = b.s
    bl = s.latency_batch
    rows: list[list[str]] = []
    targets: list[str] = []
    findings: list[str] = []

    def series(key, field):
        return [b.res[key][seed][field] for seed in sorted(b.res[key])]

    def paired(key, ref, field):
        seeds = sorted(set(b.res[key]) & set(b.res[ref]))
        return [b.res[key][i][field] - b.res[ref][i][field] for i in seeds]

    def size_cell(key, suffix=""):
        sizes = series(key, "size")
        text = f"{int(med(sizes))}" if len(set(sizes)) == 1 else \
            f"{int(med(sizes))} [{min(sizes)}–{max(sizes)}]"
        return text + suffix

    def add(section, model, variant, key, ref=None, *, lat_key=None, note="", size_suffix="",
            lat=True):
        lat_key = lat_key or key
        rows.append([
            section, model, variant,
            pct_cell(series(key, "val")),
            delta_cell(paired(key, ref, "val")) if ref else "–",
            pct_cell(series(key, "test")),
            delta_cell(paired(key, ref, "test")) if ref else "–",
            size_cell(key, size_suffix),
            f"{series(key, 'params')[0]:,}",
            f"{series(key, 'macs')[0]:,}",
            lat_cell(b, lat_key, "torch", bl) if lat else "sim.",
            lat_cell(b, lat_key, "ort", bl) if lat else "sim.",
            lat_cell(b, lat_key, "ort", 1) if lat else "sim.",
            note + sparse_layouts(key),
        ])

    def sparse_layouts(key) -> str:
        chosen: dict[str, int] = {}
        for entry in b.res[key].values():
            for layout, n in entry.get("encodings", {}).items():
                if layout != "dense":
                    chosen[layout] = max(chosen.get(layout, 0), n)
        if not chosen or key[1].startswith("sparse"):
            return ""
        return ("; the artifact writer chose sparse layouts (zeros are frequent): " +
                ", ".join(f"{layout} on up to {n} tensors" for layout, n in chosen.items()))

    arch_name = {label: f"d{a['arch/depth']} w{a['arch/width']} k{a['arch/kernel']}"
                 for label, a in ARCHS.items()}

    # 1. baselines ------------------------------------------------------------------------
    w_torch = b.lat.get((("W", "fp32"), "torch", bl))
    w_ort = b.lat.get((("W", "fp32"), "ort", bl))
    base_note = []
    if w_torch and w_ort:
        t_ms, o_ms = lat_summary(w_torch)[0], lat_summary(w_ort)[0]

        def verdict(ms: float) -> str:
            return "met" if ms >= MIN_BASELINE_MS else "MISSED"

        text = (f"fp32 latency ≥ {MIN_BASELINE_MS:g} ms at batch {bl}: torch eager {t_ms:.2f} ms "
                f"{verdict(t_ms)}, ORT fp32 {o_ms:.2f} ms {verdict(o_ms)}")
        base_note.append(text)
        targets.append(f"Wide model ({arch_name['W']}) {text}")
    for label in ("W", "S"):
        add("1", arch_name[label], "fp32 baseline (.nasc float32)", (label, "fp32"),
            note="; ".join(base_note) if label == "W" else "reference for the S rows")
        add("1", arch_name[label], f"fp32 + {s.finetune_epochs} more epochs (control)",
            (label, "fp32+ft"), (label, "fp32"),
            note="same fine-tune budget as the compressed rows, no compression", lat=False)

    # 2-4. quantization ------------------------------------------------------------------
    for label in ("W", "S"):
        ref = (label, "fp32")
        for bits, scheme in PTQ:
            key = (label, f"ptq{bits}-{scheme}")
            note = "PTQ, no fine-tune; no low-bit kernel: latency simulated (= fp32 dense)"
            if (bits, scheme) == (2, "symmetric"):
                note += "; symmetric 2-bit codes are {-1, 0, +1} only"
            if bits == 8:
                d = med(paired(key, ref, "val")) * 100
                ok = d >= -PTQ8_MAX_LOSS
                note = (f"target loses ≤ {PTQ8_MAX_LOSS:g} pt: {'met' if ok else 'MISSED'}"
                        f" (median Δval {d:+.1f}); real int8 latency: row 6")
                targets.append(f"8-bit PTQ ({arch_name[label]}) loses ≤ {PTQ8_MAX_LOSS:g} pt: "
                               f"median Δval {d:+.1f} pt (worst seed "
                               f"{min(paired(key, ref, 'val')) * 100:+.1f}) — "
                               f"{'met' if ok else 'MISSED'}")
            add("2" if bits == 8 else "3", arch_name[label], f"PTQ {bits}-bit {scheme}", key, ref,
                note=note, lat=False)
        for bits, scheme in QAT:
            key = (label, f"qat{bits}-{scheme}")
            section = "3" if (bits, scheme) == (4, "symmetric") else "4"
            note = f"QAT {s.finetune_epochs} epochs; latency simulated (no {bits}-bit kernel)"
            if (bits, scheme) == (2, "symmetric"):
                note += "; symmetric 2-bit codes are {-1, 0, +1} only"
            if (bits, scheme) == (4, "symmetric"):
                d = med(paired(key, ref, "val")) * 100
                ok = d >= -QAT4_MAX_LOSS
                note = f"target loses ≤ {QAT4_MAX_LOSS:g} pts: {'met' if ok else 'MISSED'}; " + note
                targets.append(f"4-bit QAT symmetric ({arch_name[label]}) loses ≤ "
                               f"{QAT4_MAX_LOSS:g} pts: median Δval {d:+.1f} pt (worst seed "
                               f"{min(paired(key, ref, 'val')) * 100:+.1f}) — "
                               f"{'met' if ok else 'MISSED'}")
            add(section, arch_name[label], f"QAT {bits}-bit {scheme}", key, ref, note=note,
                lat=False)

    # 5. structured pruning --------------------------------------------------------------
    W = arch_name["W"]
    ref = ("W", "fp32")
    rep = b.res[("W", "prune")][0]["report"]
    t_ratio = ratio(b, ref, ("W", "prune"), "torch", bl)
    o_ratio = ratio(b, ref, ("W", "prune"), "ort", bl)
    o1_ratio = ratio(b, ref, ("W", "prune"), "ort", 1)
    verdict = []
    for name, r in (("torch", t_ratio), ("ORT", o_ratio)):
        if r is not None:
            ok = r[0] >= PRUNE_MIN_SPEEDUP
            verdict.append(f"{name} {ratio_text(r)} {'met' if ok else 'MISSED'}")
            targets.append(f"50% channel pruning speed-up ≥ {PRUNE_MIN_SPEEDUP}x ({name}, batch "
                           f"{bl}): {ratio_text(r)} — {'met' if ok else 'MISSED'}")
    add("5", W, f"prune {PRUNE_RATIO:.0%} channels (l1) + {s.finetune_epochs} ep fine-tune",
        ("W", "prune"), ref,
        note=(f"params {rep['params_before']:,}→{rep['params_after']:,}, MACs "
              f"{rep['macs_before']:,}→{rep['macs_after']:,} (PruningReport); speed-up b{bl} "
              f"(target ≥ {PRUNE_MIN_SPEEDUP}x): {'; '.join(verdict)}; ORT b1 "
              f"{ratio_text(o1_ratio)}; val before fine-tune "
              f"{pct_cell(series(('W', 'prune'), 'val_before_ft'))}"))

    # 6. ORT int8 ------------------------------------------------------------------------
    ops = b.res[("W", "ort-int8")][0]["ops"]
    integer = sorted({o for o in ops if o in INTEGER_OP_TYPES})
    float_compute = sorted({o for o in ops if o in ("Conv", "Gemm", "MatMul", "FusedConv",
                                                    "FusedGemm")})
    counts = ", ".join(f"{o}×{ops.count(o)}" for o in integer) or "none"
    add("6", W, "ONNX Runtime fp32 (exported)", ("W", "ort-fp32"), ref, lat_key=ref,
        size_suffix=" (.onnx)", note="reference for the int8 row; Δ vs torch fp32")
    r64 = ratio(b, ref, ("W", "ort-int8"), "ort", bl)
    r1 = ratio(b, ref, ("W", "ort-int8"), "ort", 1)
    add("6", W, "ONNX Runtime int8 static QDQ (per-channel)", ("W", "ort-int8"),
        ("W", "ort-fp32"), size_suffix=" (.onnx)",
        note=(f"integer kernels in optimized graph: {counts}; float Conv/Gemm left: "
              f"{', '.join(float_compute) or 'none'}; speed-up vs ORT fp32: b{bl} "
              f"{ratio_text(r64)}, b1 {ratio_text(r1)}"))
    d = med(paired(("W", "ort-int8"), ("W", "ort-fp32"), "val")) * 100
    findings.append(f"ORT int8 vs ORT fp32 ({W}): median Δval {d:+.1f} pt; speed-up b{bl} "
                    f"{ratio_text(r64)}, b1 {ratio_text(r1)}; integer kernels: {counts}; float "
                    f"Conv/Gemm left: {', '.join(float_compute) or 'none'}")

    # 7. distillation --------------------------------------------------------------------
    sref = ("student", "fp32")
    add("7", arch_name["teacher"], f"teacher, trained once ({s.teacher_epochs} epochs, seed 0)",
        ("teacher", "fp32"), note="soft labels and features for the student rows")
    add("7", arch_name["student"], "student, hard labels only", sref,
        note=f"{len(b.res[sref])} seeds; reference for the distilled students")
    for variant, text in (("kd", f"student + soft-label KD (α={s.kd_alpha}, "
                                 f"T={s.kd_temperature:g})"),
                          ("feature-kd", f"student + feature KD (β={s.feature_weight:g}, "
                                         f"no soft labels)")):
        key = ("student", variant)
        dv = paired(key, sref, "val")
        dt = paired(key, sref, "test")
        diff_of_medians = (med(series(key, "val")) - med(series(sref, "val"))) * 100
        helped = med(dv) > 0 and diff_of_medians > 0
        verdict = ("helped" if helped else "did NOT help") + \
            f" (median paired Δval {med(dv) * 100:+.1f}, Δ of medians {diff_of_medians:+.1f}, " \
            f"Δtest {med(dt) * 100:+.1f})"
        add("7", arch_name["student"], text, key, sref, note=verdict, lat=False)
        findings.append(f"{text}: {verdict}; seeds with a gain on val: "
                        f"{sum(x > 0 for x in dv)}/{len(dv)}, equal: "
                        f"{sum(x == 0 for x in dv)}, loss: {sum(x < 0 for x in dv)}")

    # 8. low-rank ------------------------------------------------------------------------
    for r in RANK_RATIOS:
        key = ("W", f"lowrank{r}")
        rep = b.res[key][0]["report"]
        layers = ", ".join(f"layer {n!r} {v['kind']} ranks {v['ranks']}"
                           for n, v in rep["layers"].items())
        add("8", W, f"low-rank ratio {r} + {s.finetune_epochs} ep fine-tune", key, ref,
            note=(f"{layers or 'no layer factorized'}; params {rep['params_before']:,}→"
                  f"{rep['params_after']:,}; speed-up torch "
                  f"{ratio_text(ratio(b, ref, key, 'torch', bl))}, ORT "
                  f"{ratio_text(ratio(b, ref, key, 'ort', bl))}; val before fine-tune "
                  f"{pct_cell(series(key, 'val_before_ft'))}"))

    # 9. unstructured sparsity -----------------------------------------------------------
    dense = med(series(ref, "size"))
    for sp in SPARSITIES:
        key = ("W", f"sparse{sp}")
        enc = b.res[key][0]["encodings"]
        t = ratio(b, ref, key, "torch", bl)
        o = ratio(b, ref, key, "ort", bl)
        add("9", W, f"unstructured {sp:.0%} magnitude + {s.finetune_epochs} ep masked fine-tune",
            key, ref,
            note=(f"achieved weight sparsity {med(series(key, 'achieved')):.1%}; size "
                  f"{med(series(key, 'size')) / dense:.2f}x dense fp32 (layouts {enc}); "
                  f"latency ratio fp32/sparse torch {ratio_text(t)}, ORT {ratio_text(o)}: "
                  "no speed-up expected or claimed — same shapes and dense kernels, which "
                  "multiply the zeros; a ratio away from 1.00x is timing spread (see IQR)"))

    header = ["#", "model", "variant", "val acc % median [min–max]", "Δ val pts [min, max]",
              "test acc % median [min–max]", "Δ test pts [min, max]", "size bytes (file)",
              "params", "MACs/sample", f"torch eager b{bl} ms", f"ORT b{bl} ms", "ORT b1 ms",
              "target / notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines), targets, findings


def environment() -> dict[str, str]:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": str(os.cpu_count()),
        "load average at start (1/5/15 min)": "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 seed, 2 epochs, 1 fine-tune epoch, 1 latency round")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds (default 3)")
    parser.add_argument("--distill-seeds", type=int, default=None,
                        help="seeds of the distillation students (default max(5, --seeds))")
    parser.add_argument("--out", default=None,
                        help="markdown file to write (default bench/compression/results.md; "
                             "--quick writes no file unless --out is given)")
    parser.add_argument("--keep-artifacts", default=None,
                        help="folder to keep the written artifacts in (default: a temporary one)")
    args = parser.parse_args(argv)

    settings = Settings()
    if args.quick:
        settings = dataclasses.replace(settings, seeds=1, distill_seeds=1, epochs=2,
                                       finetune_epochs=1, teacher_epochs=2, latency_rounds=1)
    if args.seeds is not None:
        settings.seeds = args.seeds
        if not args.quick:
            settings.distill_seeds = max(5, args.seeds)
    if args.distill_seeds is not None:
        settings.distill_seeds = args.distill_seeds
    if settings.seeds < 1 or settings.distill_seeds < 1:
        parser.error("--seeds and --distill-seeds must be >= 1")
    out = Path(args.out) if args.out else (None if args.quick else HERE / "results.md")

    env = environment()
    started = time.perf_counter()
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nascompress-bench-") as tmpdir:
        tmp = Path(tmpdir)
        artifact_dir = Path(args.keep_artifacts) if args.keep_artifacts else tmp / "artifacts"
        artifact_dir.mkdir(parents=True, exist_ok=True)
        b = Bench(settings, artifact_dir)
        for seed in range(settings.seeds):
            clock = time.perf_counter()
            run_seed(b, seed, keep_for_latency=seed == 0, tmp=tmp)
            phases[f"seed {seed} (train + compress + fine-tune)"] = time.perf_counter() - clock
            print(f"seed {seed} done in {phases[f'seed {seed} (train + compress + fine-tune)']:.0f}"
                  " s", file=sys.stderr, flush=True)
        clock = time.perf_counter()
        run_distillation(b, tmp)
        phases["distillation"] = time.perf_counter() - clock
        print(f"distillation done in {phases['distillation']:.0f} s", file=sys.stderr, flush=True)
        clock = time.perf_counter()
        b.measure_all_latency()
        phases["latency"] = time.perf_counter() - clock
        print(f"latency done in {phases['latency']:.0f} s", file=sys.stderr, flush=True)
        table, targets, findings = build_table(b)
    total = time.perf_counter() - started
    env["load average at end (1/5/15 min)"] = "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())

    print(table)
    print()
    for line in targets:
        print(f"- {line}")
    for line in findings:
        print(f"- {line}")
    print(f"\nruntime {total:.0f} s")

    if out is not None:
        out.write_text(render_markdown(b, env, settings, table, targets, findings, phases, total,
                                       argv if argv is not None else sys.argv[1:]))
        print(f"wrote {out}", file=sys.stderr)
    return 0


def render_markdown(b, env, settings, table, targets, findings, phases, total, argv) -> str:
    s = settings
    setup = b.setup
    command = " ".join([".venv/bin/python bench/compression/run.py", *argv])
    lines = [
        "# Compression benchmark: each technique against its own uncompressed model (digits)",
        "",
        f"Command: `{command}` — total runtime {total:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in phases.items())}).",
        "",
        "## Environment",
        "",
        *[f"- {k}: {v}" for k, v in env.items()],
        f"- torch intra-op threads: {torch.get_num_threads()}; ONNX Runtime sessions: "
        f"intra-op {THREADS}, inter-op 1, sequential, ORT_ENABLE_ALL",
        "",
        "## Settings",
        "",
        f"- data: digits, stratified split seed 0: train {b.sizes['train']}, val "
        f"{b.sizes['val']}, test {b.sizes['test']} (one val sample = "
        f"{100 / b.sizes['val']:.2f} pts)",
        f"- models (image-cnn space, conv→BN→ReLU→maxpool blocks + linear head): W = "
        f"{WIDE}, S = {SMALL}, student = {STUDENT}, teacher = {TEACHER}",
        f"- training: {s.epochs} epochs, Adam lr {s.lr} cosine, batch {s.batch_size}; every "
        f"fine-tune (control, QAT, pruning, low-rank, sparse): {s.finetune_epochs} epochs, lr "
        f"{s.finetune_lr}, same batch order for every variant of a seed",
        f"- seeds: {s.seeds} training seeds (0..{s.seeds - 1}) for W and S; "
        f"{s.distill_seeds} seeds for the students; teacher trained once ({s.teacher_epochs} "
        "epochs, seed 0)",
        f"- distillation: soft-label α={s.kd_alpha}, T={s.kd_temperature}; feature "
        f"distillation weight β={s.feature_weight} (default ReLU pairs, learned 1×1 "
        "projections, soft labels off)",
        "- quantization: per-output-channel weights; PTQ = finalize_quantization without QAT; "
        "QAT = enable_qat → fine-tune → finalize_quantization; activations stay float",
        f"- structured pruning: ratio {PRUNE_RATIO}, l1, local; low-rank ratios {RANK_RATIOS}; "
        f"unstructured sparsity {SPARSITIES} (layer scope, masks kept while fine-tuning)",
        f"- ONNX int8: quantize_onnx_int8 (static QDQ, MinMax, per-channel int8 weights, uint8 "
        f"activations) calibrated on the first {CALIBRATION_SAMPLES} training images",
        f"- latency: one LatencySetup for every row: device {setup.device}, threads "
        f"{setup.threads}, batch {setup.batch_size}, warm-up {setup.warmup}, {setup.min_repeats}"
        f"–{setup.max_repeats} timed passes until IQR ≤ {setup.target_rel_iqr:.0%} of the median "
        f"or {setup.time_cap_s:g} s; the b1 column is the same setup with batch_size=1. "
        f"Seed-0 models only, {s.latency_rounds} interleaved rounds (order reversed every "
        "other round); a cell is the median of the round medians, the median of the round "
        "IQRs and the total number of timed passes; `*` = some round stopped at the time cap "
        "before its IQR was within 10% of its median. Speed-ups are ratios of those medians, "
        "with the range of the per-round ratios and the ratio of the lower quartiles (Q1, "
        "less inflated when other processes preempt the long passes); NOISY = the per-round "
        f"ratios span more than {NOISY_FACTOR}x, or the median and Q1 ratios differ by more "
        f"than {NOISY_FACTOR}x: read such a ratio as rough.",
        "",
        "## Results",
        "",
        "Δ = paired difference (percentage points) against the same-seed reference named in the "
        "notes (fp32 model of the same architecture unless stated), median [min, max] over "
        "seeds. `sim.` = no kernel exists for this format here: the weights would run "
        "dequantized on float kernels, so latency equals the fp32 row (not measured again). "
        "Sizes: byte length of the .nasc artifact written by save_artifact (or of the .onnx "
        "file), checked with os.path.getsize and loaded back (same predictions).",
        "",
        table,
        "",
        "## Targets",
        "",
        *[f"- {t}" for t in targets],
        "",
        "## Findings",
        "",
        *[f"- {f}" for f in findings],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
