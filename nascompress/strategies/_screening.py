"""Screening proposals with a model of the results seen: pick the most promising of several.

A population-based strategy draws its children blind: each costs a trial whether or not
the results so far say it is likely dominated. :func:`most_promising` fits cheap models
(extremely randomized trees, one per objective) on every result the strategy has seen
and returns the candidate whose predicted objectives lie furthest beyond (or least far
behind) the feasible front found so far. The candidates still come from the strategy's
own operators (``evolution``'s mutation of tournament winners, ``nsga2``'s crossover
and mutation), so the search keeps their locality and randomness; the model only ranks
them. This is the "predictor-guided mutation" of BANANAS (White et al., 2021) and
NPENAS, for several objectives.

Everything is in rank space: each objective is replaced by its rank among the results,
scaled to [0, 1], so objectives of different units and orders of magnitude (bytes,
milliseconds, accuracy) weigh alike, and no transform needs to be guessed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from nascompress.objectives import Objective
from nascompress.pareto import Constraint, nondominated_ranks
from nascompress.spaces import Categorical, Dimension, Float, Int
from nascompress.strategies._base import constraint_violations

#: Trees in each objective's model: enough for a stable ranking of a handful of
#: candidates; fitting 32 trees on a few hundred results takes a few tens of milliseconds.
_TREES = 32

#: Results the model learns from, the most recent ones: bounds the cost per ask in long
#: searches (the recent results are the ones near where the population now searches).
MODEL_RESULTS = 500


T = TypeVar("T")


def distinct_unasked(
    draw: Callable[[], tuple[str, T]], asked: Container[str], wanted: int, tries: int
) -> tuple[list[tuple[str, T]], tuple[str, T]]:
    """The candidates to screen: up to ``wanted`` draws, distinct and never asked.

    Args:
        draw: returns one candidate as ``(fingerprint, candidate)``.
        asked: fingerprints of every earlier proposal.
        wanted: how many distinct never-asked candidates to collect.
        tries: the most draws made; fewer candidates are returned when they run out.

    Returns:
        The ``(fingerprint, candidate)`` pairs found, in draw order, and the last draw
        (what a strategy proposes when every draw repeated an earlier ask).
    """
    found: dict[str, T] = {}
    for _ in range(tries):
        last = draw()
        fingerprint, candidate = last
        if fingerprint not in asked:
            found.setdefault(fingerprint, candidate)
            if len(found) == wanted:
                break
    return list(found.items()), last


def most_promising(
    candidates: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    dimensions: Mapping[str, Dimension],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    seed: int,
) -> int:
    """The index of the candidate the model of ``results`` predicts to be best.

    Args:
        candidates: parameter dicts, all distinct and never evaluated.
        results: what was seen, each ``{"params": ..., "objectives": {name: value}}``
            (finite values of every objective); only the last :data:`MODEL_RESULTS`
            are used.
        dimensions: the search space's dimensions, for the encoding.
        objectives: the objectives, for their directions.
        constraints: a candidate predicted to violate one ranks behind every candidate
            predicted feasible, and among such, by its predicted total violation.
        seed: the model's random state.

    Returns:
        The index in ``candidates``; ``0`` when there are fewer than two candidates,
        too few results (under 4) or no dimension the encoding understands.
    """
    results = list(results)[-MODEL_RESULTS:]
    if len(candidates) < 2 or len(results) < 4:
        return 0
    encode = _encoder(dimensions)
    features = np.array([encode(r["params"]) for r in results], dtype=float)
    if features.shape[1] == 0:  # only plug-in dimension types: nothing to learn from
        return 0
    raw = np.array([[r["objectives"][o.name] for o in objectives] for r in results],
                   dtype=float)
    minimised = np.array([[o.as_minimised(v) for o, v in zip(objectives, row, strict=True)]
                          for row in raw])
    ranks = _rank_scaled(minimised)
    encoded = np.array([encode(c) for c in candidates], dtype=float)
    predicted_raw, predicted_ranks = predict_per_objective(features, raw, ranks, encoded, seed)

    feasible = ranks[[
        sum(constraint_violations(_named(objectives, row), constraints)) == 0.0
        for row in raw
    ]]
    front = (feasible[[rank == 0 for rank in nondominated_ranks(feasible.tolist())]]
             if len(feasible) else feasible)

    def key(index: int) -> tuple[float, float]:
        violation = sum(constraint_violations(_named(objectives, predicted_raw[index]),
                                              constraints))
        return (violation, _shortfall(predicted_ranks[index], front))

    return min(range(len(candidates)), key=key)


def predict_per_objective(features: np.ndarray, raw: np.ndarray, ranks: np.ndarray,
                          encoded: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each objective's predicted raw value and rank (columns) for the rows of ``encoded``.

    One model per objective. A multi-output tree picks each split for all its outputs at
    once, by their summed variance; one model of every objective, raw values among its
    outputs, split where the bytes varied most and ranked accuracy and latency worse than
    a model of their own does (bench/strategies/screening_models.md). Each model learns
    its objective's rank and its raw value (for the constraints), standardised so that
    the objective's units cannot matter; both outputs order the results alike, so their
    splits serve the same objective.
    """
    from sklearn.ensemble import ExtraTreesRegressor  # a core dependency; imported late

    mean, spread = raw.mean(axis=0), raw.std(axis=0)
    spread[spread == 0] = 1.0
    predicted_raw = np.empty((len(encoded), raw.shape[1]))
    predicted_ranks = np.empty((len(encoded), raw.shape[1]))
    for j in range(raw.shape[1]):
        model = ExtraTreesRegressor(n_estimators=_TREES, random_state=seed)
        model.fit(features, np.column_stack([(raw[:, j] - mean[j]) / spread[j], ranks[:, j]]))
        predicted = model.predict(encoded).reshape(len(encoded), 2)
        predicted_raw[:, j] = predicted[:, 0] * spread[j] + mean[j]
        predicted_ranks[:, j] = predicted[:, 1]
    return predicted_raw, predicted_ranks


def _shortfall(point: np.ndarray, front: np.ndarray) -> float:
    """How far ``point`` is behind ``front``: the additive epsilon indicator.

    The largest amount by which some front point beats ``point`` in every objective
    (minimised): positive when ``point`` is dominated, negative when it lies beyond the
    front (then more negative is further beyond). ``-inf`` for an empty front.
    """
    if len(front) == 0:
        return -math.inf
    return float(np.max(np.min(point[None, :] - front, axis=1)))


def _rank_scaled(values: np.ndarray) -> np.ndarray:
    """Each column replaced by its values' average rank (ties share it), scaled to [0, 1]."""
    from scipy.stats import rankdata  # scipy comes with scikit-learn; imported late

    return (rankdata(values, axis=0) - 1.0) / max(len(values) - 1, 1)


def _named(objectives: Sequence[Objective], row: Sequence[float]) -> dict[str, float]:
    return {o.name: float(v) for o, v in zip(objectives, row, strict=True)}


def _encoder(dimensions: Mapping[str, Dimension]):
    """A function from params to a feature vector.

    Numeric dimensions (Int, Float, Categorical of numbers) become one feature, scaled to
    [0, 1] (in log space for log dimensions; by choice index for Categoricals); other
    Categoricals one feature per choice. Dimensions of plug-in types, and those with a
    single value, add nothing.
    """
    parts = []
    for key, dim in dimensions.items():
        if isinstance(dim, Categorical):
            choices = list(dim.choices)
            if len(choices) < 2:
                continue
            if all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices):
                ordered = sorted(choices)
                parts.append(_ordinal(key, ordered))
            else:
                parts.append(_one_hot(key, choices))
        elif isinstance(dim, Int | Float) and dim.high > dim.low:
            parts.append(_scaled(key, dim.low, dim.high, dim.log))

    def encode(params: Mapping[str, Any]) -> list[float]:
        return [x for part in parts for x in part(params)]

    return encode


def _ordinal(key: str, ordered: list[Any]):
    last = len(ordered) - 1

    def feature(params: Mapping[str, Any]) -> list[float]:
        value = params[key]
        position = min(range(len(ordered)), key=lambda i: abs(ordered[i] - value))
        return [position / last]

    return feature


def _one_hot(key: str, choices: list[Any]):
    def feature(params: Mapping[str, Any]) -> list[float]:
        value = params[key]
        return [1.0 if (type(c) is type(value) and c == value) else 0.0 for c in choices]

    return feature


def _scaled(key: str, low: float, high: float, log: bool):
    if log:
        low, high = math.log(low), math.log(high)

    def feature(params: Mapping[str, Any]) -> list[float]:
        value = math.log(params[key]) if log else params[key]
        return [(value - low) / (high - low)]

    return feature
