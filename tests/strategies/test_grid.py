"""The grid strategy: every point once, in order or in a seeded shuffle, then FINISHED."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Float, Int, SearchSpace
from nascompress.strategies import FINISHED, STRATEGIES, GridStrategy, Outcome, ask_valid
from nascompress.testing.toy import TOY_OBJECTIVES, ToySpace

OBJECTIVES = (Objective("f", "min"),)


class Small(SearchSpace):
    name = "small"

    def default_dimensions(self):
        return {
            "arch/a": Categorical(["x", "y"]),
            "arch/b": Int(0, 4, step=2),
            "prune/c": Float(0.0, 0.2, step=0.1),
        }

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


class Continuous(Small):
    def default_dimensions(self):
        return {**super().default_dimensions(), "distill/t": Float(1.0, 100.0, log=True)}


def _make(space=None, seed=0, **options) -> GridStrategy:
    strategy = GridStrategy(**options)
    strategy.setup(space or Small(), OBJECTIVES, seed=seed)
    return strategy


def _drain(strategy: GridStrategy) -> list[dict]:
    points = []
    while (params := strategy.ask(f"t{len(points)}")) != FINISHED:
        strategy.tell(f"t{len(points)}", Outcome("COMPLETE", {"f": 0.0}))
        points.append(params)
    return points


def test_in_order_enumerates_the_product_last_dimension_fastest():
    points = _drain(_make(shuffle=False))
    expected = [
        {"arch/a": a, "arch/b": b, "prune/c": c}
        for a, b, c in itertools.product(["x", "y"], [0, 2, 4], [0.0, 0.1, 0.2])
    ]
    assert points == expected
    assert _make().size == 18


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffle_proposes_every_point_exactly_once(seed):
    points = _drain(_make(seed=seed))
    assert len(points) == 18
    assert sorted(json.dumps(p, sort_keys=True) for p in points) == sorted(
        json.dumps(p, sort_keys=True) for p in _drain(_make(shuffle=False))
    )


def test_shuffle_is_seeded():
    a, b, c = (_drain(_make(seed=s)) for s in (3, 3, 4))
    assert a == b and a != c
    assert a != _drain(_make(shuffle=False))


def test_finished_stays_finished_with_asks_outstanding():
    strategy = _make(shuffle=False)
    for i in range(18):
        assert isinstance(strategy.ask(f"t{i}"), dict)  # none told yet
    assert strategy.ask("extra") == FINISHED
    strategy.tell("t0", Outcome("FAILED", error="boom"))  # a failed point is not retried
    assert strategy.ask("again") == FINISHED


def test_invalid_points_are_skipped_by_ask_valid():
    space = ToySpace(gridded=True)
    strategy = GridStrategy(shuffle=False)
    strategy.setup(space, TOY_OBJECTIVES, seed=0)
    seen = []
    while (params := ask_valid(strategy, space, "t")) != FINISHED:
        seen.append(params)
        strategy.tell("t", Outcome("COMPLETE", {"error": 0.0, "size": 0.0}))
    # 480 points, of which kind "c" with depth 8 (20 ratios) are invalid
    assert len(seen) == 460
    assert all(space.check(p) is None for p in seen)


def test_continuous_float_needs_a_step_or_points_per_dimension():
    with pytest.raises(ValueError, match=r"'distill/t' is continuous .*step.*points_per_dimension"):
        _make(Continuous())
    points = _drain(_make(Continuous(), shuffle=False, points_per_dimension=3))
    assert len(points) == 54
    assert sorted({p["distill/t"] for p in points}) == pytest.approx([1.0, 10.0, 100.0])
    assert {p["distill/t"] for p in points} >= {1.0, 100.0}  # ends exactly


def test_options_are_validated_in_setup():
    strategy = GridStrategy(points_per_dimension=1)  # stored, not checked yet
    with pytest.raises(ValueError, match="points_per_dimension must be an integer >= 2 or None, "
                                         "but got 1"):
        strategy.setup(Small(), OBJECTIVES, seed=0)
    with pytest.raises(TypeError, match="shuffle must be true or false, but got 'no'"):
        GridStrategy(shuffle="no").setup(Small(), OBJECTIVES, seed=0)
    with pytest.raises(RuntimeError, match="setup"):
        GridStrategy().ask("t")
    assert STRATEGIES.resolve("grid") is GridStrategy


def test_huge_grids_are_shuffled_lazily():
    class Huge(Small):
        def default_dimensions(self):
            return {"arch/a": Int(0, 10**6), "arch/b": Int(0, 10**6)}

    strategy = _make(Huge())
    started = time.perf_counter()
    points = [strategy.ask(f"t{i}") for i in range(200)]
    assert time.perf_counter() - started < 1.0  # no list of 10**12 indices is built
    assert len({(p["arch/a"], p["arch/b"]) for p in points}) == 200
    assert strategy.size == (10**6 + 1) ** 2


def test_state_round_trip_continues_identically():
    original = _make(seed=5)
    for i in range(6):
        original.ask(f"t{i}")
        original.tell(f"t{i}", Outcome("COMPLETE", {"f": 0.0}))
    original.ask("live")
    state = json.loads(json.dumps(original.state_dict()))
    restored = _make(seed=5)
    restored.load_state_dict(state)
    assert _drain(restored) == _drain(original)
    outstanding = _make(seed=5)
    outstanding.load_state_dict(state)
    with pytest.raises(ValueError, match="was asked and not told"):
        outstanding.ask("live")
    with pytest.raises(ValueError, match="grid of 18 points"):
        _make(Continuous(), points_per_dimension=2).load_state_dict(state)
    with pytest.raises(ValueError, match="GridStrategy.state_dict"):
        _make().load_state_dict({"strategy": "random", "version": 1})

