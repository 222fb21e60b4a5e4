"""Did a change to a strategy move its hypervolume? The same searches, two checkouts.

``run.py`` compares strategies within one checkout on seeds 0..N-1. To check a change
against the code before it on *fresh* seeds (so a finding is not re-measured on the
seeds that suggested it), run one strategy on one benchmark with any checkout's
``run.py`` (its strategies, benchmarks and scorer) and save the per-seed HV/HV*::

    git worktree add /tmp/before <commit>
    python bench/strategies/compare_versions.py run --root . --strategy bayesian \\
        --benchmark surrogate --budget 100 --seeds 20-60 --out /tmp/after.json
    python bench/strategies/compare_versions.py run --root /tmp/before ... --out /tmp/before.json
    python bench/strategies/compare_versions.py compare /tmp/before.json /tmp/after.json

``compare`` prints both medians and IQRs and the two-sided Mann-Whitney U p-value.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def run(root: Path, strategy: str, benchmark: str, budget: int, seeds: range) -> dict:
    sys.path[:0] = [str(root), str(root / "bench" / "strategies"), str(root / "bench" / "tabular")]
    import run as bench  # that checkout's run.py

    found, notes = bench.load_benchmarks([benchmark])
    if not found:
        raise SystemExit(f"benchmark {benchmark!r} not loaded: {notes}")
    scorer = bench.Scorer(found[0].front)
    hvs = [scorer.hv(scorer.scaled(bench.run_one(found[0], strategy, seed, budget)["found"]))
           for seed in seeds]
    return {"root": str(root), "strategy": strategy, "benchmark": benchmark, "budget": budget,
            "seeds": [seeds.start, seeds.stop], "hv": hvs}


def compare(before: dict, after: dict) -> str:
    from scipy.stats import mannwhitneyu

    def summary(result: dict) -> str:
        q1, median, q3 = statistics.quantiles(result["hv"], n=4)
        return f"{median:.3f} [{q1:.3f}, {q3:.3f}] ({result['root']})"

    p = mannwhitneyu(before["hv"], after["hv"], alternative="two-sided").pvalue
    return (f"{after['strategy']} on {after['benchmark']} at {after['budget']}, seeds "
            f"{after['seeds'][0]}-{after['seeds'][1] - 1}: before {summary(before)}, after "
            f"{summary(after)}; two-sided p {p:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run")
    one.add_argument("--root", type=Path, required=True, help="the checkout to run")
    one.add_argument("--strategy", required=True)
    one.add_argument("--benchmark", required=True)
    one.add_argument("--budget", type=int, required=True)
    one.add_argument("--seeds", default="20-60", help="first-stop (stop excluded)")
    one.add_argument("--out", type=Path, required=True)
    two = commands.add_parser("compare")
    two.add_argument("before", type=Path)
    two.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        first, stop = (int(x) for x in args.seeds.split("-"))
        result = run(args.root.resolve(), args.strategy, args.benchmark, args.budget,
                     range(first, stop))
        args.out.write_text(json.dumps(result))
        print(f"median HV/HV* {statistics.median(result['hv']):.4f} over "
              f"{len(result['hv'])} seeds")
    else:
        print(compare(json.loads(args.before.read_text()), json.loads(args.after.read_text())))


if __name__ == "__main__":
    main()
