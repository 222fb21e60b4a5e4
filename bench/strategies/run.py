"""Benchmark every registered search strategy on a surrogate of the ``image-cnn`` search.

Usage (from the repository root)::

    .venv/bin/python bench/strategies/run.py            # 10 seeds x 100 evaluations
    .venv/bin/python bench/strategies/run.py --quick    # 2 seeds x 30, smoke run
    .venv/bin/python bench/strategies/run.py --strategies random,rl --seeds 5

Each strategy proposes points of the ``image-cnn`` space (``ask_valid``, so the space's
constraint applies; the dimensions the surrogate does not model are pinned, see
``surrogate.bench_space``), a surrogate (``surrogate.py``: exact artifact sizes, measured
ONNX Runtime latencies, modelled accuracy) scores them, and the strategy is told. Every
strategy runs sequentially (one ask, one tell) for every seed, and again with 4 asks in
flight that are told in a seeded random order (parallel trials finishing out of order).

Scores, on the noise-free objectives of the evaluated points (so that a lucky noise draw
does not count as a find):

* hypervolume with a fixed reference point (accuracy 0, size and latency 1.1 x their
  largest value anywhere in the space), reported as a fraction of the hypervolume of the
  space's true front;
* IGD+ against the true front (exact: the surrogate's whole grid is enumerated), in a
  normalised space: accuracy, log10(size_bytes) and log10(latency_ms), each scaled to
  [0, 1] over the true front. Lower is better;
* one-sided Mann-Whitney U p-values against random over seeds (hypervolume greater,
  IGD+ less).

Timing is the strategy's own time per ask (including ``ask_valid``'s re-asks) plus tell,
without the surrogate: the median over the last 10 % of a 100-trial run (all seeds) and
of one 1000-trial run (seed 0). A 1000-trial run is abandoned after ``--timing-budget-s``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu
from surrogate import OBJECTIVES, Surrogate

from nascompress.pareto import hypervolume
from nascompress.strategies import FINISHED, STRATEGIES, Outcome, ask_valid

HERE = Path(__file__).resolve().parent
IN_FLIGHT = 4


def fixed_reference() -> dict[str, float]:
    worst = Surrogate().worst()
    return {"accuracy": 0.0, "size_bytes": 1.1 * worst["size_bytes"],
            "latency_ms": 1.1 * worst["latency_ms"]}


def _minimised(values: dict[str, float]) -> list[float]:
    return [o.as_minimised(values[o.name]) for o in OBJECTIVES]


def front_hv(points: list[dict[str, float]], reference: dict[str, float]) -> float:
    return hypervolume([_minimised(p) for p in points], _minimised(reference))


class IGDPlus:
    """IGD+ (Ishibuchi et al. 2015) against a fixed front, in a normalised space."""

    def __init__(self, front: list[dict[str, float]]) -> None:
        raw = np.array([self._transform(p) for p in front])
        self.low, self.high = raw.min(axis=0), raw.max(axis=0)
        self.front = self._scale(raw)

    @staticmethod
    def _transform(p: dict[str, float]) -> list[float]:
        return [-p["accuracy"], math.log10(p["size_bytes"]), math.log10(p["latency_ms"])]

    def _scale(self, raw: np.ndarray) -> np.ndarray:
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return (raw - self.low) / span

    def __call__(self, points: list[dict[str, float]]) -> float:
        found = self._scale(np.array([self._transform(p) for p in points]))
        # d+(z, a) = || max(a - z, 0) ||: only the ways in which a is worse than z count.
        gaps = np.maximum(found[None, :, :] - self.front[:, None, :], 0.0)
        return float(np.sqrt((gaps**2).sum(axis=2)).min(axis=1).mean())


def run_one(
    name: str,
    seed: int,
    evals: int,
    *,
    in_flight: int = 1,
    budget_s: float | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One search: returns the true objectives found and the strategy's step times."""
    surrogate = Surrogate(noise_seed=seed)
    space = surrogate.space
    strategy = STRATEGIES.resolve(name)(**(options or {}))
    strategy.setup(space, OBJECTIVES, seed=seed)
    order = random.Random(10_000 + seed)  # which in-flight trial finishes first
    found: list[dict[str, float]] = []
    step_ms: list[float] = []
    pending: list[tuple[str, dict[str, Any], float]] = []
    asked = 0
    finished = False
    started = time.perf_counter()
    while len(found) < evals:
        if budget_s is not None and time.perf_counter() - started > budget_s:
            break
        while not finished and asked < evals and len(pending) < in_flight:
            trial_id = f"t{asked}"
            t0 = time.perf_counter()
            params = ask_valid(strategy, space, trial_id)
            ask_ms = (time.perf_counter() - t0) * 1e3
            if params is None or params == FINISHED:
                finished = True
                break
            asked += 1
            pending.append((trial_id, params, ask_ms))
        if not pending:
            break
        trial_id, params, ask_ms = pending.pop(order.randrange(len(pending)))
        outcome = Outcome("COMPLETE", surrogate.evaluate(params))
        t0 = time.perf_counter()
        strategy.tell(trial_id, outcome)
        step_ms.append(ask_ms + (time.perf_counter() - t0) * 1e3)
        found.append(surrogate.true_objectives(params))
    return {"found": found, "step_ms": step_ms, "finished_early": len(found) < evals}


def _tail_median(times: list[float]) -> float:
    tail = times[-max(1, len(times) // 10):]
    return statistics.median(tail)


def _iqr(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q1), float(q3)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def discover(requested: list[str] | None) -> tuple[list[str], list[str]]:
    """Strategies to run and notes on those skipped."""
    # Built-ins register on import; import every module of the package so that strategies
    # not yet re-exported from its __init__ are found too.
    import pkgutil
    from importlib import import_module

    import nascompress.strategies as strategies_pkg

    for module in pkgutil.iter_modules(strategies_pkg.__path__):
        if not module.name.startswith("_"):
            import_module(f"nascompress.strategies.{module.name}")
    available = sorted(STRATEGIES.available())
    names = requested or available
    notes = []
    space = Surrogate().space
    continuous = [k for k, d in space.dimensions().items() if d.grid() is None]
    run = []
    for name in names:
        if name not in available:
            notes.append(f"{name}: not registered here (available: {', '.join(available)})")
        elif name == "grid" and continuous:
            notes.append(f"grid: skipped, the space has continuous dimensions {continuous}")
        else:
            run.append(name)
    if "random" not in run:
        run.insert(0, "random")
    return run, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--strategies", default="", help="comma-separated names; default all")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 30 evaluations")
    parser.add_argument("--timing-evals", type=int, default=1000,
                        help="length of the timing run (0 to skip)")
    parser.add_argument("--timing-budget-s", type=float, default=300.0,
                        help="abandon a timing run after this long")
    parser.add_argument("--no-parallel", action="store_true",
                        help=f"skip the runs with {IN_FLIGHT} asks in flight")
    parser.add_argument("--output", type=Path, default=None,
                        help="default: results.md here (results-quick.md with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.evals, args.timing_evals = 2, 30, 0
    if args.output is None:
        args.output = HERE / ("results-quick.md" if args.quick else "results.md")
    requested = [s.strip() for s in args.strategies.split(",") if s.strip()] or None
    names, notes = discover(requested)

    print("computing the true front over the whole grid ...", flush=True)
    true_front = Surrogate().true_front()
    reference = fixed_reference()
    hv_true = front_hv(true_front, reference)
    igd = IGDPlus(true_front)

    variants = [(name, 1) for name in names]
    if not args.no_parallel:
        variants += [(name, IN_FLIGHT) for name in names]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for name, in_flight in variants:
        hvs, igds, times = [], [], []
        started = time.perf_counter()
        for seed in range(args.seeds):
            run = run_one(name, seed, args.evals, in_flight=in_flight)
            hvs.append(front_hv(run["found"], reference) / hv_true)
            igds.append(igd(run["found"]))
            times.extend(run["step_ms"][-max(1, len(run["step_ms"]) // 10):])
        results[(name, in_flight)] = {"hv": hvs, "igd": igds, "ms": statistics.median(times)}
        print(f"{name:>12} x{in_flight}: HV/HV* {np.median(hvs):.5f}  IGD+ {np.median(igds):.4f}  "
              f"({time.perf_counter() - started:.1f} s)", flush=True)

    long_ms: dict[str, str] = {}
    if args.timing_evals:
        for name in names:
            started = time.perf_counter()
            run = run_one(name, 0, args.timing_evals, budget_s=args.timing_budget_s)
            elapsed = time.perf_counter() - started
            if run["finished_early"]:
                long_ms[name] = (f"skipped: > {args.timing_budget_s:.0f} s "
                                 f"({len(run['step_ms'])} trials done)")
            else:
                long_ms[name] = f"{_tail_median(run['step_ms']):.2f}"
            print(f"{name:>12} {args.timing_evals} trials: {long_ms[name]} "
                  f"({elapsed:.1f} s)", flush=True)

    table = render(results, long_ms, args, notes, hv_true, reference, len(true_front))
    print()
    print(table)
    args.output.write_text(table + "\n")
    raw = {f"{name} x{in_flight}": res for (name, in_flight), res in results.items()}
    raw_path = args.output.with_suffix(".json")
    raw_path.write_text(json.dumps({"seeds": args.seeds, "evals": args.evals,
                                    "reference": reference, "hv_true_front": hv_true,
                                    "runs": raw, "ms_per_step_long": long_ms}, indent=1) + "\n")
    print(f"\nwritten to {args.output} and {raw_path} (per-seed scores)")
    return 0


def render(results, long_ms, args, notes, hv_true, reference, front_size) -> str:
    base = results[("random", 1)]
    lines = [
        f"# Strategy benchmark: image-cnn surrogate, {args.seeds} seeds x {args.evals} "
        "evaluations",
        "",
        f"Command: `python bench/strategies/run.py --seeds {args.seeds} --evals {args.evals}`"
        + (" (--quick)" if args.quick else ""),
        "",
        "HV/HV*: hypervolume of the points found (noise-free objectives) as a fraction of "
        f"the true front's ({hv_true:.6g}); reference accuracy 0, size_bytes "
        f"{reference['size_bytes']:.0f}, latency_ms {reference['latency_ms']:.4f}. "
        f"IGD+ against the true front ({front_size} points; accuracy, log10 size, log10 "
        "latency scaled to [0, 1]). Median [IQR] over seeds; p: one-sided Mann-Whitney U "
        "against random, sequential. ms: strategy time per ask+tell (median over the last "
        f"10 % of the trials). x{IN_FLIGHT}: {IN_FLIGHT} asks in flight, told in random "
        "order.",
        "",
        f"| strategy | in flight | HV/HV* median [IQR] | p (HV > random) | IGD+ median [IQR] "
        f"| p (IGD+ < random) | ms/step @{args.evals} "
        f"| ms/step @{args.timing_evals or '(not run)'} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, in_flight), res in results.items():
        hv, hv1, hv3 = _iqr(res["hv"])
        ig, ig1, ig3 = _iqr(res["igd"])
        if name == "random" and in_flight == 1:
            p_hv = p_igd = None
        else:
            p_hv = mannwhitneyu(res["hv"], base["hv"], alternative="greater").pvalue
            p_igd = mannwhitneyu(res["igd"], base["igd"], alternative="less").pvalue
        long = long_ms.get(name, "-") if in_flight == 1 else "-"
        lines.append(
            f"| {name} | {in_flight} | {hv:.5f} [{hv1:.5f}, {hv3:.5f}] | {_fmt_p(p_hv)} "
            f"| {ig:.4f} [{ig1:.4f}, {ig3:.4f}] | {_fmt_p(p_igd)} | {res['ms']:.2f} "
            f"| {long} |"
        )
    passed, missed = [], []
    for (name, in_flight), res in results.items():
        if in_flight != 1 or name == "random":
            continue
        p_hv = mannwhitneyu(res["hv"], base["hv"], alternative="greater").pvalue
        (passed if p_hv < 0.10 else missed).append(f"{name} (p={_fmt_p(p_hv)})")
    lines += [
        "",
        "Beat random on HV with p < 0.10 (sequential): "
        f"{', '.join(passed) or 'none'}. Did not: {', '.join(missed) or 'none'}.",
    ]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
