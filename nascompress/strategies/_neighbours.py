"""Nearby values and never-asked neighbours: what mutation and repeat replacement share.

:func:`nearby_value` is ``evolution``'s mutation of one value. :func:`unseen_neighbour`
uses it to replace a proposal that repeats an earlier ask by a point next to it that was
never asked: the optuna strategies (``bayesian``, ``nsga2``) when their sampler keeps
repeating itself, ``rl`` when its converged policy does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Container, Mapping
from typing import Any

from nascompress.spaces import Categorical, Dimension, Float, Int
from nascompress.strategies._base import params_fingerprint

#: Standard deviation of a numeric move, as a fraction of the dimension's range (of its
#: log-range for log dimensions): mostly local moves, with the odd long jump.
SIGMA = 0.15

#: Chance that an Int move draws any other value instead of stepping: lets a search
#: leave a basin that steps of a few grid points cannot.
INT_RESAMPLE_PROB = 0.1

#: Points tried per distance (number of dimensions changed) by :func:`unseen_neighbour`.
NEIGHBOUR_TRIES = 20


def has_choice(dimension: Dimension) -> bool:
    """Whether ``dimension`` has more than one value."""
    if isinstance(dimension, Categorical):
        return len(dimension.choices) > 1
    if isinstance(dimension, Int | Float):
        return dimension.high > dimension.low
    return True  # a plug-in dimension type: assume it varies


def nearby_value(dimension: Dimension, value: Any, rng: random.Random) -> Any:
    """A value of ``dimension`` near ``value`` and different from it.

    A Categorical takes another choice; an Int steps by a few grid points (with
    probability :data:`INT_RESAMPLE_PROB` it jumps to any other value); a Float moves by
    a Gaussian step of :data:`SIGMA` of its range, clipped to the range and snapped to
    its step. Log dimensions move in log space. ``dimension`` must have a choice
    (:func:`has_choice`).
    """
    if isinstance(dimension, Categorical):
        others = [c for c in dimension.choices if not (type(c) is type(value) and c == value)]
        return rng.choice(others)
    if isinstance(dimension, Int):
        return _nearby_int(dimension, value, rng)
    if isinstance(dimension, Float):
        return _nearby_float(dimension, value, rng)
    return dimension.sample(rng)  # a plug-in dimension type: no notion of "near"


def unseen_neighbour(
    dimensions: Mapping[str, Dimension],
    params: Mapping[str, Any],
    asked: Container[str],
    rng: random.Random,
    *,
    tries: int = NEIGHBOUR_TRIES,
) -> dict[str, Any] | None:
    """A point near ``params`` whose :func:`params_fingerprint` is not in ``asked``.

    Changes one dimension to a :func:`nearby_value`, then two, and so on up to every
    dimension with a choice, drawing ``tries`` points per distance (dimensions and
    values at random with ``rng``); returns the first never-asked one, or ``None`` when
    every draw was asked before (a neighbourhood asked nearly all over).
    """
    mutable = [key for key, dim in dimensions.items() if has_choice(dim)]
    for distance in range(1, len(mutable) + 1):
        for _ in range(tries):
            candidate = dict(params)
            for key in rng.sample(mutable, distance):
                candidate[key] = nearby_value(dimensions[key], params[key], rng)
            if params_fingerprint(candidate) not in asked:
                return candidate
    return None


def _nearby_int(dimension: Int, value: int, rng: random.Random) -> int:
    low, step = dimension.low, dimension.step
    count = (dimension.high - low) // step + 1
    index = (value - low) // step
    if rng.random() < INT_RESAMPLE_PROB:
        other = rng.randrange(count - 1)
        return low + (other if other < index else other + 1) * step
    if dimension.log:
        # step is 1 here (Int allows log only with step 1)
        spread = SIGMA * (math.log(dimension.high) - math.log(low))
        move = rng.gauss(0.0, spread)
        target = round(math.exp(math.log(value) + move)) - low
        direction = 1 if move >= 0 else -1
    else:
        direction = rng.choice((-1, 1))
        target = index + direction * rng.randint(1, max(1, round(SIGMA * (count - 1))))
        if not 0 <= target < count:
            target = 2 * index - target  # bounce off the end of the range
    target = min(max(target, 0), count - 1)
    if target == index:
        target = index + direction if 0 <= index + direction < count else index - direction
    return low + target * step


def _nearby_float(dimension: Float, value: float, rng: random.Random) -> float:
    low, high = dimension.low, dimension.high
    if dimension.log:
        move = rng.gauss(0.0, SIGMA * (math.log(high) - math.log(low)))
    else:
        move = rng.gauss(0.0, SIGMA * (high - low))
    new = _moved(dimension, value, move)
    if new == value:
        # Clipped back onto the end it started from: move the other way instead.
        move = -move
        new = _moved(dimension, value, move)
    if dimension.step is None:
        return new
    count = round((high - low) / dimension.step) + 1
    index = round((value - low) / dimension.step)
    target = round((new - low) / dimension.step)
    if target == index:
        # The move was smaller than a step: take one step its way, or back off an end.
        direction = 1 if move >= 0 else -1
        target = index + direction if 0 <= index + direction < count else index - direction
    return round(low + target * dimension.step, 12)


def _moved(dimension: Float, value: float, move: float) -> float:
    new = math.exp(math.log(value) + move) if dimension.log else value + move
    return min(max(new, dimension.low), dimension.high)
