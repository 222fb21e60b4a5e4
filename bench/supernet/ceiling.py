"""How well can any proxy rank these subnets? Stand-alone training against itself.

``run.py`` compares inherited accuracy with one stand-alone training per subnet. That
reference is itself noisy (one training run, a 750-image validation split), which caps
the Kendall tau any proxy can reach. This script trains the same subnets stand-alone
again with another seed (same recipe, the ``compress-train`` evaluator exactly as
``run.py`` uses it; the subnets are drawn exactly as ``run.py`` draws them) and reports:

* tau between the two stand-alone runs (the ceiling, seed against seed);
* tau of the inherited accuracies (from ``run.py``'s per-subnet file) against the new
  run and against the mean of both runs.

Each with a bootstrap 95 % interval over the subnets; with ``--joint`` also the tau
over pairs of the same bit-width. Trainings run in ``--workers`` processes of one torch
thread each (timings are not the point here). It can run beside ``run.py``: the new
accuracies are saved to ``--save`` as they come, and ``--rows`` is read only at the end
(``--save`` of a finished run skips the training).

    python bench/supernet/ceiling.py --rows bench/supernet/rank_fidelity_5ep.json \\
        --epochs 5 --seed 1 --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402 - run.py beside this file
    bench_space,
    bootstrap_tau,
    draw_subnets,
    emit,
    read_rows,
    standalone_evaluator,
)


def train_one(job):
    index, params, epochs, seed, dataset_name, joint = job
    import torch

    from nascompress.data import DATASETS
    from nascompress.evaluators import TrialContext

    torch.set_num_threads(1)
    dataset = DATASETS.resolve(dataset_name, field="dataset")()
    space = bench_space(joint=joint)
    evaluator = standalone_evaluator(epochs, joint=joint)
    work = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    context = TrialContext(trial_id=f"c{index}", seed=seed, artifact_dir=work, shared={})
    clock = time.perf_counter()
    result = evaluator.evaluate(params, space=space, dataset=dataset, context=context)
    return index, result["accuracy"], time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help="run.py's per-subnet figures (JSON)")
    parser.add_argument("--subnets", type=int, default=20, help="run.py's --subnets")
    parser.add_argument("--joint", action="store_true", help="run.py's --joint")
    parser.add_argument("--save", default=None,
                        help="this run's accuracies (JSON), written as they come")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1, help="the new stand-alone seed")
    parser.add_argument("--draw-seed", type=int, default=0, help="run.py's --seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    drawn = draw_subnets(bench_space(joint=args.joint), args.subnets, args.draw_seed)
    saved = Path(args.save) if args.save else None
    again = ({int(k): v for k, v in json.loads(saved.read_text()).items()}
             if saved and saved.exists() else {})
    jobs = [(i, params, args.epochs, args.seed, args.dataset, args.joint)
            for i, params in enumerate(drawn) if i not in again]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for index, accuracy, seconds in pool.map(train_one, jobs):
            again[index] = accuracy
            print(f"subnet {index}: stand-alone seed {args.seed} {accuracy:.4f} "
                  f"{seconds:.0f} s", flush=True)
            if saved:
                saved.write_text(json.dumps(again, indent=1))
    rows = read_rows(args.rows)
    if len(rows["params"]) != args.subnets:
        raise SystemExit(f"--rows has {len(rows['params'])} subnets, expected --subnets "
                         f"{args.subnets}")
    if any(saved not in (None, params)
           for saved, params in zip(rows["params"], drawn, strict=True)):
        raise SystemExit("--rows holds other subnets than these draws: check --draw-seed, "
                         "--joint and --subnets against run.py's")
    first = rows["standalone"]
    second = [again[i] for i in range(len(first))]
    both = [(x + y) / 2 for x, y in zip(first, second, strict=True)]
    inherited, tuned = rows["inherited"], rows["finetuned"]
    bits = [params.get("quant/bits", 32) for params in drawn]
    boot = {"resamples": args.bootstrap, "seed": args.draw_seed + 1}
    lines = [
        f"### Ceiling: stand-alone against stand-alone, {len(first)} subnets "
        f"(the rank-fidelity run's), {args.epochs} epochs, seeds {args.draw_seed} and "
        f"{args.seed}",
        "",
        f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/ceiling.py "
        f"{' '.join(sys.argv[1:])}`",
        "",
        "| Kendall tau (bootstrap 95 % interval) | value |",
        "|---|---|",
        "| stand-alone seed {} vs seed {} (the ceiling) | {:.3f} [{:.3f}, {:.3f}] |".format(
            args.draw_seed, args.seed, *bootstrap_tau(first, second, **boot)[:3]),
        "| inherited vs stand-alone seed {} | {:.3f} [{:.3f}, {:.3f}] |".format(
            args.seed, *bootstrap_tau(inherited, second, **boot)[:3]),
        "| inherited vs the mean of both stand-alone runs | {:.3f} [{:.3f}, {:.3f}] |".format(
            *bootstrap_tau(inherited, both, **boot)[:3]),
        *(["| fine-tuned (finalist recipe) vs the mean of both runs | "
           "{:.3f} [{:.3f}, {:.3f}] |".format(*bootstrap_tau(tuned, both, **boot)[:3])]
          if tuned else []),
        *([] if not args.joint else [
            "| within bit-widths: stand-alone seed {} vs seed {} | {:.3f} [{:.3f}, {:.3f}] |"
            .format(args.draw_seed, args.seed,
                    *bootstrap_tau(first, second, **boot, groups=bits)[:3]),
            "| within bit-widths: inherited vs the mean of both runs | "
            "{:.3f} [{:.3f}, {:.3f}] |".format(
                *bootstrap_tau(inherited, both, **boot, groups=bits)[:3])]),
        f"| seed-to-seed accuracy difference, median absolute | "
        f"{statistics.median(abs(x - y) for x, y in zip(first, second, strict=True)):.4f} |",
        "",
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
