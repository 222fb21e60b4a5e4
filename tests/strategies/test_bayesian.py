"""The Bayesian strategies: multi-objective TPE (the default) and the GP sampler."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from nascompress.objectives import Objective  # noqa: E402
from nascompress.pareto import Constraint  # noqa: E402
from nascompress.spaces import Categorical, Float, Int, SearchSpace  # noqa: E402
from nascompress.strategies import (  # noqa: E402
    STRATEGIES,
    BayesianGPStrategy,
    BayesianStrategy,
    Outcome,
    ask_valid,
)
from nascompress.strategies.bayesian import GP_MAX_BUDGET, GP_MAX_OBJECTIVES  # noqa: E402
from tests._helpers import FG_OBJECTIVES, FGSpace, fg_objectives  # noqa: E402


class ToySpace(FGSpace):
    """Int, stepped Float, log Float and an ambiguous Categorical (1 == True)."""

    def default_dimensions(self):
        return {
            "arch/x": Int(0, 10),
            "prune/y": Float(0.0, 1.0, step=0.05),
            "distill/lr": Float(1e-3, 1.0, log=True),
            "quant/c": Categorical([1, True, "a"]),
        }


def _make(seed: int = 0, **options) -> BayesianStrategy:
    strategy = BayesianStrategy(**{"n_startup_trials": 4, **options})
    strategy.setup(ToySpace(), FG_OBJECTIVES, seed=seed)
    return strategy


def _run(strategy: BayesianStrategy, ids: list[str]) -> list[dict[str, Any]]:
    space, asked = ToySpace(), []
    for trial_id in ids:
        params = ask_valid(strategy, space, trial_id)
        asked.append(params)
        strategy.tell(trial_id, Outcome("COMPLETE", fg_objectives(params)))
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
    early = sum(fg_objectives(p)["f"] for p in asked[:4]) / 4
    late = sum(fg_objectives(p)["f"] for p in asked[-10:]) / 10
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
        strategy.tell(f"p{i}", Outcome("COMPLETE", fg_objectives(proposals[i])))
    assert all(t.state.name == "COMPLETE" for t in strategy._study.trials)


def test_options_are_validated_in_setup():
    strategy = BayesianStrategy(n_startup_trials=-1)
    with pytest.raises(ValueError, match="n_startup_trials must be an integer >= 0 or None, "
                                         "but got -1"):
        strategy.setup(ToySpace(), FG_OBJECTIVES, seed=0)
    with pytest.raises(TypeError, match="constant_liar must be true or false, but got 'yes'"):
        BayesianStrategy(constant_liar="yes").setup(ToySpace(), FG_OBJECTIVES, seed=0)
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
            else Outcome("COMPLETE", fg_objectives(params))
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
        strategy.tell("p0", Outcome("COMPLETE", fg_objectives(pending["p0"])))
    ids = [f"n{i}" for i in range(10)]
    assert _run(restored, ids) == _run(original, ids)
    # p1 was outstanding in both and can still be told
    for strategy in (original, restored):
        strategy.tell("p1", Outcome("COMPLETE", fg_objectives(pending["p1"])))
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
    other.setup(Narrower(), FG_OBJECTIVES, seed=0)
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
    strategy.tell("t", Outcome("COMPLETE", fg_objectives(params)))
    strategy.ask("t")  # a valid tell ends the streak: TPE proposes again
    assert "fixed_params" not in strategy._study.trials[-1].system_attrs
    assert not [w for w in recwarn if "optuna" in str(w.filename)]


def test_tight_constraint_does_not_trap_independent_tpe():
    class Tight(ToySpace):
        def check(self, params):
            reason = SearchSpace.check(self, params)
            return reason or (None if params["arch/x"] <= 1 else "arch/x must be <= 1")

    strategy = BayesianStrategy(n_startup_trials=2, multivariate=False)
    strategy.setup(Tight(), FG_OBJECTIVES, seed=0)
    for i in range(10):
        params = ask_valid(strategy, Tight(), f"t{i}", max_attempts=50)
        assert params["arch/x"] <= 1
        strategy.tell(f"t{i}", Outcome("COMPLETE", fg_objectives(params)))


# ---------------------------------------------------------------------- constraints


def test_complete_trials_carry_constraint_values_for_the_sampler():
    constraint = Constraint("f", "<=", 2.0)
    strategy = BayesianStrategy(n_startup_trials=4)
    strategy.setup(ToySpace(), FG_OBJECTIVES, seed=0, constraints=(constraint,))
    for i, f in enumerate([1.0, 2.0, 3.0]):
        strategy.ask(f"t{i}")
        strategy.tell(f"t{i}", Outcome("COMPLETE", {"f": f, "g": 0.0}))
    strategy.ask("failed")
    strategy.tell("failed", Outcome("FAILED", error="boom"))
    constraints = [t.constraints for t in strategy._study.trials]
    # relative excess over the bound: <= 0 feasible, as optuna reads it
    assert constraints == [{"c0": -0.5}, {"c0": 0.0}, {"c0": 0.5}, {}]


def test_constraints_must_bound_objectives():
    with pytest.raises(ValueError, match="names 'latency_ms', which is not an objective"):
        BayesianStrategy().setup(
            ToySpace(), FG_OBJECTIVES, seed=0, constraints=[Constraint("latency_ms", "<=", 1.0)]
        )
    with pytest.raises(TypeError, match="constraints must be a sequence of Constraint"):
        BayesianStrategy().setup(ToySpace(), FG_OBJECTIVES, seed=0, constraints="f <= 1")


def test_constraints_are_part_of_the_state():
    original = BayesianStrategy(n_startup_trials=2)
    original.setup(ToySpace(), FG_OBJECTIVES, seed=0, constraints=[Constraint("f", "<=", 2.0)])
    _run(original, ["a", "b"])
    state = json.loads(json.dumps(original.state_dict()))
    with pytest.raises(ValueError, match="saved with constraints"):
        _make().load_state_dict(state)


def test_version_1_states_still_load():
    original = _make(seed=4)
    _run(original, [f"t{i}" for i in range(10)])
    original.ask("live")
    state = json.loads(json.dumps(original.state_dict()))
    old = {key: state[key] for key in ("strategy", "trials", "trial_numbers", "pending",
                                       "invalid_streaks", "fallback_rng")}
    old["version"] = 1
    old["rng"] = {"tpe": state["rng"]["sampler"], "random": state["rng"]["random"]}
    old["trials"] = [{k: v for k, v in t.items() if k != "system_attrs"} for t in state["trials"]]
    restored = _make(seed=4)
    restored.load_state_dict(old)
    for strategy in (original, restored):
        strategy.tell("live", Outcome("COMPLETE", {"f": 1.0, "g": 1.0}))
    assert _run(restored, ["n0", "n1", "n2"]) == _run(original, ["n0", "n1", "n2"])


# ---------------------------------------------------------------------- samplers


def test_sampler_option_is_validated():
    with pytest.raises(ValueError, match=r"strategy.sampler must be one of \['auto', 'tpe', "
                                         r"'gp'\], "
                                         "but got 'cmaes'"):
        BayesianStrategy(sampler="cmaes").setup(ToySpace(), FG_OBJECTIVES, seed=0)
    assert STRATEGIES.resolve("bayesian-gp") is BayesianGPStrategy
    assert BayesianGPStrategy().sampler == "gp" and BayesianGPStrategy.name == "bayesian-gp"


def test_state_of_one_sampler_does_not_load_into_the_other():
    pytest.importorskip("torch")
    original = _make()
    _run(original, ["a"])
    state = json.loads(json.dumps(original.state_dict()))
    other = BayesianStrategy(sampler="gp", n_startup_trials=4)
    other.setup(ToySpace(), FG_OBJECTIVES, seed=0)
    with pytest.raises(ValueError, match="saved with options {'sampler': 'tpe'}"):
        other.load_state_dict(state)


@pytest.mark.parametrize(
    ("sampler", "budget", "in_use"),
    [
        ("auto", None, "tpe"),  # budget unknown
        ("auto", GP_MAX_BUDGET, "gp"),
        ("auto", GP_MAX_BUDGET + 1, "tpe"),
        ("tpe", 10, "tpe"),
        ("gp", 1000, "gp"),
    ],
)
def test_auto_sampler_is_the_gp_for_small_budgets(sampler, budget, in_use):
    pytest.importorskip("torch")
    strategy = BayesianStrategy(sampler=sampler, n_startup_trials=3)
    strategy.setup(ToySpace(), FG_OBJECTIVES, seed=0, budget=budget)
    assert strategy.sampler_in_use == in_use
    expected = optuna.samplers.GPSampler if in_use == "gp" else optuna.samplers.TPESampler
    assert isinstance(strategy._study.sampler, expected)
    assert strategy.state_dict()["options"] == {"sampler": in_use}


@pytest.mark.parametrize(("objectives", "in_use"),
                         [(GP_MAX_OBJECTIVES, "gp"), (GP_MAX_OBJECTIVES + 1, "tpe")])
def test_auto_sampler_is_tpe_beyond_three_objectives(objectives, in_use):
    pytest.importorskip("torch")
    minimised = [Objective(f"o{i}", "min") for i in range(objectives)]
    strategy = BayesianStrategy(n_startup_trials=3)  # sampler="auto"
    strategy.setup(ToySpace(), minimised, seed=0, budget=GP_MAX_BUDGET)
    assert strategy.sampler_in_use == in_use
    fixed = BayesianStrategy(sampler="gp", n_startup_trials=3)
    fixed.setup(ToySpace(), minimised, seed=0, budget=GP_MAX_BUDGET)
    assert fixed.sampler_in_use == "gp"  # asked for by name: kept


def test_auto_resumes_with_the_sampler_the_search_started_with():
    """A search saved with TPE at a budget for which "auto" now picks the GP (saved
    before "auto" existed, or under a larger budget) continues with TPE, and
    identically."""
    pytest.importorskip("torch")
    ids = [f"t{i}" for i in range(8)]
    original = BayesianStrategy(sampler="tpe", n_startup_trials=3)
    original.setup(ToySpace(), FG_OBJECTIVES, seed=5, budget=20)
    _run(original, ids[:5])
    state = json.loads(json.dumps(original.state_dict()))
    resumed = BayesianStrategy(n_startup_trials=3)  # sampler="auto"
    resumed.setup(ToySpace(), FG_OBJECTIVES, seed=5, budget=20)
    assert resumed.sampler_in_use == "gp"
    resumed.load_state_dict(state)
    assert resumed.sampler_in_use == "tpe"
    assert isinstance(resumed._study.sampler, optuna.samplers.TPESampler)
    assert _run(resumed, ids[5:]) == _run(original, ids[5:])


def _make_gp(seed: int = 0, **options) -> BayesianStrategy:
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    strategy = BayesianStrategy(sampler="gp", **{"n_startup_trials": 3, **options})
    strategy.setup(ToySpace(), FG_OBJECTIVES, seed=seed)
    return strategy


def test_gp_proposes_typed_values_and_keeps_its_cache_in_the_state():
    strategy = _make_gp()
    asked = _run(strategy, [f"t{i}" for i in range(6)])
    assert all(ToySpace().check(p) is None for p in asked)
    assert all(p["prune/y"] in ToySpace().dimensions()["prune/y"].grid() for p in asked)
    assert isinstance(strategy._study.sampler, optuna.samplers.GPSampler)
    state = json.loads(json.dumps(strategy.state_dict(), allow_nan=False))
    cache = state["sampler"]["gp_cache"]["_gprs_cache_list"]
    assert len(cache) == 2 and len(cache[0]["inverse_squared_lengthscales"]) == 4
    restored = _make_gp()
    restored.load_state_dict(state)
    kernel = restored._study.sampler._gprs_cache_list[0]
    assert float(kernel.kernel_scale) == cache[0]["kernel_scale"]


def test_gp_learns_from_failures_as_worst_results():
    strategy = _make_gp()
    strategy.ask("early")
    strategy.tell("early", Outcome("FAILED", error="boom"))  # nothing to compare with yet
    for i, values in enumerate([{"f": 1.0, "g": 5.0}, {"f": 4.0, "g": 2.0}]):
        strategy.ask(f"t{i}")
        strategy.tell(f"t{i}", Outcome("COMPLETE", values))
    for trial_id, outcome in [
        ("failed", Outcome("FAILED", error="boom")),
        ("pruned", Outcome("PRUNED")),
        ("nan", Outcome("COMPLETE", {"f": float("nan"), "g": 1.0})),
    ]:
        strategy.ask(trial_id)
        strategy.tell(trial_id, outcome)
    trials = strategy._study.trials
    assert trials[0].state.name == "FAIL"
    assert [t.constraints for t in trials[1:3]] == [{"ran": -1.0}, {"ran": -1.0}]
    for trial in trials[3:]:
        # as bad as the worst real result (largest f, smallest g), and marked as not run
        assert trial.state.name == "COMPLETE" and trial.values == [4.0, 2.0]
        assert trial.constraints == {"ran": 1.0}


@pytest.mark.parametrize("sampler", ["gp", "tpe"])
def test_a_repeat_is_told_its_earlier_result_by_the_gp_and_failed_by_tpe(sampler):
    """The GP proposes a measured point again when its noise model says another
    measurement could pay; told the earlier result again (no trial run), it moves on.
    TPE is told a failed trial, which it ignores."""
    strategy = _make_gp() if sampler == "gp" else _make()
    constrained = Constraint("f", "<=", 3.0)
    strategy.setup(ToySpace(), FG_OBJECTIVES, seed=0, constraints=[constrained])
    first = _run(strategy, ["a", "b"])
    study = strategy._study
    study.enqueue_trial(dict(study.trials[0].params))  # the sampler's next proposal repeats "a"
    params = strategy.ask("c")
    assert params not in first
    repeat = study.trials[2]
    assert repeat.params == study.trials[0].params
    if sampler == "gp":
        assert repeat.state.name == "COMPLETE" and repeat.values == study.trials[0].values
        assert repeat.constraints == study.trials[0].constraints
    else:
        assert repeat.state.name == "FAIL"

