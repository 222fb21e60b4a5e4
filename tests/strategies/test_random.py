"""The random strategy: uniform, seeded, budgeted, resumable."""

from __future__ import annotations

import json

import pytest

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Float, Int, SearchSpace
from nascompress.strategies import FINISHED, Outcome, RandomStrategy

OBJECTIVES = (Objective("f", "min"), Objective("g", "max"))


class ToySpace(SearchSpace):
    name = "toy"

    def default_dimensions(self):
        return {
            "arch/depth": Int(1, 4),
            "prune/ratio": Float(0.0, 0.5, step=0.1),
            "quant/bits": Categorical([4, 8, 32]),
        }

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


def _make(seed: int = 0, **options) -> RandomStrategy:
    strategy = RandomStrategy(**options)
    strategy.setup(ToySpace(), OBJECTIVES, seed=seed)
    return strategy


def test_proposals_are_in_the_space_and_seeded():
    space = ToySpace()
    a, b, c = _make(seed=1), _make(seed=1), _make(seed=2)
    run_a = [a.ask(f"t{i}") for i in range(20)]
    run_b = [b.ask(f"t{i}") for i in range(20)]
    run_c = [c.ask(f"t{i}") for i in range(20)]
    assert run_a == run_b and run_a != run_c
    assert all(space.check(p) is None for p in run_a + run_c)
    # 20 draws over 4 depths: every depth shows up, so the sampling is not stuck.
    assert {p["arch/depth"] for p in run_a} == {1, 2, 3, 4}


def test_max_trials_finishes_and_invalid_proposals_do_not_count():
    strategy = _make(max_trials=2)
    strategy.ask("a")
    strategy.tell("a", Outcome("INVALID", error="constraint"))
    strategy.ask("a")  # re-asked after INVALID, as ask_valid does
    strategy.ask("b")
    assert strategy.ask("c") == FINISHED
    strategy.tell("a", Outcome("FAILED", error="boom"))
    assert strategy.ask("d") == FINISHED


def test_outstanding_id_cannot_be_asked_again_and_repeated_tells_are_ignored():
    strategy = _make(max_trials=3)
    strategy.ask("a")
    with pytest.raises(ValueError, match="trial_id 'a' was asked and not told yet"):
        strategy.ask("a")
    strategy.tell("a", Outcome("COMPLETE", {"f": 1.0, "g": 1.0}))
    strategy.tell("a", Outcome("INVALID", error="late"))  # ignored: 'a' is not outstanding
    strategy.tell("never-asked", Outcome("INVALID", error="x"))
    assert strategy.state_dict()["n_counted"] == 1


def test_options_are_validated_in_setup_not_constructor():
    strategy = RandomStrategy(max_trials=0)  # stored, not checked yet
    with pytest.raises(ValueError, match="strategy.max_trials must be an integer >= 1 or None, "
                                         "but got 0"):
        strategy.setup(ToySpace(), OBJECTIVES, seed=0)
    with pytest.raises(RuntimeError, match="setup"):
        RandomStrategy().ask("t")


def test_state_dict_round_trip_continues_identically():
    original = _make(seed=7, max_trials=30)
    for i in range(5):
        original.ask(f"t{i}")
        original.tell(f"t{i}", Outcome("COMPLETE", {"f": 0.0, "g": 0.0}))
    original.ask("pending")
    state = json.loads(json.dumps(original.state_dict()))
    restored = _make(seed=7, max_trials=30)
    restored.load_state_dict(state)
    assert [original.ask(f"n{i}") for i in range(10)] == [restored.ask(f"n{i}") for i in range(10)]
    with pytest.raises(ValueError, match="was asked and not told"):
        restored.ask("pending")
    with pytest.raises(ValueError, match="RandomStrategy.state_dict"):
        _make().load_state_dict({"strategy": "bayesian", "version": 1})
