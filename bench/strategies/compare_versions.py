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

An option of one checkout's strategy (``run.py --strategies bayesian,bayesian+x=y``) is
compared with the strategy's default, per benchmark and budget, from ``run.py``'s JSON
outputs (same seeds), and optionally with a peer's per-seed HV from other outputs::

    python bench/strategies/compare_versions.py variant --base bayesian \
        --variant bayesian+x=y /tmp/run-*.json --peer optuna-gp \
        --peer-results bench/strategies/results-gp20.json
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


def runs_of(paths: list[Path]) -> dict[str, dict]:
    """Every ``benchmark|budget|strategy`` entry of ``run.py`` JSON outputs (a single
    run's, or a file holding several runs keyed by benchmark)."""
    runs: dict[str, dict] = {}
    for path in paths:
        data = json.loads(path.read_text())
        for part in [data] if "runs" in data else data.values():
            runs.update(part["runs"])
    return runs


def fmt(p: float) -> str:
    """A p-value for a table: three decimals, or one significant digit below 0.001."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def variant_table(runs: dict[str, dict], base: str, variant: str,
                  peer: str | None = None, peer_runs: dict[str, dict] | None = None) -> str:
    """Markdown: per benchmark and budget, the median HV/HV* of ``base`` and ``variant``
    and the two-sided Mann-Whitney U p of a difference; with ``peer``, its median and the
    one-sided p that each is worse than it."""
    from scipy.stats import mannwhitneyu

    head = f"| benchmark | budget | seeds | {base} | {variant} | difference | p (two-sided) |"
    rule = "|---|---|---|---|---|---|---|"
    if peer:
        head += f" {peer} | p {base} worse | p {variant} worse |"
        rule += "---|---|---|"
    lines = [head, rule]
    for key in runs:
        benchmark, budget, strategy = key.split("|")
        other = f"{benchmark}|{budget}|{variant}"
        if strategy != base or other not in runs:
            continue
        a, b = runs[key]["hv"], runs[other]["hv"]
        p = mannwhitneyu(b, a, alternative="two-sided").pvalue
        row = (f"| {benchmark} | {budget} | {len(a)} | {statistics.median(a):.4f} | "
               f"{statistics.median(b):.4f} | {statistics.median(b) - statistics.median(a):+.4f} | "
               f"{fmt(p)} |")
        yardstick = (peer_runs or {}).get(f"{benchmark}|{budget}|{peer}") if peer else None
        if peer and yardstick:
            c = yardstick["hv"]
            worse = [mannwhitneyu(x, c, alternative="less").pvalue for x in (a, b)]
            row += (f" {statistics.median(c):.4f} ({len(c)} seeds) | {fmt(worse[0])} | "
                    f"{fmt(worse[1])} |")
        elif peer:
            row += " - | - | - |"
        lines.append(row)
    return "\n".join(lines)


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
    three = commands.add_parser("variant")
    three.add_argument("results", type=Path, nargs="+", help="run.py --output's .json files")
    three.add_argument("--base", required=True)
    three.add_argument("--variant", required=True)
    three.add_argument("--peer", default=None)
    three.add_argument("--peer-results", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    if args.command == "variant":
        print(variant_table(runs_of(args.results), args.base, args.variant, args.peer,
                            runs_of(args.peer_results) if args.peer_results else None))
        return
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
