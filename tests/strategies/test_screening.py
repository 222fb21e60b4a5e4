"""Screening proposals with a model of the results: the most promising candidate wins."""

from __future__ import annotations

import random

from nascompress.objectives import Objective
from nascompress.pareto import Constraint
from nascompress.spaces import Categorical, Float, Int
from nascompress.strategies._screening import _encoder, _rank_scaled, _shortfall, most_promising

DIMENSIONS = {
    "arch/kind": Categorical(["a", "b", "c"]),
    "arch/width": Categorical([8, 16, 32, 64]),
    "arch/depth": Int(1, 8),
    "prune/ratio": Float(0.01, 1.0, log=True),
}
OBJECTIVES = (Objective("accuracy", "max"), Objective("size", "min"))


def _problem(params):
    """Accuracy grows with width and kind "b"; size grows with width and depth."""
    width = params["arch/width"]
    accuracy = 0.5 + 0.1 * [8, 16, 32, 64].index(width) + (0.1 if params["arch/kind"] == "b"
                                                            else 0.0)
    return {"accuracy": accuracy, "size": width * params["arch/depth"]}


def _results(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        params = {key: dim.sample(rng) for key, dim in DIMENSIONS.items()}
        out.append({"params": params, "objectives": _problem(params)})
    return out


def test_a_candidate_beyond_the_front_beats_dominated_ones():
    results = _results(60)
    best = {"arch/kind": "b", "arch/width": 64, "arch/depth": 1, "prune/ratio": 0.5}
    worse = [{"arch/kind": "a", "arch/width": w, "arch/depth": 8, "prune/ratio": 0.5}
             for w in (8, 16, 32)]
    for position in range(4):
        candidates = list(worse)
        candidates.insert(position, best)
        assert most_promising(candidates, results, DIMENSIONS, OBJECTIVES, (),
                              seed=1) == position


def test_predicted_violations_rank_behind_predicted_feasible_candidates():
    results = _results(60)
    big = {"arch/kind": "b", "arch/width": 64, "arch/depth": 2, "prune/ratio": 0.5}
    small = {"arch/kind": "a", "arch/width": 8, "arch/depth": 8, "prune/ratio": 0.5}
    assert most_promising([small, big], results, DIMENSIONS, OBJECTIVES, (), seed=1) == 1
    # size <= 70: "big" (predicted 128) violates it, "small" (64) does not
    limit = (Constraint("size", "<=", 70.0),)
    assert most_promising([small, big], results, DIMENSIONS, OBJECTIVES, limit, seed=1) == 0


def test_the_pick_does_not_depend_on_the_units_of_an_objective():
    # Size in bytes or in megabytes must not change which child is tried. A single model
    # of every objective's raw value did: its splits followed whichever objective had
    # the larger numbers (3 of these 20 picks changed with the unit).
    dimensions = {"arch/width": Categorical([8, 16, 32, 64, 128, 256]),
                  "quant/bits": Categorical([4, 8]), "other/a": Int(0, 9),
                  "other/b": Int(0, 9)}

    def results(seed, unit):
        rng = random.Random(seed)
        out = []
        for _ in range(40):
            params = {key: dim.sample(rng) for key, dim in dimensions.items()}
            accuracy = 0.6 + 0.3 * (params["quant/bits"] == 8) + rng.uniform(-0.02, 0.02)
            size = unit * params["arch/width"] ** 2 * rng.uniform(0.7, 1.3)
            out.append({"params": params, "objectives": {"accuracy": accuracy, "size": size}})
        return out

    for seed in range(20):
        rng = random.Random(seed + 50)
        candidates = [{key: dim.sample(rng) for key, dim in dimensions.items()}
                      for _ in range(6)]
        picks = {most_promising(candidates, results(seed, unit), dimensions, OBJECTIVES, (),
                                seed=seed) for unit in (1e3, 1e-6)}
        assert len(picks) == 1, f"seed {seed}: the pick changed with the unit of size"


def test_too_little_to_learn_from_keeps_the_first_candidate():
    candidates = [r["params"] for r in _results(3, seed=5)]
    assert most_promising(candidates, _results(3), DIMENSIONS, OBJECTIVES, (), seed=0) == 0
    assert most_promising(candidates[:1], _results(50), DIMENSIONS, OBJECTIVES, (),
                          seed=0) == 0

    class PlugIn:  # a dimension type the encoding does not know
        pass

    plug_ins = {key: PlugIn() for key in DIMENSIONS}
    assert most_promising(candidates, _results(50), plug_ins, OBJECTIVES, (), seed=0) == 0


def test_encoding_scales_numbers_and_one_hots_names():
    encode = _encoder({**DIMENSIONS, "quant/fixed": Categorical([4])})  # one value: no feature
    features = encode({"arch/kind": "c", "arch/width": 16, "arch/depth": 8,
                       "prune/ratio": 0.1, "quant/fixed": 4})
    assert features == [0.0, 0.0, 1.0, 1 / 3, 1.0, 0.5]


def test_ranks_share_ties_and_span_zero_to_one():
    import numpy as np

    ranks = _rank_scaled(np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 5.0], [2.0, 0.0]]))
    assert ranks[:, 0].tolist() == [1.0, 0.0, 0.5, 0.5]
    assert ranks[:, 1].tolist() == [0.5, 0.5, 1.0, 0.0]


def test_shortfall_is_the_additive_epsilon_behind_the_front():
    import numpy as np

    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert _shortfall(np.array([0.5, 1.5]), front) == 0.5  # (0, 1) beats it by 0.5 in both
    assert _shortfall(np.array([0.5, 0.5]), front) == -0.5  # beyond the front
    assert _shortfall(np.array([0.5, 0.5]), np.empty((0, 2))) == float("-inf")


def test_distinct_unasked_keeps_draw_order_skips_repeats_and_returns_the_last_draw():
    from nascompress.strategies._screening import distinct_unasked

    draws = iter(["a", "b", "a", "c", "d"])
    found, last = distinct_unasked(lambda: (key := next(draws), key.upper()),
                                   asked={"b"}, wanted=2, tries=5)
    assert found == [("a", "A"), ("c", "C")] and last == ("c", "C")  # stops at 2
    draws = iter(["b", "b"])
    found, last = distinct_unasked(lambda: (key := next(draws), key), asked={"b"},
                                   wanted=2, tries=2)
    assert found == [] and last == ("b", "b")  # every draw repeated an earlier ask
