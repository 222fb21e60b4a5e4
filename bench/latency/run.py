"""Benchmark "latency you can trust": the gate, the predictor, multi-objective early stopping.

Usage (from the repository root)::

    .venv/bin/python bench/latency/run.py                 # all three parts (~20 min)
    .venv/bin/python bench/latency/run.py --part gate     # one part: gate, predictor, es
    .venv/bin/python bench/latency/run.py --quick         # smaller, for a smoke run

Writes ``bench/latency/results.md`` (the tables below, as measured) unless ``--no-write``.

(a) **gate**: 20 ``image-cnn`` structures (ONNX Runtime fp32, 1 thread, one batch size
that makes every one take at least 1 ms) measured in two passes while two other
processes train a CNN in a loop (1 thread each, on a 2-core machine) and take part in
the gate (Ray tasks holding shared leases, checkpointing every batch). Each model is
measured in three conditions in turn (see :func:`part_gate`): with the gate (exclusive
lease), without it, and paused-and-settled (the reference). Reported: run-to-run
coefficient of variation of the median between the passes (per model, then the mean
and the worst), Kendall's τ between the passes, the median offset from the reference,
how long measurements waited, and what the trainers lost.

(b) **predictor**: 90 structures (half of them int8) measured twice (no load but whatever
else runs on the machine); both predictors (the per-layer table, whose distinct layers
are timed alone, and the feature regression) are calibrated on 65 and tested on 25 held
out. Reported: fraction of the held-out models predicted within ±10 % of the measured
median, Kendall's τ, next to the noise floor (run-to-run CV of the two passes, and the
same ±10 % test applied to pass 2 against pass 1: what a perfect predictor of pass 1
would score).

(c) **early stopping**: the default evaluator (15 + 5 epochs) with the random strategy,
the same seed and the same wall-clock budget, run with and without multi-objective
successive halving (rungs 3, 6, 12; eta 2, the default). Hypervolume of each front
against a fixed reference point, at the end and read at 1/8, 1/4 and 1/2 of the budget
from the same run (the front of the trials finished by then). Distillation is fixed off
(no teacher to train before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import build, dataset, onnx_bytes, sample_params  # noqa: E402

from nascompress.config import EarlyStoppingConfig  # noqa: E402
from nascompress.latency.layer_table import (  # noqa: E402
    LayerTable,
    TablePredictor,
    measure_kernel,
    split_kernels,
)
from nascompress.latency.measure import LatencySetup  # noqa: E402
from nascompress.latency.ort import measure_onnx_bytes  # noqa: E402
from nascompress.latency.predictor import (  # noqa: E402
    LatencyPredictor,
    kendall_tau,
    noise_floor,
    score,
)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cv(values) -> float:
    return statistics.stdev(values) / statistics.fmean(values)


# --------------------------------------------------------------------------- (a) gate


def _batch_for(model: bytes, example, *, target_ms: float) -> int:
    """Smallest power-of-two batch (>= 16) whose median reaches ``target_ms``."""
    batch = 16
    while batch < 8192:
        setup = LatencySetup(batch_size=batch, warmup=3, min_repeats=5, max_repeats=20,
                             time_cap_s=0.3)
        if measure_onnx_bytes(model, example, setup).median_ms >= target_ms:
            return batch
        batch *= 2
    return batch


def _trainer(config, use_gate: bool, stop_file: str, seed: int) -> dict[str, float]:
    """Train an image-cnn model on digits in a loop, one thread, until ``stop_file`` exists."""
    import torch
    import torch.nn.functional as F

    from nascompress.data import load_digits_splits
    from nascompress.latency import connection
    from nascompress.spaces import ImageCNNSpace

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    data = load_digits_splits()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    model = ImageCNNSpace().build_model(
        {"arch/depth": 3, "arch/width": 64, "arch/kernel": 5}, input_shape=data.input_shape,
        num_classes=data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    client = connection.open_client(config, f"trainer{seed}") if use_gate else None
    if client is not None:
        client.start_training()
    batches, started = 0, time.monotonic()
    try:
        while not os.path.exists(stop_file):
            for start in range(0, len(x), 64):
                loss = F.cross_entropy(model(x[start:start + 64]), y[start:start + 64])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                batches += 1
                if client is not None:
                    client.checkpoint()
    finally:
        if client is not None:
            client.close()
    elapsed = time.monotonic() - started
    return {"batches_per_s": batches / elapsed,
            "paused_share": (client.paused_s if client is not None else 0.0) / elapsed}


CONDITIONS = ("paused", "gate on", "gate off")
#: How long the "paused" condition lets the node settle before measuring.
SETTLE_S = 1.0


def part_gate(args) -> dict[str, Any]:
    """Interleaved: every model is measured in every condition before the next model.

    The machine is shared, and other users' load drifts over minutes; measuring the
    conditions one after the other would compare load levels, not conditions. The two
    trainers run (and take part in the gate) throughout:

    * ``gate on``: the measurement takes the exclusive lease, as a search does;
    * ``gate off``: it measures while both trainers train;
    * ``paused``: the reference, as close to an idle node as this machine gets: the
      exclusive lease is taken, the node settles for ``SETTLE_S``, then the measurement.
    """
    import ray

    from nascompress.latency import client as latency_client
    from nascompress.latency import connection, ray_services
    from nascompress.latency.settings import LatencyServiceConfig

    data = dataset()
    example = data.x_val[:1]
    n = 8 if args.quick else 20
    print(f"(a) preparing {n} models ...", flush=True)
    models = [onnx_bytes(params, data)[0] for params in sample_params(n, seed=11)]
    # One batch size for all, the smallest that puts every model at >= 1 ms: the
    # models then keep their real spread, which is what Kendall's tau should see.
    batch = max(_batch_for(model, example, target_ms=1.0) for model in models)
    setup = LatencySetup(batch_size=batch, warmup=10, min_repeats=20, max_repeats=1000,
                         time_cap_s=2.0)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    remote_trainer = ray.remote(num_cpus=1)(_trainer)
    results: dict[str, Any] = {"models": n, "batch_size": batch,
                               "load_average_start": load_average()}
    config = LatencyServiceConfig(backend="ray", cache=False,
                                  search_key=f"bench-{uuid.uuid4().hex[:6]}")
    passes = {label: [[], []] for label in CONDITIONS}
    provenance = {label: {"waits": [], "exclusive": [], "repeats": []} for label in CONDITIONS}
    try:
        ray_services.start_ray_services(config)
        gated = connection.open_client(config, "measurer")
        ungated = latency_client.TrialLatency(
            LatencyServiceConfig(backend="ray", cache=False, exclusive=False),
            backend=None)
        stop_file = os.path.join(tempfile.gettempdir(), f"stop-{config.search_key}")
        trainers = [remote_trainer.remote(config, True, stop_file, seed) for seed in (1, 2)]
        gate = ray_services.ray_gate_backend(config)
        while len(gate.state()["shared"]) < 2:  # both trainers up and training
            time.sleep(0.1)
        started = time.monotonic()
        for pass_index in range(2):
            for index, model in enumerate(models):
                def run(model=model):
                    return measure_onnx_bytes(model, example, setup)

                def settled(model=model):
                    time.sleep(SETTLE_S)
                    return measure_onnx_bytes(model, example, setup)

                order = CONDITIONS[index % 3:] + CONDITIONS[:index % 3]  # rotate
                for label in order:
                    if label == "gate off":
                        result = ungated.measure_exclusive(run)
                    else:
                        result = gated.measure_exclusive(settled if label == "paused" else run)
                    passes[label][pass_index].append(result.median_ms)
                    provenance[label]["waits"].append(result.wait_s)
                    provenance[label]["exclusive"].append(result.exclusive)
                    provenance[label]["repeats"].append(result.repeats)
                    time.sleep(0.3)  # trainers run between measurements, as in a search
            print(f"    pass {pass_index + 1} done", flush=True)
        elapsed = time.monotonic() - started
        Path(stop_file).touch()
        trained = ray.get(trainers)
        Path(stop_file).unlink()
    finally:
        ray_services.stop_ray_services(config)
        ray.shutdown()
    paused_means = [statistics.fmean(pair) for pair in zip(*passes["paused"], strict=True)]
    for label in CONDITIONS:
        per_model = [cv(pair) for pair in zip(*passes[label], strict=True)]
        means = [statistics.fmean(pair) for pair in zip(*passes[label], strict=True)]
        info = provenance[label]
        results[label] = {
            "passes": passes[label],
            "mean_cv": statistics.fmean(per_model), "max_cv": max(per_model),
            "tau": kendall_tau(*passes[label]),
            "median_ms_range": (min(passes[label][0]), max(passes[label][0])),
            "wait_s_median": statistics.median(info["waits"]),
            "wait_s_max": max(info["waits"]),
            "exclusive": sum(info["exclusive"]) / len(info["exclusive"]),
            "repeats_median": statistics.median(info["repeats"]),
            "bias_vs_paused": statistics.median(
                m / q - 1 for m, q in zip(means, paused_means, strict=True)),
        }
    results["elapsed_s"] = elapsed
    results["trainer_batches_per_s"] = [t["batches_per_s"] for t in trained]
    results["trainer_paused_share"] = [t["paused_share"] for t in trained]
    results["load_average_end"] = load_average()
    return results


def table_gate(r: dict[str, Any]) -> str:
    lo, hi = r["paused"]["median_ms_range"]
    rates = ", ".join(f"{v:.0f}" for v in r["trainer_batches_per_s"])
    paused = ", ".join(f"{v:.0%}" for v in r["trainer_paused_share"])
    lines = [
        f"(a) {r['models']} models (ONNX Runtime fp32, 1 thread, batch {r['batch_size']}: "
        f"{lo:.2f}-{hi:.2f} ms), 2 passes; in each pass every model is measured in the "
        f"three conditions in turn (rotating order) while 2 training processes (1 thread "
        f"each, taking part in the gate) train. 'paused': exclusive lease, then "
        f"{SETTLE_S:g} s to settle; 'gate on': exclusive lease (what a search does); "
        f"'gate off': no lease. 2 cores shared with other users: load average 1/5/15 min "
        f"{r['load_average_start']} at start, {r['load_average_end']} at end; "
        f"{r['elapsed_s']:.0f} s.",
        "",
        "| condition | mean CV | worst CV | Kendall tau | median vs paused | exclusive | "
        "wait median / max (s) | repeats (median) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in CONDITIONS:
        x = r[label]
        lines.append(
            f"| {label} | {x['mean_cv']:.1%} | {x['max_cv']:.1%} | {x['tau']:.3f} | "
            f"{x['bias_vs_paused']:+.1%} | {x['exclusive']:.0%} | "
            f"{x['wait_s_median']:.3f} / {x['wait_s_max']:.3f} | {x['repeats_median']:.0f} |")
    on = r["gate on"]
    lines += ["", f"Trainers: {rates} batches/s, paused {paused} of the time.",
              f"Targets with the gate: run-to-run CV <= 5 % (every model >= 1 ms): "
              f"{'met' if on['mean_cv'] <= 0.05 else 'MISSED'} ({on['mean_cv']:.1%} mean, "
              f"{on['max_cv']:.1%} worst); tau >= 0.9: "
              f"{'met' if on['tau'] >= 0.9 else 'MISSED'} ({on['tau']:.3f})."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- (b) predictor


def part_predictor(args) -> dict[str, Any]:
    data = dataset()
    example = data.x_val[:1]
    n_train, n_test = (30, 12) if args.quick else (65, 25)
    setup = LatencySetup(batch_size=256, warmup=10, min_repeats=30, max_repeats=2000,
                         target_rel_iqr=0.05, time_cap_s=1.0)
    table = LayerTable(setup=setup.to_dict())
    rows = []
    table_s = 0.0
    print(f"(b) measuring {n_train + n_test} models twice ...", flush=True)
    load_start = load_average()
    # Half of them int8, as the evaluator times every quantized candidate on int8 kernels.
    for params in sample_params(n_train + n_test, seed=21, int8_share=0.5):
        model, features, kind = onnx_bytes(params, data)
        first = measure_onnx_bytes(model, example, setup).median_ms
        kernels = split_kernels(build(params, data), data.input_shape)
        started = time.perf_counter()
        table.ensure(kernels, kind, lambda kernel, k: measure_kernel(kernel, k, setup))
        table_s += time.perf_counter() - started
        rows.append({"params": params, "features": features, "kind": kind, "first": first,
                     "model": model, "kernels": kernels,
                     "kernel_ms": table.total_ms(kernels, kind)})
    for row in rows:  # the second pass after the first, so drift between passes shows
        row["second"] = measure_onnx_bytes(row["model"], example, setup).median_ms
    train, test = rows[:n_train], rows[n_train:]
    # Both predictors learn from pass 1 of the training models; held-out models are
    # scored against the mean of their two passes.
    regression = LatencyPredictor.fit(
        [{"features": r["features"], "kind": r["kind"], "latency_ms": r["first"]}
         for r in train], setup=setup.to_dict())
    lookup = TablePredictor(table)
    lookup.calibrate([{"kernel_ms": r["kernel_ms"], "kind": r["kind"], "latency_ms": r["first"]}
                      for r in train])
    predictors = {
        "layer table": lambda r: lookup.predict_kernels(r["kernels"], r["kind"]),
        "regression": lambda r: regression.predict_features(r["features"], r["kind"]),
    }
    measured = [statistics.fmean((r["first"], r["second"])) for r in test]
    result: dict[str, Any] = {
        "n_train": n_train, "n_test": n_test, "batch_size": setup.batch_size,
        "kinds": {kind: sum(r["kind"] == kind for r in rows) for kind in ("fp32", "int8")},
        "load_average": f"{load_start} -> {load_average()}",
        "latency_range": (min(r["first"] for r in rows), max(r["first"] for r in rows)),
        "table_kernels": len(table), "table_s": table_s,
        "calibration": {kind: list(v) for kind, v in lookup.calibration.items()},
        "noise_cv": noise_floor([(r["first"], r["second"]) for r in rows]),
        "noise_within": score([r["second"] for r in rows], [r["first"] for r in rows]),
        "predictors": {},
    }
    for name, predict in predictors.items():
        predicted = [predict(r) for r in test]
        result["predictors"][name] = {
            "test": score(predicted, measured),
            "train": score([predict(r) for r in train], [r["first"] for r in train]),
            "worst": sorted(({"params": r["params"], "predicted": p, "measured": m}
                             for r, p, m in zip(test, predicted, measured, strict=True)),
                            key=lambda w: -abs(w["predicted"] - w["measured"])
                            / w["measured"])[:3],
        }
    return result


def table_predictor(r: dict[str, Any]) -> str:
    noise = r["noise_within"]
    lo, hi = r["latency_range"]
    kinds = ", ".join(f"{n} {kind}" for kind, n in r["kinds"].items())
    lines = [
        f"(b) fitted on {r['n_train']} measured models, tested on {r['n_test']} held out "
        f"({kinds}; ONNX Runtime, batch {r['batch_size']}, 1 thread; latencies "
        f"{lo:.2f}-{hi:.2f} ms; load average {r['load_average']}). Layer table: "
        f"{r['table_kernels']} distinct layers timed alone in {r['table_s']:.0f} s, "
        "calibration (overhead ms, scale) per kind "
        + ", ".join(f"{kind} ({o:.3f}, {sc:.3f})" for kind, (o, sc) in r["calibration"].items())
        + ".",
        "",
        "| | within +-10 % | Kendall tau | median abs error | worst abs error |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, x in r["predictors"].items():
        for split, label in (("test", "held out"), ("train", "training set")):
            t = x[split]
            lines.append(f"| {name}, {label} | {t['within']:.0%} | {t['kendall_tau']:.3f} | "
                         f"{t['median_abs_error']:.1%} | {t['max_abs_error']:.0%} |")
    lines += [
        f"| noise floor: pass 2 vs pass 1 | {noise['within']:.0%} | "
        f"{noise['kendall_tau']:.3f} | {noise['median_abs_error']:.1%} | "
        f"{noise['max_abs_error']:.0%} |",
        "",
        f"Run-to-run CV of the median (noise floor): {r['noise_cv']:.1%}.",
    ]
    for name, x in r["predictors"].items():
        t = x["test"]
        lines.append(
            f"Targets, {name}: within +-10 % >= 90 %: "
            f"{'met' if t['within'] >= 0.9 else 'MISSED'} ({t['within']:.0%}); tau >= 0.9: "
            f"{'met' if t['kendall_tau'] >= 0.9 else 'MISSED'} ({t['kendall_tau']:.3f}). "
            "Largest held-out errors: " + "; ".join(
                f"{json.dumps(w['params'])} predicted {w['predicted']:.2f} ms, measured "
                f"{w['measured']:.2f} ms" for w in x["worst"]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- (c) early stopping

FIXED_NO_TEACHER = {"distill/alpha": {"type": "categorical", "choices": [0.0]},
                    "distill/feature_weight": {"type": "categorical", "choices": [0.0]}}
#: The largest model of the space: the hypervolume reference is 1.1 x its artifact size
#: and latency (measured once, before both runs) and accuracy 0, so every candidate of
#: the space lies inside the reference box and the box is as tight as the space allows.
LARGEST = {"arch/depth": 3, "arch/width": 64, "arch/kernel": 5, "prune/ratio": 0.0,
           "quant/bits": 32, "lowrank/ratio": 1.0, "prune/sparsity": 0.0}


def _reference() -> dict[str, float]:
    import torch

    from nascompress.data import load_digits_splits
    from nascompress.evaluators import CompressTrainEvaluator
    from nascompress.latency.client import current
    from nascompress.spaces import ImageCNNSpace

    data = load_digits_splits()
    evaluator = CompressTrainEvaluator(latency={"time_cap_s": 2.0})
    evaluator.validate()
    from nascompress.compression.plan import CompressionPlan

    x_train, x_val = torch.from_numpy(data.x_train), torch.from_numpy(data.x_val)
    estimate = evaluator._early_estimates(
        ImageCNNSpace(), LARGEST, CompressionPlan.from_params(LARGEST), data, x_train[:2],
        val_example=x_val[:1], calibration=x_train[:256], gate=current())
    return {"accuracy": 0.0, "size_bytes": 1.1 * estimate["est_size_bytes"],
            "latency_ms": 1.1 * estimate["est_latency_ms"]}


#: The search's own early-stopping defaults: the bench measures what users get.
DEFAULT_ES_ETA = EarlyStoppingConfig().eta
DEFAULT_ES_RUNGS = ",".join(str(r) for r in EarlyStoppingConfig().rungs)

#: Fractions of the budget at which each run's front is also read (anytime hypervolume).
ANYTIME = (0.125, 0.25, 0.5)


def _budget_run(out: Path, *, early_stopping: bool, seed: int, budget_s: float,
                reference: dict[str, float], rungs: list[int], eta: int) -> dict:
    from nascompress.config import parse_config
    from nascompress.pareto import front_hypervolume, pareto_front
    from nascompress.search.experiment import build_experiment
    from nascompress.search.session import SearchSession
    from nascompress.strategies import FINISHED, Outcome, ask_valid

    name = f"{'es' if early_stopping else 'plain'}-{seed}"
    config = parse_config({
        "name": name, "output_dir": str(out), "trials": 10_000, "runner": "local",
        "seed": seed, "strategy": {"name": "random"},
        "space": {"dimensions": FIXED_NO_TEACHER},
        "latency": {"time_cap_s": 0.5},
        "early_stopping": {"enabled": early_stopping, "rungs": rungs, "eta": eta},
    })
    experiment = build_experiment(config)
    session = SearchSession.start(experiment, stream=None)
    runner = experiment.trial_runner(shared=session.shared, records=session.records)
    session.listeners.append(experiment.observe)
    started = time.monotonic()
    load = load_average()
    count = 0
    finished_at: list[float] = []  # seconds into the budget at which each record landed
    # The same rule for both: no trial starts after the budget; one that runs past it
    # counts (the overshoot is reported).
    while time.monotonic() - started < budget_s:
        trial_id = f"{name}_{count:04d}"
        params = ask_valid(experiment.strategy, experiment.space, trial_id)
        if params is None or params == FINISHED:
            break
        outcome = runner(params, trial_id)
        experiment.strategy.tell(trial_id, Outcome(outcome.state, outcome.objectives,
                                                   outcome.error))
        session.record(trial_id, params, outcome)
        finished_at.append(time.monotonic() - started)
        count += 1
    elapsed = time.monotonic() - started
    session.finish()
    experiment.release()
    records = session.records

    def hypervolume_by(seconds: float) -> float:
        done = [r for r, t in zip(records, finished_at, strict=True) if t <= seconds]
        return front_hypervolume(pareto_front(done, experiment.objectives),
                                 experiment.objectives, reference)

    front = pareto_front(records, experiment.objectives)
    return {
        "trials": len(records),
        "complete": sum(r["state"] == "COMPLETE" for r in records),
        "pruned": sum(r["state"] == "PRUNED" for r in records),
        "failed": sum(r["state"] == "FAILED" for r in records),
        "front": len(front),
        "hypervolume": front_hypervolume(front, experiment.objectives, reference),
        # The same run read at shorter budgets: how fast each reaches its hypervolume.
        "hypervolume_at": {f"{f:g}": hypervolume_by(f * budget_s) for f in ANYTIME},
        "elapsed_s": elapsed, "load_average": load,
        "cached": sum(bool(r["metrics"].get("latency_cached")) for r in records),
    }


def part_es(args) -> dict[str, Any]:
    budget = 60.0 if args.quick else args.budget_s
    rungs = [int(r) for r in args.es_rungs.split(",")]
    reference = _reference()
    results: dict[str, Any] = {"budget_s": budget, "runs": [], "reference": reference,
                               "rungs": rungs, "eta": args.es_eta}
    with tempfile.TemporaryDirectory(prefix="nascompress-bench-es-") as tmp:
        for seed in range(args.seeds):
            # Alternate which goes first, so a drift in the machine's load hits both.
            order = (False, True) if seed % 2 == 0 else (True, False)
            for es in order:
                print(f"(c) seed {seed}, early stopping {'on' if es else 'off'}: "
                      f"{budget:.0f} s ...", flush=True)
                run = _budget_run(Path(tmp), early_stopping=es, seed=seed, budget_s=budget,
                                  reference=reference, rungs=rungs, eta=args.es_eta)
                results["runs"].append({"seed": seed, "early_stopping": es, **run})
    return results


def _es_ratios(r: dict[str, Any], reading: str | None = None) -> dict[int, float]:
    """Per seed: hypervolume with / without early stopping, at the end or at a reading."""
    ratios = {}
    for seed in sorted({run["seed"] for run in r["runs"]}):
        hv = {run["early_stopping"]: run["hypervolume"] if reading is None
              else run["hypervolume_at"][reading] for run in r["runs"] if run["seed"] == seed}
        if True in hv and False in hv:
            ratios[seed] = hv[True] / max(hv[False], 1e-12)
    return ratios


def table_es(r: dict[str, Any]) -> str:
    ref = r["reference"]
    box = ref["size_bytes"] * ref["latency_ms"]
    # Runs made before the anytime readings were kept have none.
    fractions = list(r["runs"][0].get("hypervolume_at", {}))
    anytime = [f"{float(f) * r['budget_s']:g}" for f in fractions]
    columns = ["seed", "early stopping", "trials", "complete", "pruned", "failed", "front",
               "hypervolume", "fraction", *(f"fraction at {s} s" for s in anytime),
               "time (s)", "load average"]
    lines = [
        f"(c) random strategy, {r['budget_s']:.0f} s of wall clock per run, the same seed "
        f"with and without early stopping (rungs "
        f"{'/'.join(str(x) for x in r.get('rungs', [3, 6, 12]))}, eta {r.get('eta', 3)}); "
        "hypervolume against the "
        f"fixed reference accuracy 0, size {ref['size_bytes']:.0f} B, latency "
        f"{ref['latency_ms']:.4f} ms (1.1 x the largest model of the space; also as a "
        f"fraction of the reference box)",
        "",
        "| " + " | ".join(columns) + " |",
        "| --- " * len(columns) + "|",
    ]
    for run in r["runs"]:
        lines.append(
            f"| {run['seed']} | {'on' if run['early_stopping'] else 'off'} | {run['trials']} | "
            f"{run['complete']} | {run['pruned']} | {run['failed']} | {run['front']} | "
            f"{run['hypervolume']:.4g} | {run['hypervolume'] / box:.4f} | "
            + "".join(f"{run['hypervolume_at'][f] / box:.4f} | " for f in fractions)
            + f"{run['elapsed_s']:.0f} | {run['load_average']} |")
    verdicts = [f"seed {seed}: {'met' if ratio >= 1 else 'MISSED'} ({ratio:.3f} x)"
                for seed, ratio in _es_ratios(r).items()]
    lines += ["", "Target (hypervolume with early stopping >= without): " + "; ".join(verdicts)]
    if fractions:
        readings = [f"{seconds} s: " + ", ".join(f"{x:.3f}" for x in
                                                _es_ratios(r, fraction).values())
                    for fraction, seconds in zip([*fractions, None],
                                                 [*anytime, f"{r['budget_s']:g}"], strict=True)]
        lines += ["", "Ratio with / without early stopping per seed, read at each budget: "
                  + "; ".join(readings)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


RENDER = {"gate": table_gate, "predictor": table_predictor, "es": table_es}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["gate", "predictor", "es", "all"], default="all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--es-eta", type=int, default=DEFAULT_ES_ETA,
                        help="(es) keep 1/eta per rung")
    parser.add_argument("--es-rungs", default=DEFAULT_ES_RUNGS, help="(es) epochs of the rungs")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite results.md from results.json")
    args = parser.parse_args(argv)
    parts = {"gate": part_gate, "predictor": part_predictor, "es": part_es}
    chosen = [] if args.render else list(parts) if args.part == "all" else [args.part]
    raw_path = HERE / "results.json"
    # results.json keeps the latest run of every part; results.md renders all of them.
    raw = json.loads(raw_path.read_text()) if raw_path.exists() and not args.no_write else {}
    for name in chosen:
        result = parts[name](args)
        key, options = name, ""
        if name == "es":
            options = f" --seeds {args.seeds} --budget-s {args.budget_s:g}"
            if (args.es_eta, args.es_rungs) != (DEFAULT_ES_ETA, DEFAULT_ES_RUNGS):
                # Other settings are kept beside the default ones, not over them.
                options += f" --es-eta {args.es_eta} --es-rungs {args.es_rungs}"
                key = f"es eta {args.es_eta} rungs {args.es_rungs}"
        result["command"] = (f"bench/latency/run.py --part {name}{options}"
                             f"{' --quick' if args.quick else ''}")
        result["date"] = time.strftime("%Y-%m-%d %H:%M")
        raw[key] = result
        print(RENDER[name](result), "\n", flush=True)
    if not args.no_write:
        raw_path.write_text(json.dumps(raw, indent=1, default=str))
        sections = [f"Part `{name}`: `{raw[name].get('command', 'bench/latency/run.py')}`, "
                    f"{raw[name].get('date', 'date not recorded')}.\n\n"
                    + RENDER[name.split()[0]](raw[name]) for name in raw]
        (HERE / "results.md").write_text(
            f"# Latency benchmark\n\nMachine: {os.cpu_count()} CPU cores, shared with other "
            "users' jobs (see the load averages).\n\n" + "\n\n".join(sections) + "\n",
            encoding="utf-8")
        print(f"wrote {HERE / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
