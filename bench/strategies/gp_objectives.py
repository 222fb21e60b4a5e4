"""What a proposal of ``bayesian``'s GP costs with 2, 3 and 4 objectives.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/strategies/gp_objectives.py           # ~10 min
    PYTHONPATH=. .venv/bin/python bench/strategies/gp_objectives.py --objectives 2,3 --asks 40

For each number of objectives, one process runs ``bayesian`` with ``sampler: gp`` on the
default ``image-cnn`` space (budget 100) for ``--asks`` asks, telling each proposal
synthetic objective values: uniform in [0, 1], drawn from a hash of the params, so the
same point always scores the same and the objectives are uncorrelated. Uncorrelated
objectives give large fronts, so this is the expensive end: real objectives (size and
latency move together) give smaller fronts and cheaper proposals. Each process reports
the seconds per ask (median over the last 10 asks), the process's CPU seconds per wall
second over all asks (1.0: one thread) and its peak resident memory. Writes
``gp_objectives.md`` next to this file (or ``--output``).

Why: the GP's acquisition (log expected hypervolume improvement) works on a box
decomposition of the front found so far, whose size grows steeply with the number of
objectives (optuna warns above four). ``sampler: auto`` chooses the GP only up to
:data:`~nascompress.strategies.bayesian.GP_MAX_OBJECTIVES` objectives.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

NAMES = ["accuracy", "size_bytes", "latency_ms", "flops", "energy_mj"]


def measure(objectives: int, asks: int) -> dict:
    """Run the asks in this process; the figures as a dict."""
    from nascompress.objectives import Objective
    from nascompress.spaces import ImageCNNSpace
    from nascompress.strategies._base import Outcome
    from nascompress.strategies.bayesian import BayesianStrategy

    names = NAMES[:objectives]
    strategy = BayesianStrategy(sampler="gp")
    strategy.setup(ImageCNNSpace(),
                   [Objective(names[0], "max")] + [Objective(n, "min") for n in names[1:]],
                   seed=0, budget=100)
    seconds = []
    cpu = 0.0
    for i in range(asks):
        w, c = time.perf_counter(), time.process_time()
        params = strategy.ask(f"t{i}")
        seconds.append(time.perf_counter() - w)
        cpu += time.process_time() - c
        digest = zlib.crc32(json.dumps(params, sort_keys=True, default=str).encode())
        values = {n: ((digest >> (5 * j)) % 997) / 996 for j, n in enumerate(names)}
        strategy.tell(f"t{i}", Outcome("COMPLETE", values))
    return {"objectives": objectives, "asks": asks,
            "last10_median_s": statistics.median(seconds[-10:]),
            "total_s": sum(seconds), "cpu_per_wall": cpu / sum(seconds),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objectives", default="2,3,4")
    parser.add_argument("--asks", type=int, default=60)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).with_name("gp_objectives.md"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.asks)))
        return

    rows = []
    for k in [int(x) for x in args.objectives.split(",")]:
        # One process per row: peak memory is per process.
        done = subprocess.run([sys.executable, __file__, "--one", str(k), "--asks",
                               str(args.asks)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{k} objectives: {row['last10_median_s']:.2f} s per ask (last 10), "
              f"{row['peak_rss_mb']:.0f} MB peak", flush=True)

    base = next((r for r in rows if r["objectives"] == 3), rows[0])
    lines = [
        "# The GP's cost per proposal against the number of objectives", "",
        f"Command: `python bench/strategies/gp_objectives.py --objectives {args.objectives} "
        f"--asks {args.asks}`; {datetime.date.today()}; {platform.machine()}, "
        f"{platform.processor() or 'cpu'}, python {platform.python_version()}.", "",
        "`bayesian` with `sampler: gp`, default `image-cnn` space, budget 100, seed 0; "
        "synthetic uncorrelated objectives (the expensive end: large fronts). One process "
        "per row. Ratio: seconds per ask against the 3-objective row.", "",
        "| objectives | asks | s per ask, median of the last 10 | ratio | all asks, s "
        "| CPU s per wall s | peak memory, MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['objectives']} | {r['asks']} | {r['last10_median_s']:.2f} | "
                     f"{r['last10_median_s'] / base['last10_median_s']:.2f} | "
                     f"{r['total_s']:.0f} | {r['cpu_per_wall']:.2f} | {r['peak_rss_mb']:.0f} |")
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
