"""How the optuna strategies' and ``rl``'s proposals came about: how many repeats they replaced.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/strategies/count_repeats.py \\
        --benchmarks digits-7d-3x --budgets 100,300 --strategies bayesian,nsga2,rl --seeds 5

Runs searches as ``run.py`` does (same benchmarks, seeds and budget) and sorts every
proposal of an optuna strategy (``bayesian``, ``bayesian-gp``, ``nsga2``) by where it
came from: the sampler's first proposal (``first``), a re-ask after the sampler
repeated itself (``reask``), a never-asked neighbour of the sampler's repeat
(``neighbour``), a uniform never-asked draw (``uniform``) or the repeat itself
(``repeat``). For ``rl``: proposals that are a neighbour of a converged policy's repeat,
and repeats proposed. Counts by wrapping the strategies' methods, so the search itself
is unchanged; methods a version of the code does not have are counted as 0. Every ask
counts, including ``ask_valid``'s re-asks of proposals the space rejects (so on the
surrogate there are more asks than trials). Prints the mean over seeds per category
and writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import OBJECTIVES, load_benchmarks, make_strategy  # noqa: E402

from nascompress.strategies import FINISHED, Outcome, ask_valid, setup_strategy  # noqa: E402
from nascompress.strategies._base import params_fingerprint  # noqa: E402
from nascompress.strategies._optuna import OptunaStrategy  # noqa: E402


def _instrument_optuna(strategy: OptunaStrategy, counts: Counter) -> None:
    calls = {"sampler": 0, "neighbour": 0, "uniform": 0}

    def counted(method_name: str, key: str, *, needs_result: bool) -> None:
        method = getattr(strategy, method_name, None)
        if method is None:
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if not needs_result or result is not None:
                calls[key] += 1
            return result

        setattr(strategy, method_name, wrapper)

    counted("_ask_sampler", "sampler", needs_result=False)
    counted("_unseen_neighbour", "neighbour", needs_result=True)
    counted("_unseen_draw", "uniform", needs_result=True)
    redraw = strategy._redraw

    def classify(study: Any, trial: Any, params: dict[str, Any]) -> Any:
        before = dict(calls)
        out = redraw(study, trial, params)
        if calls["neighbour"] > before["neighbour"]:
            counts["neighbour"] += 1
        elif calls["uniform"] > before["uniform"]:
            counts["uniform"] += 1
        elif params_fingerprint(out[1]) in strategy._asked_keys:
            counts["repeat"] += 1
        elif calls["sampler"] > before["sampler"]:
            counts["reask"] += 1
        else:
            counts["first"] += 1
        return out

    strategy._redraw = classify


def _instrument_rl(strategy: Any, counts: Counter) -> None:
    method = getattr(strategy, "_unseen_neighbour", None)
    if method is None:
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        if result is not None:
            counts["neighbour"] += 1
        return result

    strategy._unseen_neighbour = wrapper


def count(benchmark: Any, name: str, seed: int, budget: int) -> Counter:
    evaluate, _ = benchmark.runner(seed)
    strategy = make_strategy(name)
    setup_strategy(strategy, benchmark.space, OBJECTIVES, seed=seed, budget=budget)
    counts: Counter = Counter()
    if isinstance(strategy, OptunaStrategy):
        _instrument_optuna(strategy, counts)
    else:
        _instrument_rl(strategy, counts)
    seen: set[str] = set()
    for number in range(budget):
        trial_id = f"t{number}"
        params = ask_valid(strategy, benchmark.space, trial_id)
        if params is None or params == FINISHED:
            break
        fingerprint = params_fingerprint(params)
        counts["proposed repeat"] += fingerprint in seen
        seen.add(fingerprint)
        values = evaluate(params)
        outcome = Outcome("COMPLETE", values) if values else Outcome("FAILED", error="invalid")
        strategy.tell(trial_id, outcome)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="100")
    parser.add_argument("--benchmarks", default="")
    parser.add_argument("--strategies", default="bayesian")
    args = parser.parse_args(argv)
    benchmarks, notes = load_benchmarks(
        [s.strip() for s in args.benchmarks.split(",") if s.strip()] or None)
    for note in notes:
        print(note)
    keys = ("first", "reask", "neighbour", "uniform", "repeat", "proposed repeat")
    print("| benchmark | budget | strategy | seeds | " + " | ".join(keys) + " |")
    print("|---|---|---|---|" + "---|" * len(keys))
    for benchmark in benchmarks:
        for budget in (int(b) for b in args.budgets.split(",") if b):
            if benchmark.size is not None and budget > benchmark.size // 2:
                continue
            for name in (s.strip() for s in args.strategies.split(",") if s.strip()):
                runs = [count(benchmark, name, seed, budget) for seed in range(args.seeds)]
                means = [statistics.mean(run[k] for run in runs) for k in keys]
                print(f"| {benchmark.name} | {budget} | {name} | {args.seeds} | "
                      + " | ".join(f"{m:.1f}" for m in means) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
