"""The nsga2 strategy: optuna's NSGA-II behind the shared optuna ask/tell and replay."""

from __future__ import annotations

import json

import pytest

optuna = pytest.importorskip("optuna")

from nascompress.objectives import Objective  # noqa: E402
from nascompress.pareto import Constraint  # noqa: E402
from nascompress.strategies import STRATEGIES, NSGA2Strategy, Outcome, ask_valid  # noqa: E402
from nascompress.testing.toy import TOY_OBJECTIVES, ToySpace, toy_objectives  # noqa: E402

GENERATION_KEY = "NSGAIISampler:generation"


def _make(seed: int = 0, constraints=(), objectives=TOY_OBJECTIVES,
          **options) -> NSGA2Strategy:
    strategy = NSGA2Strategy(**{"population_size": 4, **options})
    strategy.setup(ToySpace(), objectives, seed=seed, constraints=constraints)
    return strategy


def _run(strategy: NSGA2Strategy, ids: list[str], score=toy_objectives) -> list[dict]:
    asked = []
    for trial_id in ids:
        params = ask_valid(strategy, ToySpace(), trial_id)
        asked.append(params)
        strategy.tell(trial_id, Outcome("COMPLETE", score(params)))
    return asked


def test_generations_advance_every_population_size_complete_trials():
    strategy = _make()
    _run(strategy, [f"t{i}" for i in range(12)])
    generations = [t.system_attrs.get(GENERATION_KEY) for t in strategy._study.trials
                   if t.state.name == "COMPLETE"]
    assert generations == [0] * 4 + [1] * 4 + [2] * 4
    assert isinstance(strategy._study.sampler, optuna.samplers.NSGAIISampler)


def test_state_keeps_generations_and_parent_caches():
    original = _make(seed=2, constraints=(Constraint("size", "<=", 3.0),))
    _run(original, [f"t{i}" for i in range(14)])
    live = original.ask("live")
    state = json.loads(json.dumps(original.state_dict(), allow_nan=False))
    parents = state["study_system_attrs"]["parent_numbers"]
    assert sorted(parents) == ["NSGAIISampler:parent:1", "NSGAIISampler:parent:2",
                               "NSGAIISampler:parent:3"]
    assert all(len(numbers) == 4 for numbers in parents.values())

    restored = _make(seed=2, constraints=(Constraint("size", "<=", 3.0),))
    restored.load_state_dict(state)
    study = restored._study
    assert study._storage.get_study_system_attrs(study._study_id) == \
        original._study._storage.get_study_system_attrs(original._study._study_id)
    for strategy in (original, restored):
        strategy.tell("live", Outcome("COMPLETE", toy_objectives(live)))
    assert _run(restored, ["n0", "n1", "n2", "n3", "n4"]) == \
        _run(original, ["n0", "n1", "n2", "n3", "n4"])


def test_infeasible_results_carry_positive_constraint_values():
    strategy = _make(constraints=(Constraint("size", "<=", 3.0),))
    asked = _run(strategy, [f"t{i}" for i in range(8)])
    complete = [t for t in strategy._study.trials if t.state.name == "COMPLETE"]
    for params, trial in zip(asked, complete, strict=True):
        feasible = toy_objectives(params)["size"] <= 3.0
        assert (trial.constraints["c0"] <= 0) is feasible


def test_options_are_validated_in_setup():
    strategy = NSGA2Strategy(population_size=1)  # stored, not checked yet
    with pytest.raises(ValueError, match="population_size must be an integer >= 2 or None, "
                                         "but got 1"):
        strategy.setup(ToySpace(), TOY_OBJECTIVES, seed=0)
    with pytest.raises(RuntimeError, match="setup"):
        NSGA2Strategy().ask("t")
    assert STRATEGIES.resolve("nsga2") is NSGA2Strategy
    other = _make(population_size=6)
    state = _make().state_dict()
    with pytest.raises(ValueError, match="saved with options {'population_size': 4, "
                                         "'selection': 'crowding'}"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="strategy.selection must be one of 'crowding', "
                                         "'reference-points' or None .*but got 'nsga3'"):
        _make(selection="nsga3")


def _run_budget(strategy: NSGA2Strategy, ids: list[str]) -> None:
    for trial_id in ids:
        params = ask_valid(strategy, ToySpace(), trial_id)
        strategy.tell(trial_id, Outcome("COMPLETE", toy_objectives(params)))


def test_budget_sized_population_runs_ten_generations():
    # A fifth of the budget per generation (five generations) did not beat random search
    # at 100 evaluations on the measured digits-cnn-3x table; a tenth does.
    strategy = NSGA2Strategy()
    strategy.setup(ToySpace(), TOY_OBJECTIVES, seed=0, budget=100)
    _run_budget(strategy, [f"t{i}" for i in range(100)])
    generations = [t.system_attrs.get(GENERATION_KEY) for t in strategy._study.trials
                   if t.state.name == "COMPLETE"]
    assert len(generations) == 100
    assert generations[-1] == 9
    assert strategy._study.sampler.population_size == 10


def test_resume_with_another_budget_keeps_the_saved_population():
    original = NSGA2Strategy()
    original.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=100)
    _run_budget(original, [f"t{i}" for i in range(25)])
    state = json.loads(json.dumps(original.state_dict(), allow_nan=False))
    assert state["options"] == {"population_size": 10, "selection": "crowding"}

    # resumed with a larger budget (or saved by a release that sized it differently)
    extended = NSGA2Strategy()
    extended.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=300)
    extended.load_state_dict(state)
    assert extended.state_dict()["options"] == {"population_size": 10, "selection": "crowding"}
    assert extended._study.sampler.population_size == 10
    # the same proposals as the original from there on, across a generation's end
    for number in range(10):
        params = original.ask(f"n{number}")
        assert extended.ask(f"n{number}") == params
        for strategy in (original, extended):
            strategy.tell(f"n{number}", Outcome("COMPLETE", toy_objectives(params)))

    # an explicit population is the user's: a different saved one is still refused
    explicit = NSGA2Strategy(population_size=12)
    explicit.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=300)
    with pytest.raises(ValueError, match="saved with options {'population_size': 10,"):
        explicit.load_state_dict(state)


# ---------------------------------------------------------------- survivor selection

THREE_OBJECTIVES = (*TOY_OBJECTIVES, Objective("latency", "min"))


def _three(params: dict) -> dict[str, float]:
    # a third objective that conflicts with size: deeper is slower, a larger ratio faster
    return {**toy_objectives(params),
            "latency": params["arch/depth"] / (1.0 + params["prune/ratio"])}


def _make3(seed: int = 0, **options) -> NSGA2Strategy:
    return _make(seed, objectives=THREE_OBJECTIVES, **options)


def _run3(strategy: NSGA2Strategy, ids: list[str]) -> list[dict]:
    return _run(strategy, ids, score=_three)


def test_selection_follows_the_number_of_objectives_unless_set():
    # two objectives: NSGA-II's crowding distance; three: NSGA-III's reference points
    assert type(_make()._study.sampler) is optuna.samplers.NSGAIISampler
    default3 = _make3()
    assert type(default3._study.sampler) is optuna.samplers.NSGAIIISampler
    assert default3.state_dict()["options"] == {"population_size": 4,
                                                "selection": "reference-points"}
    assert type(_make3(selection="crowding")._study.sampler) is optuna.samplers.NSGAIISampler
    assert type(_make(selection="reference-points")._study.sampler) is \
        optuna.samplers.NSGAIIISampler
    # generations advance and are bred from parents with reference points too
    _run3(default3, [f"t{i}" for i in range(12)])
    generations = [t.system_attrs.get("NSGAIIISampler:generation")
                   for t in default3._study.trials if t.state.name == "COMPLETE"]
    assert generations == [0] * 4 + [1] * 4 + [2] * 4


def test_reference_point_state_resumes_the_same_search():
    original = _make3(seed=5)
    _run3(original, [f"t{i}" for i in range(10)])
    state = json.loads(json.dumps(original.state_dict(), allow_nan=False))
    assert sorted(state["study_system_attrs"]["parent_numbers"]) == [
        "NSGAIIISampler:parent:1", "NSGAIIISampler:parent:2"]
    restored = _make3(seed=5)
    restored.load_state_dict(state)
    ids = [f"n{i}" for i in range(6)]
    assert _run3(restored, ids) == _run3(original, ids)


def test_a_state_from_before_the_option_resumes_with_crowding():
    # A three-objective search saved before ``selection`` existed selected by crowding
    # distance and saved only its population size: it resumes as it was.
    original = _make3(seed=7, selection="crowding")
    _run3(original, [f"t{i}" for i in range(9)])
    state = json.loads(json.dumps(original.state_dict(), allow_nan=False))
    state["options"] = {"population_size": 4}
    resumed = _make3(seed=7)
    resumed.load_state_dict(state)
    assert type(resumed._study.sampler) is optuna.samplers.NSGAIISampler
    assert resumed.state_dict()["options"]["selection"] == "crowding"
    ids = [f"n{i}" for i in range(6)]
    assert _run3(resumed, ids) == _run3(original, ids)
    # a selection the user set is theirs: a state saved with the other is refused
    explicit = _make3(seed=7, selection="reference-points")
    with pytest.raises(ValueError, match="saved with options {'population_size': 4, "
                                         "'selection': 'crowding'}"):
        explicit.load_state_dict(state)


# ---------------------------------------------------------------- screened children


def _screening_spy(monkeypatch) -> list[tuple[list[dict], int]]:
    """Make the model pick the last candidate; record (candidates, results) per call."""
    import nascompress.strategies.nsga2 as nsga2

    seen = []

    def last_candidate(candidates, results, *args, **kwargs):
        seen.append(([dict(c) for c in candidates], len(results)))
        return len(candidates) - 1

    monkeypatch.setattr(nsga2, "most_promising", last_candidate)
    return seen


def test_screening_proposes_the_bred_child_the_model_picks(monkeypatch):
    seen = _screening_spy(monkeypatch)
    strategy = _make(screened_children=3)
    asked = _run(strategy, [f"t{i}" for i in range(4)])
    assert seen == []  # the first generation is random: nothing to breed from
    for number in range(4, 14):
        calls = len(seen)
        params = strategy.ask(f"t{number}")
        assert len(seen) == calls + 1
        candidates, n_results = seen[-1]
        assert n_results == number  # every result so far, this generation's too
        keys = [json.dumps(c, sort_keys=True) for c in candidates]
        assert len(keys) == 3 and len(set(keys)) == 3
        assert not set(keys) & {json.dumps(p, sort_keys=True) for p in asked}
        assert params == candidates[-1]  # the pick is proposed, as bred
        asked.append(params)
        strategy.tell(f"t{number}", Outcome("COMPLETE", toy_objectives(params)))


def test_screening_sees_single_valued_dimensions_at_their_value(monkeypatch):
    from nascompress.spaces import Categorical

    seen = _screening_spy(monkeypatch)
    strategy = NSGA2Strategy(population_size=4)
    space = ToySpace(dimensions={"arch/kind": Categorical(["b"])})
    strategy.setup(space, TOY_OBJECTIVES, seed=1)
    for number in range(10):
        params = ask_valid(strategy, space, f"t{number}")
        strategy.tell(f"t{number}", Outcome("COMPLETE", toy_objectives(params)))
        assert params["arch/kind"] == "b"
    assert seen and all(c["arch/kind"] == "b" for candidates, _ in seen for c in candidates)


def test_one_screened_child_is_optunas_nsga2(monkeypatch):
    from optuna.samplers.nsgaii._child_generation_strategy import (
        NSGAIIChildGenerationStrategy,
    )

    seen = _screening_spy(monkeypatch)
    plain = _make(seed=4, screened_children=1)
    _run(plain, [f"t{i}" for i in range(12)])
    assert seen == []
    assert type(plain._study.sampler._child_generation_strategy) is \
        NSGAIIChildGenerationStrategy
    assert type(_make()._study.sampler._child_generation_strategy) is not \
        NSGAIIChildGenerationStrategy


def test_screened_children_is_validated_and_needs_optunas_breeding():
    with pytest.raises(ValueError, match="screened_children must be an integer >= 1, but got 0"):
        _make(screened_children=0)
    strategy = _make()
    with pytest.warns(RuntimeWarning, match="proposes its children unscreened"):
        strategy._screen_children_of(object())
