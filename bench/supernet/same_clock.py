"""Same wall clock, better front? Weight-sharing search against multi-trial search.

For each seed, two searches of the same space, data, strategy and objectives run side by
side, each in its own process with one torch thread (the two arms share the machine
equally, so neither gets the other's core):

* **weight sharing** (evaluator ``supernet``): supernet training, ``--ws-trials``
  inherited trials, then the finalists fine-tuned and measured. Its wall clock ``T``
  (process start to end, supernet training included) is the budget.
* **multi-trial** (evaluator ``compress-train``, every candidate trained on its own):
  as many trials as fit in ``T``; the process is stopped at ``T`` and only the trials
  recorded by then count (``trials.jsonl`` is written trial by trial).

Score: the hypervolume of each arm's final front (weight sharing: the finalists', whose
accuracy is fine-tuned and measured, never the inherited numbers; multi-trial: every
completed trial), in a space where accuracy, log10 size and log10 latency are scaled to
[0, 1] over the union of both arms' fronts of that seed, reference point 1.1 in each
(the same reference for both arms). Every number is measured by this script.

    python bench/supernet/same_clock.py --seeds 0,1,2 --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL_SPACE = {"stages": [[8, 1], [16, 2], [24, 2]], "max_depth": 2, "stem_channels": 8,
               "head_channels": 64}
LATENCY = {"min_repeats": 5, "max_repeats": 20, "warmup": 2, "time_cap_s": 0.5}
#: Both arms search the same space without the distillation knobs: weight sharing
#: ignores them (its finalists distil from the largest subnet, for free), and in
#: multi-trial search they would cost a teacher trained before the first trial.
NO_DISTILLATION = {"distill/alpha": {"type": "float", "low": 0.0, "high": 0.0},
                   "distill/feature_weight": {"type": "float", "low": 0.0, "high": 0.0}}


def arm_config(arm: str, *, seed: int, out: Path, args) -> dict:
    common = {"batch_size": 64, "lr": 3e-3, "threads": 1, "latency": LATENCY}
    if arm == "ws":
        evaluator = {"name": "supernet", "options": {
            **common, "epochs": args.supernet_epochs, "warmup_epochs": 1,
            "finalists": args.finalists, "finetune_epochs": args.finetune_epochs}}
        trials = args.ws_trials
    else:
        evaluator = {"name": "compress-train", "options": {
            **common, "epochs": args.epochs, "finetune_epochs": args.finetune_epochs}}
        trials = 100_000  # stopped by the clock
    return {"name": arm, "output_dir": str(out), "trials": trials, "runner": "local",
            "seed": seed, "dataset": {"name": args.dataset},
            "space": {"name": "mobilenet", "options": SMALL_SPACE,
                      "dimensions": NO_DISTILLATION},
            "strategy": {"name": args.strategy}, "evaluator": evaluator}


def start(arm: str, config: dict, folder: Path) -> subprocess.Popen:
    path = folder / f"{arm}.json"
    path.write_text(json.dumps(config))
    log = open(folder / f"{arm}.log", "w")  # noqa: SIM115 - closed with the process
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "nascompress.cli", "search", "--config",
                             str(path), "--quiet"], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


def front_points(records, objectives):
    from nascompress.pareto import pareto_front

    front = pareto_front(records, objectives)
    return [(r["objectives"]["accuracy"], r["objectives"]["size_bytes"],
             r["objectives"]["latency_ms"]) for r in front], front


def scaled_hypervolume(points, bounds) -> float:
    from nascompress.pareto import hypervolume

    (alo, ahi), (slo, shi), (llo, lhi) = bounds

    def scale(value, lo, hi):
        return (value - lo) / (hi - lo) if hi > lo else 0.0

    vectors = [(scale(-a, -ahi, -alo), scale(math.log10(s), slo, shi),
                scale(math.log10(lat), llo, lhi)) for a, s, lat in points]
    return hypervolume(vectors, (1.1, 1.1, 1.1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--strategy", default="evolution")
    parser.add_argument("--ws-trials", type=int, default=150)
    parser.add_argument("--supernet-epochs", type=int, default=6)
    parser.add_argument("--finalists", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3,
                        help="multi-trial: training epochs per candidate")
    parser.add_argument("--ws-only", action="store_true",
                        help="run only the weight-sharing search of each seed and print its "
                             "folder (for finalists.py); no multi-trial arm, no table")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from nascompress.objectives import Objective
    from nascompress.search.records import RunDirectory

    objectives = [Objective("accuracy", "max"), Objective("size_bytes", "min"),
                  Objective("latency_ms", "min")]
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        folder = Path(tempfile.mkdtemp(prefix=f"same-clock-{seed}-"))
        clock = time.perf_counter()
        ws = start("ws", arm_config("ws", seed=seed, out=folder, args=args), folder)
        mt = None if args.ws_only else start(
            "mt", arm_config("mt", seed=seed, out=folder, args=args), folder)
        ws_code = ws.wait()
        budget_s = time.perf_counter() - clock
        if mt is not None:
            os.killpg(mt.pid, signal.SIGKILL)  # the clock ran out for multi-trial
            mt.wait()
        if ws_code != 0:
            raise SystemExit(f"weight-sharing search failed, see {folder / 'ws.log'}")
        if mt is None:
            print(json.dumps({"seed": seed, "wall_s": budget_s, "folder": str(folder)}),
                  flush=True)
            continue
        ws_records = RunDirectory(folder / "ws").load_trials()
        mt_records = [r for r in RunDirectory(folder / "mt").load_trials()
                      if r.get("state") == "COMPLETE"]
        ws_points, ws_front = front_points(ws_records, objectives)
        mt_points, _ = front_points(mt_records, objectives)
        union = ws_points + mt_points
        bounds = [(min(p[0] for p in union), max(p[0] for p in union)),
                  (min(math.log10(p[1]) for p in union), max(math.log10(p[1]) for p in union)),
                  (min(math.log10(p[2]) for p in union), max(math.log10(p[2]) for p in union))]
        supernet = RunDirectory(folder / "ws").read_run().get("supernet", {})
        row = {
            "seed": seed, "wall_s": budget_s, "supernet_s": supernet.get("train_s"),
            "ws_trials": sum(1 for r in ws_records if r.get("stage") == "search"),
            "ws_finalists": sum(1 for r in ws_records if r.get("stage") == "final"),
            "mt_trials": len(mt_records),
            "ws_hv": scaled_hypervolume(ws_points, bounds),
            "mt_hv": scaled_hypervolume(mt_points, bounds),
            "ws_best": max((p[0] for p in ws_points), default=float("nan")),
            "mt_best": max((p[0] for p in mt_points), default=float("nan")),
            "ws_front": [(round(a, 4), int(b), round(c, 3)) for a, b, c in sorted(ws_points)],
            "mt_front": [(round(a, 4), int(b), round(c, 3)) for a, b, c in sorted(mt_points)],
            "ws_sources": sorted({(r.get("metrics") or {}).get("accuracy_source")
                                  for r in ws_front}),
            "folder": str(folder),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    if not rows:
        return
    # No multi-trial trial finished in the time: weight sharing wins by default (inf).
    ratios = [r["ws_hv"] / r["mt_hv"] if r["mt_hv"] else float("inf") for r in rows]
    lines = [
        f"### Same wall clock: weight sharing vs multi-trial, mobilenet (small space) on "
        f"{args.dataset}, strategy {args.strategy}, {len(rows)} seeds",
        "",
        f"{platform.machine()} CPU, each arm one process with 1 torch thread, both arms "
        f"running side by side; {time.strftime('%Y-%m-%d')}. Command: "
        f"`python bench/supernet/same_clock.py {' '.join(sys.argv[1:])}`",
        "",
        "| seed | wall clock s | supernet s | WS trials + finalists | MT trials in the same "
        "time | HV weight sharing | HV multi-trial | ratio | best acc WS (fine-tuned) | "
        "best acc MT |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['seed']} | {r['wall_s']:.0f} | {r['supernet_s'] or float('nan'):.0f} | "
          f"{r['ws_trials']} + {r['ws_finalists']} | {r['mt_trials']} | {r['ws_hv']:.4f} | "
          f"{r['mt_hv']:.4f} | {ratio:.2f} | {r['ws_best']:.4f} | {r['mt_best']:.4f} |"
          for r, ratio in zip(rows, ratios, strict=True)],
        "",
        f"Median HV ratio (weight sharing / multi-trial): {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); weight sharing ahead on "
        f"{sum(r['ws_hv'] > r['mt_hv'] for r in rows)} of {len(rows)} seeds. Fronts "
        "(accuracy, size bytes, latency ms) per seed:",
        "",
        *[f"- seed {r['seed']}: WS {r['ws_front']}; MT {r['mt_front']}" for r in rows],
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
