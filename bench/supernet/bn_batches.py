"""Does BatchNorm recalibration with more images rank subnets better?

A search trial recalibrates an extracted subnet's BatchNorm on ``bn_batches`` training
batches (default 8 of 64 images) before scoring it. This script takes a supernet that
``run.py`` trained (its work folder, printed as ``supernet: ... trained`` and left under
the temp folder) and the subnets of its ``--rows-out`` file, scores every subnet again
with each ``--bn-batches`` value (same checkpoint, same validation split), and reports
Kendall tau of each against the mean of every stand-alone run of those subnets (as
``reference.py`` does), with bootstrap 95 % intervals. Nothing is trained.

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
from run import bench_space, bootstrap_tau, emit, read_rows, supernet_evaluator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="run.py's work folder (its supernet)")
    parser.add_argument("--epochs", type=int, required=True, help="run.py's --epochs")
    parser.add_argument("--rows", required=True, help="run.py's --rows-out file")
    parser.add_argument("--runs", nargs="*", default=[], help="ceiling.py --save files")
    parser.add_argument("--bn-batches", default="8,32")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    from nascompress.data import DATASETS
    from nascompress.evaluators import TrialContext

    torch.set_num_threads(1)
    rows = read_rows(args.rows)
    count = len(rows["params"])
    runs = standalone_runs(rows, args.runs)
    reference = mean_of(runs, range(len(runs)))
    dataset = DATASETS.resolve("mnist5k", field="dataset")()
    space = bench_space(joint=any(b != 32 for b in rows["bits"]))
    # run.py's supernet options (its defaults), so that prepare() finds its supernet
    evaluator = supernet_evaluator(args.epochs)
    work = Path(args.workdir)
    prepared = evaluator.prepare(space=space, dataset=dataset, seed=0, workdir=work)
    lines = [f"### BatchNorm recalibration batches and rank fidelity, {count} subnets, "
             f"supernet {args.epochs} epochs", "",
             f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/bn_batches.py "
             f"{' '.join(sys.argv[1:])}`. Reference: the mean of {len(runs)} stand-alone "
             "run(s).", "",
             "| bn_batches (x 64 images) | inherited accuracy, mean | Kendall tau vs the "
             "reference [bootstrap 95 %] |", "|---|---|---|"]
    for batches in (int(b) for b in args.bn_batches.split(",")):
        scorer = copy.copy(evaluator)
        scorer.bn_batches = batches
        accuracy = [scorer.evaluate(params, space=space, dataset=dataset, context=TrialContext(
            trial_id=f"bn{batches}-{i}", seed=0, artifact_dir=work / "bn",
            shared=prepared.shared))["accuracy"] for i, params in enumerate(rows["params"])]
        tau, low, high = bootstrap_tau(accuracy, reference, resamples=args.bootstrap, seed=1)[:3]
        lines.append(f"| {batches} | {statistics.mean(accuracy):.4f} | {tau:.3f} "
                     f"[{low:.3f}, {high:.3f}] |")
        print(lines[-1], flush=True)
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
