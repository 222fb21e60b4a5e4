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
* an estimate, not a measurement, of how far the reference's own noise pulls tau down:
  the split halves give the reliability of a ``k``-run mean (the correlation between
  two independent ones, from tau through Greiner's relation ``r = sin(pi tau / 2)``,
  which assumes normal scores); Spearman-Brown extends it to the mean of all runs; a
  noise-free proxy would then reach ``2/pi asin(sqrt(reliability))`` against that mean
  (the most any proxy can be expected to score), and the inherited accuracy's tau
  corrected for the reference's noise (Spearman's correction for attenuation) is what
  it would score against a noise-free stand-alone reference.

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
import math
import random
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


def _reliability(between_tau: float, k: int, runs: int) -> float | None:
    """Reliability of the mean of ``runs`` runs, from the tau between two ``k``-run means
    (Greiner's relation, then Spearman-Brown); ``None`` when that tau is not positive."""
    r_k = math.sin(math.pi * between_tau / 2)
    if r_k <= 0:
        return None
    r_1 = r_k / (k - (k - 1) * r_k)
    return runs * r_1 / (1 + (runs - 1) * r_1)


def _noise_estimates(inherited: list[float], runs: list[list[float]], halves,
                     pick) -> tuple[float, float, float] | None:
    """On the subnets ``pick`` (indices, repeats allowed): the reliability of the mean of
    all runs, the tau a noise-free proxy would reach against it, and the inherited
    accuracy's tau corrected for attenuation (``None`` when the halves do not agree)."""
    chosen = [[run[i] for i in pick] for run in runs]
    proxy = [inherited[i] for i in pick]
    k = len(halves[0][0])
    between = statistics.mean(tau(mean_of(chosen, a), mean_of(chosen, b)) for a, b in halves)
    reliability = _reliability(between, k, len(runs)) if between == between else None
    if reliability is None:
        return None
    observed = tau(proxy, mean_of(chosen, range(len(runs))))
    if observed != observed:  # NaN: a resample with no pairs to compare
        return None
    attenuated = math.sin(math.pi * observed / 2)
    corrected = max(-1.0, min(1.0, attenuated / math.sqrt(reliability)))
    return reliability, _tau_of(math.sqrt(reliability)), _tau_of(corrected)


def _tau_of(correlation: float) -> float:
    """Kendall's tau of a correlation under a bivariate normal model (Greiner)."""
    return 2 / math.pi * math.asin(correlation)


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
    estimate = _noise_estimates(inherited, runs, halves, range(count))
    if estimate is not None:
        rng = random.Random(args.seed)
        resampled = [_noise_estimates(inherited, runs, halves,
                                      [rng.randrange(count) for _ in range(count)])
                     for _ in range(args.bootstrap)]
        ceilings = sorted(e[1] for e in resampled if e is not None)
        corrected = sorted(e[2] for e in resampled if e is not None)

        def interval(values: list[float]) -> str:
            return (f"[{values[int(0.025 * len(values))]:.3f}, "
                    f"{values[int(0.975 * len(values)) - 1]:.3f}]")

        lines += [
            f"| estimated: a noise-free proxy against the mean of all {len(runs)} runs "
            f"(reliability of that mean {estimate[0]:.3f}) | {estimate[1]:.3f} "
            f"{interval(ceilings)} |",
            f"| estimated: inherited vs a noise-free stand-alone reference (corrected for "
            f"attenuation) | {estimate[2]:.3f} {interval(corrected)} |",
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
