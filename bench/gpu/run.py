"""GPU checks and timings: what only a machine with a CUDA GPU can show.

    python bench/gpu/run.py --out OUT_DIR

(a) **CUDA-event latency**: 20 ``image-cnn`` structures (untrained, shaped as trials
shape them) timed by torch eager on the GPU with CUDA events (synchronised), batch 256
by default, in two passes: run-to-run coefficient of variation of the median per model (mean and
worst), Kendall's τ between the passes, and each model's CPU time (1 thread, one pass)
beside it.

(b) **a search on the GPU**: the same 16-trial random search (digits, default evaluator,
Ray Tune, 4 trials at once) twice: trials given ``resources.gpu: 0.25`` and timed with
``latency.device: cuda`` (torch runtime), and trials on CPU only (1 CPU each, ONNX
Runtime on CPU). Checks every trial COMPLETE, trained where it was told and timed
where it was told; shows training time and accuracy of both.

(c) **ONNX Runtime on CUDA**: with ``onnxruntime-gpu`` a search timed by ORT on CUDA;
without it (the CPU-only wheel), that such a search is refused before any trial runs.

(d) **supernet training throughput** (``bench/supernet/throughput.py``): images/s of
the weight-sharing supernet's training (warm-up and sandwich epochs) against the
pipeline's plain loop training its largest subnet, on the GPU, mnist5k, batch
``--supernet-batch-size``, the recipe's mixed precision (bf16 where the GPU has it).

Prints the tables and writes ``OUT_DIR/gpu.json``. Exits 1 when a check fails, 0
otherwise (also when there is no GPU: it says so and checks nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "latency"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from models import build, dataset, sample_params  # noqa: E402

from nascompress.latency.measure import LatencySetup, measure_torch_module  # noqa: E402
from nascompress.latency.predictor import kendall_tau, noise_floor  # noqa: E402


def part_cuda_latency(data, batch_size: int) -> dict[str, Any]:
    import torch

    cuda = LatencySetup(device="cuda", batch_size=batch_size, warmup=20, min_repeats=30,
                        time_cap_s=2.0)
    cpu = LatencySetup(device="cpu", threads=1, batch_size=batch_size, min_repeats=10,
                       time_cap_s=1.0)
    example = torch.from_numpy(data.x_val[:1])
    models = [build(params, data) for params in sample_params(20, seed=11)]
    passes: list[list[dict[str, Any]]] = [[], []]
    for pass_index in range(2):
        for model in models:
            result = measure_torch_module(model, example, cuda)
            passes[pass_index].append({"median_ms": result.median_ms,
                                       "rel_iqr": result.iqr_ms / result.median_ms,
                                       "converged": result.converged})
    cpu_ms = [measure_torch_module(model.cpu(), example, cpu).median_ms for model in models]
    medians = [[p["median_ms"] for p in one] for one in passes]
    pairs = list(zip(*medians, strict=True))
    return {"device": torch.cuda.get_device_name(0), "batch_size": batch_size,
            "medians_ms": medians, "cpu_ms": cpu_ms,
            "rel_iqr": [[p["rel_iqr"] for p in one] for one in passes],
            "converged": sum(p["converged"] for one in passes for p in one),
            "cv_mean": noise_floor(pairs), "cv_worst": max(noise_floor([p]) for p in pairs),
            "tau": kendall_tau(*medians)}


def table_cuda_latency(r: dict[str, Any]) -> str:
    lines = [f"(a) CUDA-event latency on {r['device']}, 20 models, batch {r['batch_size']}, "
             "2 passes",
             "", "| model | pass 1 (ms) | pass 2 (ms) | IQR/median | CPU 1 thread (ms) | "
             "CPU / GPU |", "| --- | --- | --- | --- | --- | --- |"]
    for i, (a, b, cpu, iqr) in enumerate(zip(*r["medians_ms"], r["cpu_ms"], r["rel_iqr"][0],
                                            strict=True)):
        lines.append(f"| {i} | {a:.4f} | {b:.4f} | {iqr:.1%} | {cpu:.3f} | {cpu / a:.1f} |")
    lines += ["", f"Run-to-run CV of the median: mean {r['cv_mean']:.2%}, worst "
              f"{r['cv_worst']:.2%}; Kendall τ between passes {r['tau']:.3f}; "
              f"{r['converged']} of 40 measurements converged (IQR <= 10 % of the median)."]
    return "\n".join(lines)


def _search(out: Path, name: str, extra: dict[str, Any]) -> tuple[int, str, list[dict]]:
    """Run a 16-trial Ray search through the command line; (exit code, stderr, trials)."""
    import yaml

    config = {"name": name, "output_dir": str(out), "trials": 16, "max_concurrent": 4,
              "seed": 0, "runner": "ray", "strategy": {"name": "random"}, **extra}
    path = out / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "nascompress.cli", "search", "--config",
                           str(path), "--quiet"], capture_output=True, text=True)
    trials_file = out / name / "trials.jsonl"
    trials = ([json.loads(line) for line in trials_file.read_text().splitlines() if line]
              if trials_file.exists() else [])
    return done.returncode, done.stderr.strip()[-2000:], trials


def _summary(code: int, trials: list[dict]) -> dict[str, Any]:
    metrics = [t.get("metrics", {}) for t in trials]

    def median_of(key: str) -> float | None:
        values = [m[key] for m in metrics if isinstance(m.get(key), int | float)]
        return statistics.median(values) if values else None

    return {"exit": code, "trials": len(trials),
            "complete": sum(t["state"] == "COMPLETE" for t in trials),
            "train_devices": sorted({str(m.get("train_device")) for m in metrics}),
            "latency_devices": sorted({str(m.get("latency_device")) for m in metrics}),
            "median_train_s": median_of("time_train_s"),
            "median_accuracy": statistics.median(
                t["objectives"]["accuracy"] for t in trials if t["state"] == "COMPLETE")
            if any(t["state"] == "COMPLETE" for t in trials) else None,
            "median_latency_ms": median_of("latency_median_ms")}


def part_search(out: Path) -> dict[str, Any]:
    import onnxruntime

    runs: dict[str, Any] = {}
    code, err, trials = _search(out, "gpu", {
        "resources": {"cpu": 2, "gpu": 0.25},
        "latency": {"device": "cuda", "runtime": "torch", "batch_size": 256}})
    runs["gpu"] = {**_summary(code, trials), "stderr": err if code else ""}
    code, err, trials = _search(out, "cpu", {
        "resources": {"cpu": 1, "gpu": 0}, "latency": {"device": "cpu"}})
    runs["cpu"] = {**_summary(code, trials), "stderr": err if code else ""}
    has_ort_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    started = time.monotonic()
    code, err, trials = _search(out, "ort-cuda", {
        "resources": {"cpu": 2, "gpu": 0.25}, "latency": {"device": "cuda"}})
    runs["ort-cuda"] = {**_summary(code, trials), "stderr": err,
                        "has_provider": has_ort_cuda, "seconds": time.monotonic() - started}
    return runs


def check_search(r: dict[str, Any]) -> list[str]:
    problems = []
    gpu, cpu, ort = r["gpu"], r["cpu"], r["ort-cuda"]
    if gpu["exit"] != 0 or gpu["complete"] != 16:
        problems.append(f"GPU search: exit {gpu['exit']}, {gpu['complete']}/16 complete")
    if gpu["train_devices"] != ["cuda"] or gpu["latency_devices"] != ["cuda"]:
        problems.append(f"GPU search trained on {gpu['train_devices']}, timed on "
                        f"{gpu['latency_devices']}")
    if cpu["exit"] != 0 or cpu["complete"] != 16 or cpu["train_devices"] != ["cpu"]:
        problems.append(f"CPU search: exit {cpu['exit']}, {cpu['complete']}/16 complete, "
                        f"trained on {cpu['train_devices']}")
    if ort["has_provider"]:
        if ort["exit"] != 0 or ort["latency_devices"] != ["cuda"]:
            problems.append(f"ORT CUDA search: exit {ort['exit']}, {ort['latency_devices']}")
    elif ort["exit"] != 2 or ort["trials"] or "CUDAExecutionProvider" not in ort["stderr"]:
        problems.append(f"ORT without CUDA provider: exit {ort['exit']}, {ort['trials']} "
                        f"trials, stderr {ort['stderr'][-300:]!r}")
    return problems


def table_search(r: dict[str, Any]) -> str:
    lines = ["(b) 16-trial random search on digits (Ray Tune, 4 at once), the same seed",
             "", "| run | exit | complete | trained on | timed on | median train s | "
             "median accuracy | median latency ms |", "| --- " * 8 + "|"]
    for name in ("gpu", "cpu"):
        s = r[name]
        shown = [f"{s[k]:.3g}" if s[k] is not None else "-"
                 for k in ("median_train_s", "median_accuracy", "median_latency_ms")]
        lines.append(f"| {name} | {s['exit']} | {s['complete']}/{s['trials']} | "
                     f"{','.join(s['train_devices'])} | {','.join(s['latency_devices'])} | "
                     + " | ".join(shown) + " |")
    ort = r["ort-cuda"]
    lines += ["", f"(c) ORT on CUDA: CUDAExecutionProvider present: {ort['has_provider']}; "
              f"exit {ort['exit']}, {ort['trials']} trials, {ort['seconds']:.1f} s; "
              f"message: {ort['stderr'].splitlines()[-1] if ort['stderr'] else '-'}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-bench", help="folder for runs and gpu.json")
    parser.add_argument("--part", choices=["latency", "search", "supernet", "all"],
                        default="all")
    parser.add_argument("--supernet-batch-size", type=int, default=256)
    parser.add_argument("--supernet-epochs", type=int, default=5,
                        help="(supernet) timed epochs per arm")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="(latency) inputs per timed pass; the +-5 %% target is for "
                             "models of 1 ms or more")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible: nothing to check here")
        return 0
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = dataset()
    results: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    problems = []
    if args.part in ("latency", "all"):
        results["latency"] = part_cuda_latency(data, args.batch_size)
        print(table_cuda_latency(results["latency"]), "\n", flush=True)
        if results["latency"]["tau"] < 0.9:
            problems.append(f"CUDA latency τ between passes {results['latency']['tau']:.3f} "
                            "< 0.9")
    if args.part in ("search", "all"):
        results["search"] = part_search(out / "runs")
        print(table_search(results["search"]), "\n", flush=True)
        problems += check_search(results["search"])
    if args.part in ("supernet", "all"):
        sys.path.insert(0, str(HERE.parent / "supernet"))
        import throughput

        results["supernet"] = throughput.measure(
            dataset_name="mnist5k", device="cuda", amp="auto",
            batch_size=args.supernet_batch_size, epochs=args.supernet_epochs, threads=1)
        print(throughput.table(results["supernet"], "python bench/gpu/run.py --part "
                               "supernet"), "\n", flush=True)
        ran_on = results["supernet"]["supernet_ran_on"]
        if [device for device, _ in ran_on] != ["cuda"]:
            problems.append(f"supernet: trained on {ran_on}, not on the GPU alone")
    results["problems"] = problems
    (out / "gpu.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(f"FAILED: {p}" for p in problems) or "all GPU checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
