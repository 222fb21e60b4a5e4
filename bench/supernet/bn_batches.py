"""Does BatchNorm recalibration with more images rank subnets better?

A search trial recalibrates an extracted subnet's BatchNorm on ``bn_batches`` training
batches (default 8 of 64 images) before scoring it. This script takes a supernet that
``run.py`` trained (its work folder, printed as ``supernet: ... trained`` and left under
the temp folder) and the subnets of its ``--rows-out`` file, scores every subnet again
with each ``--bn-batches`` value (same checkpoint, same validation split), and reports
Kendall tau of each against the mean of every stand-alone run of those subnets (as
``reference.py`` does), with bootstrap 95 % intervals. Nothing is trained.

A supernet that scored several draws (``run.py --standalone-from DRAW0 DRAW1 --seed S``)
is rescored on all of them with ``--rows`` given one file per draw and ``--seed S``;
``--rows-out-dir`` then writes one rows file per ``--bn-batches`` value and draw
(``bn8_draw0.json``, ...), which ``arms.py --supernet`` compares pooled over the draws,
every value scored by the same supernet (a paired comparison: a supernet's seed moves
its tau by about +-0.05, so comparing values across supernets would hide an effect of
that size).

    python bench/supernet/bn_batches.py --workdir /tmp/bench-supernet-XXXX --epochs 10 \\
        --rows bench/supernet/rank_fidelity_joint_10ep.json --bn-batches 8,32 \\
        --runs bench/supernet/ceiling_joint_seed1.json bench/supernet/ceiling_joint_seed2.json \\
        bench/supernet/ceiling_joint_seed3.json --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import mean_of, standalone_runs  # noqa: E402 - beside this file
from run import (  # noqa: E402
    bench_space,
    bootstrap_tau,
    emit,
    read_rows,
    supernet_evaluator,
    write_rows,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="run.py's work folder (its supernet)")
    parser.add_argument("--epochs", type=int, required=True, help="run.py's --epochs")
    parser.add_argument("--rows", required=True, nargs="+",
                        help="run.py's --rows-out file(s), one per draw it scored")
    parser.add_argument("--seed", type=int, default=0, help="run.py's --seed")
    parser.add_argument("--runs", nargs="*", default=[],
                        help="ceiling.py --save files (one draw only)")
    parser.add_argument("--rows-out-dir", default=None,
                        help="write bn<B>_draw<i>.json rows files here (for arms.py)")
    parser.add_argument("--bn-batches", default="8,32")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.runs and len(args.rows) > 1:
        raise SystemExit("--runs: give it with one --rows file; pool several draws with "
                         "--rows-out-dir and arms.py")

    import torch

    from nascompress.data import DATASETS
    from nascompress.evaluators import TrialContext

    torch.set_num_threads(1)
    draws = [read_rows(path) for path in args.rows]
    params = [p for rows in draws for p in rows["params"]]
    count = len(params)
    runs = standalone_runs(draws[0], args.runs)
    # One draw: the mean of every stand-alone run; several: each subnet's run.py figure
    # (pooled figures against more runs come from arms.py on the --rows-out-dir files).
    reference = (mean_of(runs, range(len(runs))) if len(draws) == 1
                 else [a for rows in draws for a in rows["standalone"]])
    dataset = DATASETS.resolve("mnist5k", field="dataset")()
    space = bench_space(joint=any(b != 32 for rows in draws for b in rows["bits"]))
    # run.py's supernet options (its defaults), so that prepare() finds its supernet
    evaluator = supernet_evaluator(args.epochs)
    work = Path(args.workdir)
    prepared = evaluator.prepare(space=space, dataset=dataset, seed=args.seed, workdir=work)
    lines = [f"### BatchNorm recalibration batches and rank fidelity, {count} subnets, "
             f"supernet {args.epochs} epochs", "",
             f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/bn_batches.py "
             f"{' '.join(sys.argv[1:])}`. Reference: "
             + (f"the mean of {len(runs)} stand-alone run(s)." if len(draws) == 1 else
                f"each subnet's first stand-alone run, pairs across {len(draws)} draws "
                "included (pooled figures: arms.py)."), "",
             "| bn_batches (x 64 images) | inherited accuracy, mean | Kendall tau vs the "
             "reference [bootstrap 95 %] |", "|---|---|---|"]
    for batches in (int(b) for b in args.bn_batches.split(",")):
        scorer = copy.copy(evaluator)
        scorer.bn_batches = batches
        accuracy, seconds = [], []
        for i, point in enumerate(params):
            clock = time.perf_counter()
            accuracy.append(scorer.evaluate(point, space=space, dataset=dataset,
                                            context=TrialContext(
                trial_id=f"bn{batches}-{i}", seed=args.seed, artifact_dir=work / "bn",
                shared=prepared.shared))["accuracy"])
            seconds.append(time.perf_counter() - clock)
        if args.rows_out_dir:
            _write_draws(Path(args.rows_out_dir), batches, draws, accuracy, seconds)
        tau, low, high = bootstrap_tau(accuracy, reference, resamples=args.bootstrap, seed=1)[:3]
        lines.append(f"| {batches} | {statistics.mean(accuracy):.4f} | {tau:.3f} "
                     f"[{low:.3f}, {high:.3f}] |")
        print(lines[-1], flush=True)
    emit("\n".join(lines) + "\n", args.out)


def _write_draws(directory: Path, batches: int, draws: list[dict], accuracy: list[float],
                 seconds: list[float]) -> None:
    """One ``run.py``-format rows file per draw: the rescored inherited accuracies, the
    draw's own stand-alone figures (no fine-tune)."""
    directory.mkdir(parents=True, exist_ok=True)
    start = 0
    for number, rows in enumerate(draws):
        stop = start + len(rows["params"])
        write_rows(str(directory / f"bn{batches}_draw{number}.json"),
                   [(accuracy[i], rows["standalone"][i - start], seconds[i],
                     rows["standalone_s"][i - start], float("nan"), float("nan"))
                    for i in range(start, stop)], rows["params"],
                   command=f"python bench/supernet/bn_batches.py {' '.join(sys.argv[1:])}")
        start = stop


if __name__ == "__main__":
    main()
