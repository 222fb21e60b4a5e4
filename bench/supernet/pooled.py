"""Rank fidelity pooled over independent draws: more subnets, each with its own supernet.

Twenty subnets leave Kendall's tau with a bootstrap interval about +-0.18 wide. A
second draw (``run.py --seed 1``: 20 other subnets, a supernet trained with another seed,
stand-alone runs with other seeds, see ``ceiling.py --draw-seed``) is an independent
replicate of the whole measurement. Each draw's subnets are ranked by their own
supernet, so pairs are compared only inside a draw: the pooled figure is tau-a over the
pairs within each draw (pairs of two draws would compare two supernets). The reference
of every subnet is the mean of the same number of stand-alone runs in every draw
(``--runs-each``, default the fewest any draw has: the first ones, ``run.py``'s own
first), so the draws' reference noise is alike. Bootstrap 95 % intervals resample the
subnets of each draw with replacement, draw by draw.

    cd bench/supernet && python pooled.py \\
        --draw rank_fidelity_joint_5ep.json ceiling_joint_seed1.json ceiling_joint_seed2.json \\
        --draw rank_fidelity_joint_5ep_draw1.json ceiling_joint_draw1_seed2.json \\
               ceiling_joint_draw1_seed3.json --out results.md

It trains nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import mean_of, standalone_runs, tau  # noqa: E402 - beside this file
from run import emit, pooled_tau, read_rows  # noqa: E402


def _stratified(draws: list[dict], statistic, *, resamples: int, seed: int):
    """``statistic(picks)`` (one list of subnet indices per draw) on every subnet, and
    its bootstrap 95 % interval with each draw resampled on its own."""
    value = statistic([list(range(len(d["inherited"]))) for d in draws])
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        picks = [[rng.randrange(len(d["inherited"])) for _ in d["inherited"]] for d in draws]
        result = statistic(picks)
        if result == result:
            values.append(result)
    values.sort()
    return value, values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def _within_draws(draws: list[dict], key: str, picks, *, by_bits: bool = False) -> float:
    """tau-a of ``key`` against the reference over the pairs inside each draw (and inside
    each bit-width too, with ``by_bits``)."""
    a, b, groups = [], [], []
    for number, (draw, pick) in enumerate(zip(draws, picks, strict=True)):
        a += [draw[key][i] for i in pick]
        b += [draw["reference"][i] for i in pick]
        groups += [(number, draw["bits"][i] if by_bits else 0) for i in pick]
    return pooled_tau(a, b, groups)


def add_draw_arguments(parser: argparse.ArgumentParser) -> None:
    """The draws, their reference and the bootstrap (``pooled.py`` and ``arms.py``)."""
    parser.add_argument("--draw", nargs="+", action="append", required=True,
                        metavar="FILE", help="run.py --rows-out file, then its ceiling.py "
                                             "--save files (repeat per draw)")
    parser.add_argument("--runs-each", type=int, default=None,
                        help="stand-alone runs averaged per subnet (default: the fewest "
                             "any draw has)")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1, help="the bootstrap's seed")


def load_draws(args: argparse.Namespace) -> tuple[list[dict], int]:
    """Every ``--draw``'s rows with its ``reference`` (the mean of ``each`` stand-alone
    runs per subnet), and ``each``."""
    draws = []
    for files in args.draw:
        rows = read_rows(files[0])
        draws.append({**rows, "files": files,
                      "runs": standalone_runs(rows, files[1:])})
    each = args.runs_each or min(len(d["runs"]) for d in draws)
    if any(len(d["runs"]) < each for d in draws):
        raise SystemExit(f"--runs-each {each}: a draw has fewer stand-alone runs")
    for draw in draws:
        draw["reference"] = mean_of(draw["runs"], range(each))
    return draws, each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_draw_arguments(parser)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    draws, each = load_draws(args)
    boot = {"resamples": args.bootstrap, "seed": args.seed}

    def cell(statistic, among=draws) -> str:
        value, low, high = _stratified(among, statistic, **boot)
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"

    count = sum(len(d["inherited"]) for d in draws)
    lines = [
        f"### Rank fidelity pooled over {len(draws)} draws, {count} subnets, against the "
        f"mean of {each} stand-alone runs each", "",
        f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/pooled.py "
        f"{' '.join(sys.argv[1:])}`.", "",
        "| Kendall tau (bootstrap 95 % interval) | value |", "|---|---|",
    ]
    for number, draw in enumerate(draws):
        def alone(picks, draw=draw):
            return _within_draws([draw], "inherited", picks)

        lines.append(f"| draw {number} (`{Path(draw['files'][0]).name}`, "
                     f"{len(draw['inherited'])} subnets): inherited vs the mean of {each} "
                     f"runs (tau-a) | {cell(alone, [draw])} |")
    lines.append(f"| all draws, pairs within a draw: inherited vs the mean of {each} runs "
                 f"(tau-a) | "
                 f"{cell(lambda picks: _within_draws(draws, 'inherited', picks))} |")
    if all(d["finetuned"] for d in draws):
        lines.append(f"| all draws: fine-tuned (finalist recipe) vs the mean of {each} runs | "
                     f"{cell(lambda picks: _within_draws(draws, 'finetuned', picks))} |")
    lines.append("| all draws, pairs within a draw and a bit-width: inherited | " + cell(
        lambda picks: _within_draws(draws, "inherited", picks, by_bits=True)) + " |")
    for number, draw in enumerate(draws):
        singles = ", ".join(f"{tau(draw['inherited'], run):.3f}" for run in draw["runs"])
        lines.append(f"| draw {number}: inherited vs each single run (tau-b) | {singles} |")
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
