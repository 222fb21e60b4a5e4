"""The Bayesian (multi-objective TPE) strategy."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from nascompress.objectives import Objective  # noqa: E402
from nascompress.spaces import Categorical, Float, Int, SearchSpace  # noqa: E402
from nascompress.strategies import BayesianStrategy, Outcome, ask_valid  # noqa: E402

OBJECTIVES = (Objective("f", "min"), Objective("g", "max"))


class ToySpace(SearchSpace):
    """Int, stepped Float, log Float and an ambiguous Categorical (1 == True)."""

    name = "toy"

    def default_dimensions(self):
        return {
            "arch/x": Int(0, 10),
            "prune/y": Float(0.0, 1.0, step=0.05),
            "distill/lr": Float(1e-3, 1.0, log=True),
            "quant/c": Categorical([1, True, "a"]),
        }

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        if params["arch/x"] > 8:
            return "arch/x must be <= 8"
        return None

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


def toy_objectives(params: Mapping[str, Any]) -> dict[str, float]:
    bonus = 2.0 if params["quant/c"] == "a" else 1.0
    return {"f": (params["arch/x"] - 3) ** 2 + params["prune/y"], "g": params["prune/y"] * bonus}


def _make(seed: int = 0, **options) -> BayesianStrategy:
    strategy = BayesianStrategy(**{"n_startup_trials": 4, **options})
    strategy.setup(ToySpace(), OBJECTIVES, seed=seed)
    return strategy


def _run(strategy: BayesianStrategy, ids: list[str]) -> list[dict[str, Any]]:
    space, asked = ToySpace(), []
    for trial_id in ids:
        params = ask_valid(strategy, space, trial_id)
        asked.append(params)
        strategy.tell(trial_id, Outcome("COMPLETE", toy_objectives(params)))
    return asked


def test_proposals_are_typed_values_of_the_space():
    strategy = _make()
    for params in _run(strategy, [f"t{i}" for i in range(15)]):
        assert ToySpace().check(params) is None
        assert type(params["arch/x"]) is int
        assert params["quant/c"] in (1, True, "a")
        # stepped floats come back on the grid, without float noise
        assert params["prune/y"] in ToySpace().dimensions()["prune/y"].grid()


def test_ambiguous_categorical_keeps_the_choice_types():
    strategy = _make()
    asked = _run(strategy, [f"t{i}" for i in range(30)])
    seen = {(type(p["quant/c"]), p["quant/c"]) for p in asked}
    assert (bool, True) in seen and (int, 1) in seen


def test_directions_follow_objectives_and_tpe_improves_on_random():
    strategy = _make(seed=3)
    asked = _run(strategy, [f"t{i}" for i in range(40)])
    study = strategy._study
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    early = sum(toy_objectives(p)["f"] for p in asked[:4]) / 4
    late = sum(toy_objectives(p)["f"] for p in asked[-10:]) / 10
    assert late < early


def test_outcomes_map_to_optuna_states():
    strategy = _make()
    outcomes = [
        Outcome("COMPLETE", {"f": 1.0, "g": 2.0}),
        Outcome("FAILED", error="boom"),
        Outcome("INVALID", error="constraint"),
        Outcome("PRUNED"),
        Outcome("COMPLETE", {"f": float("nan"), "g": 2.0}),
        Outcome("COMPLETE", {"f": 1.0}),
    ]
    for i, outcome in enumerate(outcomes):
        strategy.ask(f"t{i}")
        strategy.tell(f"t{i}", outcome)
        strategy.tell(f"t{i}", Outcome("COMPLETE", {"f": 0.0, "g": 9.0}))  # ignored
    strategy.tell("never-asked", Outcome("COMPLETE", {"f": 0.0, "g": 9.0}))
    states = [t.state.name for t in strategy._study.trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "PRUNED", "FAIL", "FAIL"]
    assert strategy._study.trials[0].values == [1.0, 2.0]


def test_parallel_asks_before_any_tell_and_pending_id_rejected():
    strategy = _make(n_startup_trials=0)
    proposals = [strategy.ask(f"p{i}") for i in range(4)]
    assert len({json.dumps(p, sort_keys=True) for p in proposals}) > 1
    with pytest.raises(ValueError, match="trial_id 'p0' was asked and not told yet"):
        strategy.ask("p0")
    for i in range(4):
        strategy.tell(f"p{i}", Outcome("COMPLETE", toy_objectives(proposals[i])))
    assert all(t.state.name == "COMPLETE" for t in strategy._study.trials)


def test_options_are_validated_in_setup():
    strategy = BayesianStrategy(n_startup_trials=-1)
    with pytest.raises(ValueError, match="n_startup_trials must be an integer >= 0, but got -1"):
        strategy.setup(ToySpace(), OBJECTIVES, seed=0)
    with pytest.raises(TypeError, match="constant_liar must be true or false, but got 'yes'"):
        BayesianStrategy(constant_liar="yes").setup(ToySpace(), OBJECTIVES, seed=0)
    with pytest.raises(RuntimeError, match="setup"):
        BayesianStrategy().ask("t")


def test_optuna_info_logging_is_silenced(caplog):
    strategy = _make()
    with caplog.at_level(logging.INFO, logger="optuna"):
        _run(strategy, ["a", "b"])
    assert not [r for r in caplog.records if r.name.startswith("optuna")]


@pytest.mark.parametrize(("constant_liar", "multivariate"), [(True, True), (False, True),
                                                             (True, False)])
def test_state_dict_round_trip_continues_identically(constant_liar, multivariate):
    options = {"constant_liar": constant_liar, "multivariate": multivariate}
    original = _make(seed=11, **options)
    space = ToySpace()
    for i in range(12):
        params = ask_valid(original, space, f"t{i}")
        outcome = (
            Outcome("FAILED", error="boom") if i == 5
            else Outcome("PRUNED") if i == 7
            else Outcome("COMPLETE", toy_objectives(params))
        )
        original.tell(f"t{i}", outcome)
    # two asks still outstanding when the state is saved (a parallel search)
    pending = {tid: ask_valid(original, space, tid) for tid in ("p0", "p1")}
    state = json.loads(json.dumps(original.state_dict()))

    restored = _make(seed=11, **options)
    restored.load_state_dict(state)
    assert [t.state.name for t in restored._study.trials] == [
        t.state.name for t in original._study.trials
    ]
    for strategy in (original, restored):
        strategy.tell("p0", Outcome("COMPLETE", toy_objectives(pending["p0"])))
    ids = [f"n{i}" for i in range(10)]
    assert _run(restored, ids) == _run(original, ids)
    # p1 was outstanding in both and can still be told
    for strategy in (original, restored):
        strategy.tell("p1", Outcome("COMPLETE", toy_objectives(pending["p1"])))
    assert restored._study.trials[-1].state.name == "COMPLETE"
    assert restored.state_dict()["trials"] == original.state_dict()["trials"]


def test_load_state_dict_rejects_used_strategy_and_other_space():
    original = _make()
    _run(original, ["a"])
    state = original.state_dict()
    with pytest.raises(RuntimeError, match="freshly set-up"):
        original.load_state_dict(state)

    class Narrower(ToySpace):
        def default_dimensions(self):
            return {**super().default_dimensions(), "arch/x": Int(0, 5)}

    other = BayesianStrategy(n_startup_trials=4)
    other.setup(Narrower(), OBJECTIVES, seed=0)
    with pytest.raises(ValueError, match="different search space"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="BayesianStrategy.state_dict"):
        _make().load_state_dict({"strategy": "random", "version": 1})


def test_repeatedly_invalid_ids_fall_back_to_random_draws(recwarn):
    strategy = _make(n_startup_trials=0, multivariate=False)
    for _ in range(3):
        strategy.ask("t")
        strategy.tell("t", Outcome("INVALID", error="constraint"))
    params = strategy.ask("t")
    trial = strategy._study.trials[-1]
    assert "fixed_params" in trial.system_attrs  # drawn by the fallback, not by TPE
    assert ToySpace().check(params) in (None, "arch/x must be <= 8")
    strategy.tell("t", Outcome("COMPLETE", toy_objectives(params)))
    strategy.ask("t")  # a valid tell ends the streak: TPE proposes again
    assert "fixed_params" not in strategy._study.trials[-1].system_attrs
    assert not [w for w in recwarn if "optuna" in str(w.filename)]


def test_tight_constraint_does_not_trap_independent_tpe():
    class Tight(ToySpace):
        def check(self, params):
            reason = SearchSpace.check(self, params)
            return reason or (None if params["arch/x"] <= 1 else "arch/x must be <= 1")

    strategy = BayesianStrategy(n_startup_trials=2, multivariate=False)
    strategy.setup(Tight(), OBJECTIVES, seed=0)
    for i in range(10):
        params = ask_valid(strategy, Tight(), f"t{i}", max_attempts=50)
        assert params["arch/x"] <= 1
        strategy.tell(f"t{i}", Outcome("COMPLETE", toy_objectives(params)))
