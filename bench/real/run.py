"""Real workloads: searches on mnist5k (real MNIST images) with the image-cnn and mobilenet
spaces, every front point exported and re-checked on the held-out test split.

    python bench/real/run.py                      # default: both spaces, writes results.md
    python bench/real/run.py --trials 8 --quick   # smoke run (shorter training, no file)

For each space: one ``nascompress search`` (Ray runner, the default strategy, fixed seed),
then every point of its final front is exported to ONNX through ``nascompress.api`` (the
exported file is run on the test split: that is the test accuracy reported), then the
best test accuracy among points whose artifact is at most 10 KB, 30 KB and 100 KB.
Baseline: scikit-learn's logistic regression on the same split (its test accuracy, and
its size as float32 weights and biases).

Everything printed is measured in this run; ``results.md`` gets the command, the date,
the machine and every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE_BUDGETS = (10_000, 30_000, 100_000)

CONFIG = """
seed: {seed}
trials: {trials}
max_concurrent: 2
dataset: {{name: mnist5k}}
space: {{name: {space}, options: {options}}}
evaluator:
  name: compress-train
  options: {{epochs: {epochs}, finetune_epochs: {finetune}, teacher_epochs: {teacher}}}
"""


def logistic_baseline() -> dict[str, float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from nascompress.data import load_mnist5k_splits

    data = load_mnist5k_splits()
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    started = time.perf_counter()
    model = LogisticRegression(max_iter=2000, C=0.1)
    model.fit(flat(data.x_train), data.y_train)
    seconds = time.perf_counter() - started
    size = (model.coef_.size + model.intercept_.size) * np.dtype(np.float32).itemsize
    return {"val_accuracy": float(model.score(flat(data.x_val), data.y_val)),
            "test_accuracy": float(model.score(flat(data.x_test), data.y_test)),
            "size_bytes": float(size), "train_s": seconds}


def run_space(space: str, args, root: Path) -> dict:
    from nascompress.api import load_run

    name = f"{space}-s{args.seed}"
    config = root / f"{name}.yaml"
    options = json.dumps(args.space_options.get(space, {}))
    config.write_text(CONFIG.format(seed=args.seed, trials=args.trials, space=space,
                                    options=options, epochs=args.epochs,
                                    finetune=args.finetune, teacher=args.teacher_epochs),
                      encoding="utf-8")
    run_json = root / name / "run.json"
    reused = (args.reuse and run_json.exists()
              and json.loads(run_json.read_text())["status"] == "finished")
    if not reused:  # a finished run of an earlier invocation is read, not repeated
        subprocess.run([sys.executable, "-m", "nascompress.cli", "search", "--config",
                        str(config), "--output-dir", str(root), "--name", name, "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
    recorded = json.loads(run_json.read_text())
    wall = recorded["elapsed_s"]
    run = load_run(root / name)
    trials = run.trials
    complete = trials[trials["state"] == "COMPLETE"]
    points = []
    for record in run.front_records:
        manifest = run.export(record, format="onnx", out=root / "exports" / name)
        points.append({"number": record["number"],
                       "size_bytes": record["objectives"]["size_bytes"],
                       "latency_ms": record["objectives"]["latency_ms"],
                       "val_accuracy": record["objectives"]["accuracy"],
                       "test_accuracy": manifest.test_accuracy,
                       "latency_kind": record["metrics"].get("latency_kind"),
                       "params": {k: v for k, v in record["params"].items()
                                  if k.split("/")[0] in ("prune", "quant", "lowrank")}})
    durations = [float(d) for d in complete["duration_s"]] if len(complete) else [0.0]
    settings = recorded["config"]
    return {"space": space, "wall_s": wall, "trials": len(trials),
            "settings": {"evaluator": settings["evaluator"]["options"],
                         "space": settings["space"]["options"], "seed": settings["seed"],
                         "strategy": settings["strategy"]["name"]},
            "complete": int(len(complete)), "trial_s_median": statistics.median(durations),
            "trial_s_range": (min(durations), max(durations)), "front": points}


def best_under(points: list[dict], budget: int) -> dict | None:
    fitting = [p for p in points if p["size_bytes"] <= budget]
    return max(fitting, key=lambda p: p["test_accuracy"]) if fitting else None


def render(results: list[dict], baseline: dict, args) -> str:
    lines = ["| space | settings | trials (complete) | search wall s | s per trial, median "
             "[min, max] |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        lo, hi = r["trial_s_range"]
        lines.append(f"| {r['space']} | `{json.dumps(r['settings'])}` | {r['trials']} "
                     f"({r['complete']}) | {r['wall_s']:.0f} | "
                     f"{r['trial_s_median']:.1f} [{lo:.1f}, {hi:.1f}] |")
    lines += ["", "Best test accuracy of an exported front point within an artifact size "
              "budget (val accuracy, size, latency of that point):", "",
              "| space | " + " | ".join(f"<= {b // 1000} KB" for b in SIZE_BUDGETS) + " |",
              "| --- |" + " --- |" * len(SIZE_BUDGETS)]
    for r in results:
        cells = []
        for budget in SIZE_BUDGETS:
            p = best_under(r["front"], budget)
            cells.append("none on the front" if p is None else
                         f"**{p['test_accuracy']:.4f}** (val {p['val_accuracy']:.4f}, "
                         f"{p['size_bytes']:.0f} B, {p['latency_ms']:.3f} ms)")
        lines.append(f"| {r['space']} | " + " | ".join(cells) + " |")
    lines.append("| logistic regression (float32) | " + " | ".join(
        f"{baseline['test_accuracy']:.4f} ({baseline['size_bytes']:.0f} B)"
        if baseline["size_bytes"] <= b else f"does not fit ({baseline['size_bytes']:.0f} B)"
        for b in SIZE_BUDGETS) + " |")
    for r in results:
        lines += ["", f"Front of `{r['space']}` ({len(r['front'])} points; test accuracy "
                  "measured by running the exported ONNX file):", "",
                  "| trial | size B | latency ms (kind) | val acc | test acc | compression |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for p in sorted(r["front"], key=lambda p: p["size_bytes"]):
            knobs = ", ".join(f"{k}={v}" for k, v in p["params"].items())
            lines.append(f"| {p['number']} | {p['size_bytes']:.0f} | {p['latency_ms']:.3f} "
                         f"({p['latency_kind']}) | {p['val_accuracy']:.4f} | "
                         f"{p['test_accuracy']:.4f} | {knobs} |")
    lines += ["", f"Baseline: logistic regression (C=0.1, lbfgs) on the flattened pixels of the "
              f"same split: val {baseline['val_accuracy']:.4f}, test "
              f"{baseline['test_accuracy']:.4f}, {baseline['size_bytes']:.0f} bytes as float32 "
              f"(7,840 weights + 10 biases), trained in {baseline['train_s']:.1f} s."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["image-cnn", "mobilenet"])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--finetune", type=int, default=2)
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 epochs, no results file")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: read a finished run instead of searching again")
    parser.add_argument("--space-options", type=json.loads, default={},
                        help='per space, e.g. \'{"mobilenet": {"max_depth": 2}}\'')
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.finetune, args.teacher_epochs = 1, 1, 1
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        results = [run_space(space, args, root) for space in args.spaces]
    baseline = logistic_baseline()
    table = render(results, baseline, args)
    print(table)
    out = args.out if args.out else (None if args.quick else HERE / "results.md")
    if out:
        import onnxruntime
        import torch

        header = [
            "# Real workloads: mnist5k searches, exported fronts, test accuracy", "",
            f"Command: `python bench/real/run.py {' '.join(sys.argv[1:])}`".rstrip(), "",
            f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}. Machine: {platform.platform()}, "
            f"{os.cpu_count()} cores, load average {load_start[0]:.1f} at start and "
            f"{os.getloadavg()[0]:.1f} at the end. torch {torch.__version__}, onnxruntime "
            f"{onnxruntime.__version__}.", "",
            "Each search: Ray runner with 2 trials at a time, the default strategy "
            "(bayesian), settings per space in the first table (each run's own run.json); "
            "data mnist5k (3,500 / 750 / 750 images).", ""]
        out.write_text("\n".join(header) + "\n" + table + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
