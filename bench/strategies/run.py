"""Benchmark every registered search strategy, random search and optuna's own samplers.

Usage (from the repository root)::

    .venv/bin/python bench/strategies/run.py                      # everything, 20 seeds
                                  # (5 for a GP, ~1 s per step: --slow-seeds 20 for all)
    .venv/bin/python bench/strategies/run.py --quick              # 3 seeds x budget 30
    .venv/bin/python bench/strategies/run.py --benchmarks digits-cnn-3x --budgets 50,100
    .venv/bin/python bench/strategies/run.py --strategies bayesian,bayesian+multivariate=true

Benchmarks (``--benchmarks``): every measured table of ``bench/tabular`` that is complete
(real accuracy, size and latency of every point of a reduced ``image-cnn`` space, or of
a reduced ``mobilenet`` space with accuracy inherited from one supernet) and
``surrogate`` (``surrogate.py``: the whole default space, exact sizes, measured
latencies, modelled accuracy). A strategy proposes points of the benchmark's space
(``ask_valid``, so the space's constraint applies), is told the point's objectives, and
its search is scored on the (noise-free, for the surrogate) objectives of the points it
was told. By default every run is sequential: one ask, one tell. ``--concurrency N``
keeps N trials in flight, as a search with ``max_concurrent: N`` does (the default
search runs 2): the strategy is asked until N are out, then told whichever finishes
first, then asked again. Each trial's duration is drawn from a log-normal (sigma 0.5:
its 5th and 95th percentiles 5x apart, about as far as the slowest and fastest of the
default mobilenet trials timed by ``bench/supernet/cost.py``, 105-469 s) by an RNG of
its own, seeded by the search's seed and independent of the point proposed (real large
models take longer; not modelled), so every strategy of a seed sees the same
durations; the scores count evaluations in the order they finish. The strategy is set
up with the budget (``setup_strategy``), as the runner does, so ``bayesian`` runs the GP
at budgets up to 100 and TPE above (``bayesian+sampler="tpe"`` is TPE at every budget).

Peers, beside ``random``: optuna's ``TPESampler``, ``NSGAIISampler`` and ``GPSampler``
with their defaults (only the seed set), asked through the same adapter as our optuna
strategies but without its repeat check, so they are exactly what a user would get from
optuna.

Scores:

* **HV/HV***: hypervolume of the points found as a fraction of the true front's, in a
  normalised space: accuracy, log10(size_bytes) and log10(latency_ms), each scaled to
  [0, 1] between the best and the worst value on the true front, with the reference point
  at 1.1 in each (just beyond the front's nadir), so every part of the front counts;
* **IGD+** against the true front in the same normalised space (lower is better);
* **p**: one-sided Mann-Whitney U over seeds against random and against the best peer
  (the peer with the highest median HV at that budget on that benchmark, among the peers
  run with every seed: the GP's few seeds would make a weak yardstick);
* **evals to random's HV**: per seed, the first evaluation at which the strategy's HV
  reaches the median final HV of random at that budget; the median over seeds (``>B``:
  not reached within the budget in at least half of the seeds);
* **ms/step**: the strategy's own time per ask (with ``ask_valid``'s re-asks) plus tell,
  median over all steps of all seeds (shared 2-core machine: the order of magnitude only).
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import json
import math
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tabular"))

from surrogate import OBJECTIVES, Surrogate  # noqa: E402
from table import TabularBenchmark  # noqa: E402

from nascompress.pareto import hypervolume  # noqa: E402
from nascompress.strategies import (  # noqa: E402
    FINISHED,
    STRATEGIES,
    Outcome,
    ask_valid,
    setup_strategy,
)
from nascompress.strategies._optuna import OptunaStrategy  # noqa: E402
from nascompress.strategies.bayesian import GP_MAX_BUDGET, BayesianStrategy  # noqa: E402

TABLES = ("digits-cnn-3x", "digits-9d-1x", "digits-7d-3x", "mnist5k-cnn-1x", "mnist5k-cnn-6d",
          "mnist5k-mbv3-ws")
PEERS = ("optuna-tpe", "optuna-nsga2", "optuna-gp")
#: Strategies and peers too slow per step to run at every budget and seed on two cores
#: (a GP: ~1 s per step); ``bayesian`` is one of them at budgets where it runs the GP.
SLOW = ("bayesian-gp", "optuna-gp")


def is_slow(name: str, budget: int) -> bool:
    """Whether ``name`` runs a GP at ``budget`` (``bayesian``'s ``sampler="auto"`` does
    up to ``GP_MAX_BUDGET`` trials; every benchmark has the same three objectives)."""
    if name in SLOW:
        return True
    if name in PEERS:
        return False
    strategy = make_strategy(name)
    return (isinstance(strategy, BayesianStrategy)
            and strategy.sampler_for(budget, len(OBJECTIVES)) == "gp")


class OptunaPeer(OptunaStrategy):
    """One of optuna's samplers with its defaults, through our adapter, repeats allowed."""

    _redraw_repeats = False

    def __init__(self, sampler: str) -> None:
        self.sampler = sampler
        self.name = f"optuna-{sampler}"
        super().__init__()

    def _create_sampler(self, seed: int) -> Any:
        import optuna

        cls = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
               "gp": optuna.samplers.GPSampler}[self.sampler]
        return cls(seed=seed)

    def _sampling(self):
        from nascompress.strategies._optuna import single_torch_thread

        return single_torch_thread()


def make_strategy(name: str) -> Any:
    """A registered strategy or a peer by name; ``bayesian+multivariate=true`` (options
    after ``+``, values as JSON) is a strategy with options other than its defaults."""
    if name in PEERS:
        return OptunaPeer(name.removeprefix("optuna-"))
    base, *options = name.split("+")
    kwargs = {}
    for option in options:
        key, _, value = option.partition("=")
        kwargs[key] = json.loads(value)
    return STRATEGIES.resolve(base)(**kwargs)


# ---------------------------------------------------------------------- benchmarks


class SurrogateBenchmark:
    """``surrogate.py`` behind the benchmark interface (noisy evaluations, true scores)."""

    name = "surrogate"

    def __init__(self) -> None:
        self._surrogate = Surrogate()
        self.space = self._surrogate.space
        self.front = self._surrogate.true_front()
        self.size = None  # no finite table: every budget is small against the space

    def runner(self, seed: int) -> tuple[Any, Any]:
        surrogate = Surrogate(noise_seed=seed)
        return surrogate.evaluate, surrogate.true_objectives

    def describe(self) -> str:
        return ("surrogate of the default image-cnn space on digits (13 dimensions, 7 free; "
                f"252,000 valid grid points); {len(self.front)} front points; exact size, "
                "measured latency, **modelled** accuracy")


class TableBenchmark:
    def __init__(self, name: str) -> None:
        self._table = TabularBenchmark(name)
        self.name = name
        self.space = self._table.space
        self.front = self._table.front
        self.size = len(self._table)

    def runner(self, seed: int) -> tuple[Any, Any]:
        return self._table.evaluate, self._table.true_objectives

    def describe(self) -> str:
        return self._table.describe()


def load_benchmarks(names: list[str] | None) -> tuple[list[Any], list[str]]:
    notes, found = [], []
    for name in names or [*TABLES, "surrogate"]:
        if name == "surrogate":
            found.append(SurrogateBenchmark())
            continue
        try:
            found.append(TableBenchmark(name))
        except (FileNotFoundError, KeyError) as error:
            notes.append(f"{name}: not run ({error})")
    return found, notes


class Scorer:
    """HV and IGD+ in the normalised space of one benchmark's true front."""

    def __init__(self, front: list[dict[str, float]]) -> None:
        raw = np.array([self._transform(p) for p in front])
        self.low, self.high = raw.min(axis=0), raw.max(axis=0)
        self.front = self._scale(raw)
        self.reference = [1.1, 1.1, 1.1]
        self.hv_true = hypervolume(self.front.tolist(), self.reference)

    @staticmethod
    def _transform(p: dict[str, float]) -> list[float]:
        return [-p["accuracy"], math.log10(p["size_bytes"]), math.log10(p["latency_ms"])]

    def _scale(self, raw: np.ndarray) -> np.ndarray:
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return (raw - self.low) / span

    def scaled(self, points: list[dict[str, float]]) -> np.ndarray:
        return self._scale(np.array([self._transform(p) for p in points]))

    def hv(self, scaled: np.ndarray) -> float:
        return hypervolume(scaled.tolist(), self.reference) / self.hv_true

    def igd_plus(self, scaled: np.ndarray) -> float:
        # d+(z, a) = || max(a - z, 0) ||: only the ways in which a is worse than z count.
        gaps = np.maximum(scaled[None, :, :] - self.front[:, None, :], 0.0)
        return float(np.sqrt((gaps**2).sum(axis=2)).min(axis=1).mean())

    def hv_curve(self, scaled: np.ndarray) -> list[float]:
        """HV after each evaluation (recomputed only when a point joins the front)."""
        curve, kept, current = [], [], 0.0
        for point in scaled:
            if not any(np.all(k <= point) for k in kept):
                kept = [k for k in kept if not np.all(point <= k)] + [point]
                current = hypervolume([k.tolist() for k in kept], self.reference) / self.hv_true
            curve.append(current)
        return curve


def run_one(benchmark: Any, name: str, seed: int, budget: int,
            concurrency: int = 1, durations_by: str = "random") -> dict[str, Any]:
    """One search: the true objectives of the points told, and the step times.

    ``concurrency`` trials are kept in flight; the one with the earliest simulated finish
    is told first (see the module docstring). With 1 this is ask, tell, ask, ...
    ``durations_by="latency"``: a trial lasts its point's measured latency times
    log-normal noise (sigma 0.25), so larger models finish later.
    """
    evaluate, true_objectives = benchmark.runner(seed)
    space = benchmark.space
    strategy = make_strategy(name)
    setup_strategy(strategy, space, OBJECTIVES, seed=seed, budget=budget)
    durations = random.Random(f"durations-{seed}")
    found: list[dict[str, float]] = []
    step_ms: list[float] = []
    seen: set[str] = set()
    repeats = 0
    # (finish time, trial number, trial id, params, values, ask ms): a heap on finish time.
    in_flight: list[tuple[float, int, str, dict[str, Any], Any, float]] = []
    clock, asked, finished = 0.0, 0, False
    while True:
        while not finished and asked < budget and len(in_flight) < concurrency:
            trial_id = f"t{asked}"
            t0 = time.perf_counter()
            params = ask_valid(strategy, space, trial_id)
            ask_ms = (time.perf_counter() - t0) * 1e3
            if params is None or params == FINISHED:
                finished = True
                break
            key = json.dumps(params, sort_keys=True, default=str)
            repeats += key in seen
            seen.add(key)
            if durations_by == "latency":
                duration = (true_objectives(params)["latency_ms"]
                            * durations.lognormvariate(0.0, 0.25))
            else:
                duration = durations.lognormvariate(0.0, 0.5)
            finish = clock + duration
            heapq.heappush(in_flight, (finish, asked, trial_id, params, evaluate(params),
                                       ask_ms))
            asked += 1
        if not in_flight:
            break
        clock, _, trial_id, params, values, ask_ms = heapq.heappop(in_flight)
        outcome = Outcome("COMPLETE", values) if values else Outcome("FAILED", error="invalid")
        t0 = time.perf_counter()
        strategy.tell(trial_id, outcome)
        step_ms.append(ask_ms + (time.perf_counter() - t0) * 1e3)
        if values:
            found.append(true_objectives(params))
    return {"found": found, "step_ms": step_ms, "repeats": repeats}


# ---------------------------------------------------------------------- statistics


def _iqr(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q1), float(q3)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    text = f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"
    return f"**{text}**" if p < 0.05 else text


def discover(requested: list[str] | None) -> list[str]:
    import pkgutil
    from importlib import import_module

    import nascompress.strategies as strategies_pkg

    for module in pkgutil.iter_modules(strategies_pkg.__path__):
        if not module.name.startswith("_"):
            import_module(f"nascompress.strategies.{module.name}")
    names = requested or [*sorted(STRATEGIES.available()), *PEERS]
    if "random" not in names:
        names.insert(0, "random")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run: first-seed .. first-seed + seeds - 1 (fresh seeds "
                             "to check a choice made on the default 0..19)")
    parser.add_argument("--budgets", default="50,100,300")
    parser.add_argument("--benchmarks", default="", help="comma-separated; default all")
    parser.add_argument("--strategies", default="", help="comma-separated; default all + peers")
    parser.add_argument("--slow-seeds", type=int, default=5,
                        help=f"seeds for {', '.join(SLOW)} and for bayesian where it runs "
                             "the GP (their steps take ~1 s)")
    parser.add_argument("--slow-budgets", default=f"50,{GP_MAX_BUDGET}",
                        help=f"budgets for {', '.join(SLOW)} (bayesian runs the GP up to "
                             f"{GP_MAX_BUDGET})")
    parser.add_argument("--slow-benchmarks", default="",
                        help=f"benchmarks for {', '.join(SLOW)} (comma-separated; default all)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="trials in flight at once (max_concurrent of a search); "
                             "1: sequential")
    parser.add_argument("--durations", choices=("random", "latency"), default="random",
                        help="with --concurrency: trial durations independent of the point "
                             "(random) or proportional to its measured latency")
    parser.add_argument("--max-fraction", type=float, default=0.5,
                        help="skip a budget above this fraction of a finite table")
    parser.add_argument("--quick", action="store_true",
                        help="3 seeds x budget 30, GP strategies too")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, but got {args.concurrency}")
    if args.quick:
        args.seeds, args.budgets, args.slow_seeds, args.slow_budgets = 3, "30", 3, "30"
    if args.output is None:
        args.output = HERE / ("results-quick.md" if args.quick else "results.md")
    budgets = [int(b) for b in args.budgets.split(",") if b]
    slow_budgets = {int(b) for b in args.slow_budgets.split(",") if b}
    slow_benchmarks = {s.strip() for s in args.slow_benchmarks.split(",") if s.strip()}
    names = discover([s.strip() for s in args.strategies.split(",") if s.strip()] or None)
    benchmarks, notes = load_benchmarks(
        [s.strip() for s in args.benchmarks.split(",") if s.strip()] or None)

    raw: dict[str, Any] = {}
    for benchmark in benchmarks:
        scorer = Scorer(benchmark.front)
        for budget in budgets:
            if benchmark.size is not None and budget > args.max_fraction * benchmark.size:
                notes.append(f"{benchmark.name}: budget {budget} not run, more than "
                             f"{args.max_fraction:.0%} of its {benchmark.size} points")
                continue
            for name in names:
                slow = is_slow(name, budget)
                seeds = args.slow_seeds if slow else args.seeds
                if slow and (budget not in slow_budgets or (
                        slow_benchmarks and benchmark.name not in slow_benchmarks)):
                    continue
                if seeds == 0:
                    continue
                started = time.perf_counter()
                hvs, igds, curves, ms, repeats = [], [], [], [], []
                for seed in range(args.first_seed, args.first_seed + seeds):
                    run = run_one(benchmark, name, seed, budget, args.concurrency,
                                  args.durations)
                    scaled = scorer.scaled(run["found"])
                    curve = scorer.hv_curve(scaled)
                    hvs.append(curve[-1])
                    curves.append(curve)
                    igds.append(scorer.igd_plus(scaled))
                    ms.extend(run["step_ms"])
                    repeats.append(run["repeats"])
                raw[f"{benchmark.name}|{budget}|{name}"] = {
                    "hv": hvs, "igd": igds, "curves": curves, "ms": statistics.median(ms),
                    "repeats": repeats}
                print(f"{benchmark.name:>15} B={budget:<4} {name:>13}: HV {np.median(hvs):.4f} "
                      f"IGD+ {np.median(igds):.4f} repeats {np.median(repeats):.0f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    info = {
        "command": "python bench/strategies/run.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python "
                   f"{platform.python_version()}",
        "seeds": args.seeds, "first_seed": args.first_seed, "slow_seeds": args.slow_seeds,
        "concurrency": args.concurrency,
        "durations": args.durations,
        "slow_budgets": ", ".join(map(str, sorted(slow_budgets))) or "none",
        "slow_benchmarks": ", ".join(sorted(slow_benchmarks)) or "all",
    }
    text = render(raw, benchmarks, names, budgets, info, notes)
    args.output.write_text(text + "\n")
    args.output.with_suffix(".json").write_text(json.dumps(
        {"info": info, "runs": {k: {kk: vv for kk, vv in v.items() if kk != "curves"}
                                for k, v in raw.items()}}, indent=0) + "\n")
    print(text)
    return 0


def evals_to_reach(curves: list[list[float]], target: float, budget: int) -> str:
    firsts = []
    for curve in curves:
        hit = next((i + 1 for i, hv in enumerate(curve) if hv >= target - 1e-12), math.inf)
        firsts.append(hit)
    median = statistics.median(firsts)
    return f">{budget}" if math.isinf(median) else f"{median:.0f}"


def render(raw, benchmarks, names, budgets, info, notes) -> str:
    first_seed = info.get("first_seed", 0)  # absent from runs recorded before it existed
    lines = [
        "# Strategy benchmark: measured tables and the surrogate",
        "",
        f"Command: `{info['command'].strip()}`; {info['date']}; {info['machine']}; "
        f"{info['seeds']} seeds ({first_seed}..{first_seed + info['seeds'] - 1}) per strategy, "
        f"{info['slow_seeds']} for {', '.join(SLOW)} and for `bayesian` where it runs the GP "
        f"(budgets {info['slow_budgets']}; "
        f"benchmarks: {info['slow_benchmarks']}).",
        "",
        ("Every search sequential (one trial in flight)." if info.get("concurrency", 1) == 1
         else f"{info['concurrency']} trials in flight in every search ("
              + ("durations proportional to the point's measured latency, with log-normal "
                 "noise" if info.get("durations") == "latency" else
                 "log-normal durations, the same for every strategy of a seed")
              + "; evaluations counted in the order they finish)."),
        "",
        "HV/HV*: hypervolume of the points found over the true front's, with accuracy, "
        "log10 size and log10 latency scaled to [0, 1] over the true front and the "
        "reference at 1.1 in each. IGD+ against the true front, same scaling (lower is "
        "better). Median [IQR] over seeds. p: one-sided Mann-Whitney U, HV greater than "
        "random's / than the best peer's (the optuna sampler with the highest median HV "
        "there among those run with every seed). to rnd: evaluations to reach random's "
        "median final HV (median over seeds). rep: repeated proposals per search "
        "(median). ms: strategy time per ask+tell.",
        "",
        "Benchmarks:",
        "",
        *[f"- `{b.name}`: {b.describe()}" for b in benchmarks],
        "",
    ]
    verdicts = []
    for benchmark in benchmarks:
        for budget in budgets:
            runs = {n: raw[f"{benchmark.name}|{budget}|{n}"] for n in names
                    if f"{benchmark.name}|{budget}|{n}" in raw}
            if "random" not in runs:
                continue
            base = runs["random"]
            target = float(np.median(base["hv"]))
            # The best peer is chosen among the peers run with every seed: one with a few
            # seeds (the GP) would make a weak yardstick for "matches the best peer".
            full = len(base["hv"])
            peers = [p for p in PEERS if p in runs and len(runs[p]["hv"]) == full]
            best_peer = max(peers, key=lambda p: np.median(runs[p]["hv"])) if peers else None
            lines += [
                f"## {benchmark.name}, budget {budget}",
                "",
                f"best peer: {best_peer or '-'}",
                "",
                "| strategy | seeds | HV/HV* median [IQR] | p vs random | p vs best peer "
                "| IGD+ median [IQR] | p (IGD+ < random) | to rnd | rep | ms |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for name, res in runs.items():
                hv, hv1, hv3 = _iqr(res["hv"])
                ig, ig1, ig3 = _iqr(res["igd"])
                p_rnd = p_igd = p_peer = None
                if name != "random":
                    p_rnd = mannwhitneyu(res["hv"], base["hv"], alternative="greater").pvalue
                    p_igd = mannwhitneyu(res["igd"], base["igd"], alternative="less").pvalue
                if best_peer and name != best_peer:
                    p_peer = mannwhitneyu(res["hv"], runs[best_peer]["hv"],
                                          alternative="greater").pvalue
                    p_peer_less = mannwhitneyu(res["hv"], runs[best_peer]["hv"],
                                               alternative="less").pvalue
                else:
                    p_peer_less = None
                reach = evals_to_reach(res["curves"], target, budget)
                lines.append(
                    f"| {name} | {len(res['hv'])} | {hv:.4f} [{hv1:.4f}, {hv3:.4f}] "
                    f"| {_fmt_p(p_rnd)} | {_fmt_p(p_peer)} | {ig:.4f} [{ig1:.4f}, {ig3:.4f}] "
                    f"| {_fmt_p(p_igd)} | {reach} | {np.median(res['repeats']):.0f} "
                    f"| {res['ms']:.1f} |")
                if name not in ("random", "grid", *PEERS):
                    verdicts.append((benchmark.name, budget, name, p_rnd, p_peer_less, reach))
            lines.append("")
    lines += ["## Targets", "",
              "| benchmark | budget | strategy | beats random (p < 0.05) | worse than best "
              "peer (p < 0.05) | evals to random's HV |", "|---|---|---|---|---|---|"]
    for bench, budget, name, p_rnd, p_less, reach in verdicts:
        beats = "yes" if p_rnd is not None and p_rnd < 0.05 else "**no**"
        worse = "-" if p_less is None else ("**yes**" if p_less < 0.05 else "no")
        lines.append(f"| {bench} | {budget} | {name} | {beats} ({_fmt_p(p_rnd)}) | {worse} "
                     f"| {reach} |")
    lines += few_seed_peers(raw)
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines)


def few_seed_peers(raw: dict[str, Any]) -> list[str]:
    """Each strategy against the peers run with fewer seeds (the GP), where they ran.

    The best peer above is chosen among the peers run with every seed; a peer with few
    seeds can still be better, and this says so: one-sided Mann-Whitney U of HV, the
    strategy's (all seeds) below / above the peer's (its few seeds). Needs only the HV
    values, so it can be computed again from ``results.json``.
    """
    lines: list[str] = []
    for key, peer_run in raw.items():
        bench, budget, peer = key.split("|")
        base = raw.get(f"{bench}|{budget}|random")
        if peer not in PEERS or base is None or len(peer_run["hv"]) >= len(base["hv"]):
            continue
        if not lines:
            lines = ["", "## Against the peers run with fewer seeds", "",
                     "| benchmark | budget | peer (seeds) | peer HV median | strategy (seeds) "
                     "| HV median | p (strategy worse) | p (strategy better) |",
                     "|---|---|---|---|---|---|---|---|"]
        for other, run in raw.items():
            b2, budget2, name = other.split("|")
            if (b2, budget2) != (bench, budget) or name in PEERS or name == "grid":
                continue
            worse = mannwhitneyu(run["hv"], peer_run["hv"], alternative="less").pvalue
            better = mannwhitneyu(run["hv"], peer_run["hv"], alternative="greater").pvalue
            lines.append(
                f"| {bench} | {budget} | {peer} ({len(peer_run['hv'])}) "
                f"| {np.median(peer_run['hv']):.4f} | {name} ({len(run['hv'])}) "
                f"| {np.median(run['hv']):.4f} | {_fmt_p(worse)} | {_fmt_p(better)} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
