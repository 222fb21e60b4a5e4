"""How well can any proxy rank these subnets? Stand-alone training against itself.

``run.py`` compares inherited accuracy with one stand-alone training per subnet. That
reference is itself noisy (one training run, a 750-image validation split), which caps
the Kendall tau any proxy can reach. This script trains the same subnets stand-alone
again with another seed (same recipe, the ``compress-train`` evaluator exactly as
``run.py`` uses it; the subnets are drawn exactly as ``run.py`` draws them) and reports:

* tau between the two stand-alone runs (the ceiling, seed against seed);
* tau of the inherited accuracies (from ``run.py``'s per-subnet file) against the new
  run and against the mean of both runs.

Each with a bootstrap 95 % interval over the subnets. Trainings run in ``--workers``
processes of one torch thread each (timings are not the point here).

    python bench/supernet/ceiling.py --rows bench/supernet/rank_fidelity_5ep.json \\
        --epochs 5 --seed 1 --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PLAIN, draw_subnets  # noqa: E402 - run.py beside this file


def subnets(count: int, draw_seed: int):
    """The subnets ``run.py`` evaluates (same space, same draws)."""
    from nascompress.spaces import MobileNetSpace

    return draw_subnets(MobileNetSpace(dimensions=PLAIN), count, draw_seed)


def train_one(job):
    index, params, epochs, seed, dataset_name = job
    import torch

    from nascompress.data import DATASETS
    from nascompress.evaluators import CompressTrainEvaluator, TrialContext
    from nascompress.spaces import MobileNetSpace

    torch.set_num_threads(1)
    dataset = DATASETS.resolve(dataset_name, field="dataset")()
    space = MobileNetSpace(dimensions=PLAIN)
    latency = {"min_repeats": 5, "max_repeats": 20, "warmup": 2, "time_cap_s": 0.5}
    evaluator = CompressTrainEvaluator(epochs=epochs, finetune_epochs=0, batch_size=64,
                                       lr=3e-3, threads=1, latency=latency)
    evaluator.configure_latency(setup=evaluator.latency, runtime="onnxruntime")
    evaluator.validate()
    work = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    context = TrialContext(trial_id=f"c{index}", seed=seed, artifact_dir=work, shared={})
    clock = time.perf_counter()
    result = evaluator.evaluate(params, space=space, dataset=dataset, context=context)
    return index, result["accuracy"], time.perf_counter() - clock


def tau_with_interval(a, b, *, resamples: int, seed: int):
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    rng = random.Random(seed)
    taus = []
    for _ in range(resamples):
        pick = [rng.randrange(len(a)) for _ in a]
        value = kendalltau([a[i] for i in pick], [b[i] for i in pick]).statistic
        if value == value:
            taus.append(value)
    taus.sort()
    return tau, taus[int(0.025 * len(taus))], taus[int(0.975 * len(taus)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help="run.py's per-subnet figures (JSON)")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1, help="the new stand-alone seed")
    parser.add_argument("--draw-seed", type=int, default=0, help="run.py's --seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    rows = json.loads(Path(args.rows).read_text())["rows"]
    drawn = subnets(len(rows), args.draw_seed)
    jobs = [(i, params, args.epochs, args.seed, args.dataset) for i, params in enumerate(drawn)]
    again = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for index, accuracy, seconds in pool.map(train_one, jobs):
            again[index] = accuracy
            print(f"subnet {index}: stand-alone seed {args.seed} {accuracy:.4f} "
                  f"(seed {args.draw_seed}: {rows[index]['standalone_seed0']:.4f}) "
                  f"{seconds:.0f} s", flush=True)
    first = [r["standalone_seed0"] for r in rows]
    second = [again[i] for i in range(len(rows))]
    both = [(x + y) / 2 for x, y in zip(first, second, strict=True)]
    inherited = [r["inherited"] for r in rows]
    boot = {"resamples": args.bootstrap, "seed": args.draw_seed + 1}
    lines = [
        f"### Ceiling: stand-alone against stand-alone, {len(rows)} subnets "
        f"(the rank-fidelity run's), {args.epochs} epochs, seeds {args.draw_seed} and "
        f"{args.seed}",
        "",
        f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/ceiling.py "
        f"{' '.join(sys.argv[1:])}`",
        "",
        "| Kendall tau (bootstrap 95 % interval) | value |",
        "|---|---|",
        "| stand-alone seed {} vs seed {} (the ceiling) | {:.3f} [{:.3f}, {:.3f}] |".format(
            args.draw_seed, args.seed, *tau_with_interval(first, second, **boot)),
        "| inherited vs stand-alone seed {} | {:.3f} [{:.3f}, {:.3f}] |".format(
            args.seed, *tau_with_interval(inherited, second, **boot)),
        "| inherited vs the mean of both stand-alone runs | {:.3f} [{:.3f}, {:.3f}] |".format(
            *tau_with_interval(inherited, both, **boot)),
        f"| seed-to-seed accuracy difference, median absolute | "
        f"{statistics.median(abs(x - y) for x, y in zip(first, second, strict=True)):.4f} |",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
