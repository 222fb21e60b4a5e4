"""Rank fidelity against a less noisy reference: the mean of several stand-alone runs.

``run.py`` compares inherited accuracy with one stand-alone training per subnet, and
``ceiling.py`` trains the same subnets again with other seeds. One run is a noisy
reference (a training seed, a 750-image validation split): on mnist5k two stand-alone
runs rank the 20 subnets against each other at a tau of only 0.2-0.5. This script pools
every stand-alone run there is and reports, with bootstrap 95 % intervals over the
subnets:

* tau of the inherited (and fine-tuned) accuracy against the mean of all runs, and
  within bit-widths when the subnets have several;
* the like-for-like comparison: with ``2k`` runs, every split into two halves of ``k``;
  the tau between the two halves' means (how well ``k`` stand-alone runs rank the
  subnets, judged by ``k`` others) beside the tau of the inherited accuracy against a
  half's mean (the same judge). Averaged over the splits.

It trains nothing: the inputs are ``run.py --rows-out`` and ``ceiling.py --save`` files
of the same subnets (``ceiling.py`` checks that when it runs).

    python bench/supernet/reference.py --rows bench/supernet/rank_fidelity_joint_5ep.json \\
        --runs bench/supernet/ceiling_joint_seed1.json bench/supernet/ceiling_joint_seed2.json \\
        bench/supernet/ceiling_joint_seed3.json --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import bootstrap_tau, emit, read_rows  # noqa: E402 - run.py beside this file


def tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def mean_of(runs: list[list[float]], members) -> list[float]:
    """Per subnet, the mean accuracy over the runs numbered ``members``."""
    return [statistics.mean(runs[m][i] for m in members) for i in range(len(runs[0]))]


def standalone_runs(rows: dict[str, list], paths: list[str]) -> list[list[float]]:
    """Per stand-alone run, the accuracy of every subnet: ``run.py``'s own (``rows``, as
    :func:`read_rows` gives them) first, then each ``ceiling.py --save`` file's."""
    count = len(rows["inherited"])
    runs = [rows["standalone"]]
    for path in paths:
        saved = json.loads(Path(path).read_text())
        missing = [i for i in range(count) if str(i) not in saved]
        if missing:
            raise SystemExit(f"{path} lacks subnets {missing}: let ceiling.py finish first")
        runs.append([saved[str(i)] for i in range(count)])
    return runs


def split_halves(count: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of runs ``0..count-1`` (``count`` even) into two halves, each split
    once: the half holding run 0 comes first."""
    return [(first, tuple(i for i in range(count) if i not in first))
            for first in itertools.combinations(range(count), count // 2) if 0 in first]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help="run.py's per-subnet figures (JSON)")
    parser.add_argument("--runs", nargs="+", required=True,
                        help="ceiling.py --save files: more stand-alone runs, other seeds")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1, help="the bootstrap's seed")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    rows = read_rows(args.rows)
    count = len(rows["inherited"])
    runs = standalone_runs(rows, args.runs)
    inherited, tuned, bits = rows["inherited"], rows["finetuned"], rows["bits"]
    boot = {"resamples": args.bootstrap, "seed": args.seed}
    everything = mean_of(runs, range(len(runs)))

    def cell(a, b, groups=None) -> str:
        value, low, high = bootstrap_tau(a, b, **boot, groups=groups)[:3]
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"

    lines = [
        f"### Rank fidelity against the mean of {len(runs)} stand-alone runs, "
        f"{count} subnets (the rank-fidelity run's)",
        "",
        f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/reference.py "
        f"{' '.join(sys.argv[1:])}`. Run 0 is `run.py`'s stand-alone training, the others "
        "`ceiling.py`'s (one seed each).",
        "",
        "| Kendall tau (bootstrap 95 % interval over subnets) | value |",
        "|---|---|",
        f"| inherited vs the mean of all {len(runs)} runs | {cell(inherited, everything)} |",
    ]
    if tuned:
        lines.append(f"| fine-tuned (finalist recipe) vs the mean of all {len(runs)} runs | "
                     f"{cell(tuned, everything)} |")
    if len(set(bits)) > 1:
        lines.append(f"| within bit-widths: inherited vs the mean of all {len(runs)} runs | "
                     f"{cell(inherited, everything, bits)} |")
    lines.append("| inherited vs each single run | " + ", ".join(
        f"{tau(inherited, run):.3f}" for run in runs) + " |")
    k = len(runs) // 2  # an odd last run is left out of the splits
    halves = split_halves(2 * k)
    between, proxy = [], []
    for first, second in halves:
        a, b = mean_of(runs, first), mean_of(runs, second)
        between.append(tau(a, b))
        proxy.extend(tau(inherited, half) for half in (a, b))
    lines += [
        f"| mean of {k} run(s) vs the mean of {k} other(s), averaged over "
        f"{len(halves)} splits (the ceiling for a {k}-run judge) | "
        f"{statistics.mean(between):.3f} (range {min(between):.3f}-"
        f"{max(between):.3f}) |",
        f"| inherited vs the mean of {k} run(s), same splits | "
        f"{statistics.mean(proxy):.3f} (range {min(proxy):.3f}-{max(proxy):.3f}) |",
    ]
    spread = [statistics.stdev(run[i] for run in runs) for i in range(count)]
    lines += [
        f"| per-subnet std of the stand-alone accuracy over the runs, median | "
        f"{statistics.median(spread):.4f} |",
        f"| stand-alone mean accuracy, min-max over subnets | {min(everything):.4f}-"
        f"{max(everything):.4f} |",
        "",
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
