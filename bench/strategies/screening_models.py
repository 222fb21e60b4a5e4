"""How well the screening model ranks unseen points: one model of every objective, or one each.

Usage (from the repository root)::

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/strategies/screening_models.py

``most_promising`` (``nascompress/strategies/_screening.py``) screens the children of
``evolution`` and ``nsga2`` and the policy samples of ``rl`` with extremely randomized
trees fitted on the results seen so far. Until 2026-12-07 it fitted one multi-output
model on every objective's raw value and rank; a multi-output tree chooses each split by
the variance summed over its outputs, so the raw size in bytes (variance ~1e9) chose
every split. Now each objective has its own model, of its rank and its standardised raw
value. This script measures what that changes in the model alone: on each measured
table, ``--train`` points drawn at random (as after a random start) train both models;
the Kendall tau between each objective's predicted rank and its true value on 200 other
random points of the table (all the others where it has fewer) is reported, mean and
[min, max] over ``--repeats`` draws, with the milliseconds each model takes to fit and
predict (median).
Writes ``screening_models.md`` next to this file (or ``--output``).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import ExtraTreesRegressor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tabular"))

from build import TABLES  # noqa: E402
from surrogate import OBJECTIVES  # noqa: E402  (the benchmarks' three, as run.py scores)
from table import TabularBenchmark  # noqa: E402

from nascompress.strategies._screening import (  # noqa: E402
    _TREES,
    _encoder,
    _rank_scaled,
    predict_per_objective,
)

TEST_POINTS = 200


def predicted_ranks(mode: str, features, raw, test_features, seed: int) -> np.ndarray:
    """Each objective's predicted rank of the test points, by one joint model (the code
    before) or one model per objective (the code now, ``predict_per_objective``)."""
    minimised = np.array([[o.as_minimised(v) for o, v in zip(OBJECTIVES, row, strict=True)]
                          for row in raw])
    ranks = _rank_scaled(minimised)
    if mode == "per objective":
        return predict_per_objective(features, raw, ranks, test_features, seed)[1]
    model = ExtraTreesRegressor(n_estimators=_TREES, random_state=seed)
    model.fit(features, np.column_stack([raw, ranks]))
    return model.predict(test_features)[:, len(OBJECTIVES):]


def measure(name: str, train: int, repeats: int) -> dict[str, list[list[float]]]:
    table = TabularBenchmark(name)
    encode = _encoder(dict(table.space.dimensions()))
    taus: dict[str, list[list[float]]] = {m: [[] for _ in OBJECTIVES]
                                          for m in ("joint", "per objective")}
    seconds: dict[str, list[float]] = {m: [] for m in taus}
    for repeat in range(repeats):
        rng = random.Random(repeat)
        # The smallest table has 180 points: score fewer there.
        points = rng.sample(table.points, min(len(table.points), train + TEST_POINTS))
        seen, unseen = points[:train], points[train:]
        features = np.array([encode(p["params"]) for p in seen], dtype=float)
        test_features = np.array([encode(p["params"]) for p in unseen], dtype=float)
        raw = np.array([[p[o.name] for o in OBJECTIVES] for p in seen], dtype=float)
        truths = [[o.as_minimised(p[o.name]) for p in unseen] for o in OBJECTIVES]
        for mode in taus:
            start = time.perf_counter()
            predicted = predicted_ranks(mode, features, raw, test_features, seed=repeat)
            seconds[mode].append(time.perf_counter() - start)
            for j, truth in enumerate(truths):
                taus[mode][j].append(float(kendalltau(predicted[:, j], truth)[0]))
    return taus, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="20,40,80",
                        help="training points, comma-separated")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--output", type=Path, default=HERE / "screening_models.md")
    args = parser.parse_args()
    sizes = [int(x) for x in args.train.split(",")]

    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} [{min(values):.2f}, {max(values):.2f}]"

    lines = ["# The screening model: one model of every objective against one each", "",
             f"Command: `python {' '.join(sys.argv)}`; {datetime.date.today()}; "
             f"{platform.machine()}, python {platform.python_version()}; {args.repeats} "
             f"random draws of the training points per cell, {TEST_POINTS} other points "
             "scored (all the others where a table has fewer). Kendall tau between "
             "predicted rank and true value, mean [min, max] over the draws (higher is "
             "better). ms: median milliseconds to fit the model(s) and predict, on this "
             "machine as loaded when run.", "",
             "| table | trained on | accuracy: joint | accuracy: own | size: joint "
             "| size: own | latency: joint | latency: own | ms joint | ms own |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in TABLES:
        for train in sizes:
            taus, seconds = measure(name, train, args.repeats)
            row = [name, str(train)]
            for j in range(len(OBJECTIVES)):
                row += [cell(taus["joint"][j]), cell(taus["per objective"][j])]
            row += [f"{1e3 * statistics.median(seconds[m]):.0f}" for m in seconds]
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
