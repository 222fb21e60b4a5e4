"""The evolution strategy: aging population, feasibility-first tournaments, typed mutation."""

from __future__ import annotations

import json
import math
import random

import pytest

from nascompress.objectives import Objective
from nascompress.pareto import Constraint
from nascompress.spaces import Categorical, Float, Int, SearchSpace
from nascompress.strategies import STRATEGIES, EvolutionStrategy, Outcome, ask_valid
from nascompress.strategies._neighbours import nearby_value
from nascompress.strategies.evolution import _ranking_keys
from nascompress.testing.toy import TOY_OBJECTIVES, ToySpace, toy_objectives


def _make(seed: int = 0, constraints=(), space=None, **options) -> EvolutionStrategy:
    strategy = EvolutionStrategy(**options)
    strategy.setup(space or ToySpace(), TOY_OBJECTIVES, seed=seed, constraints=constraints)
    return strategy


def _population(strategy: EvolutionStrategy) -> list[dict]:
    """The members of the population, oldest first: the newest results."""
    state = strategy.state_dict()
    return state["results"][-state["population_size"]:]


def _run(strategy: EvolutionStrategy, n: int, start: int = 0, space=None) -> list[dict]:
    space = space or ToySpace()
    asked = []
    for i in range(start, start + n):
        params = ask_valid(strategy, space, f"t{i}")
        asked.append(params)
        strategy.tell(f"t{i}", Outcome("COMPLETE", toy_objectives(params)))
    return asked


def test_population_fills_at_random_then_ages():
    strategy = _make(population_size=4, tournament_size=2)
    asked = _run(strategy, 4)
    members = _population(strategy)
    assert [m["params"] for m in members] == asked
    _run(strategy, 3, start=4)
    members = _population(strategy)
    assert len(members) == 4
    assert [m["member"] for m in members] == [3, 4, 5, 6]  # the three oldest died


def test_children_differ_from_a_member_in_few_dimensions():
    strategy = _make(population_size=6, tournament_size=3, mutation_prob=0.01)
    _run(strategy, 6)
    parents = [m["params"] for m in _population(strategy)]
    for i in range(20):
        child = strategy.ask(f"c{i}")
        # mutation_prob=0.01: almost always exactly the one forced dimension
        assert min(sum(child[k] != p[k] for k in child) for p in parents) == 1
        strategy.tell(f"c{i}", Outcome("FAILED", error="boom"))  # population stays put


def test_bad_outcomes_never_join_the_population():
    strategy = _make(population_size=4)
    for i, outcome in enumerate([
        Outcome("FAILED", {"error": -1.0, "size": -1.0}),
        Outcome("PRUNED", {"error": -1.0, "size": -1.0}),
        Outcome("INVALID", error="no"),
        Outcome("COMPLETE", {"error": math.nan, "size": 1.0}),
        Outcome("COMPLETE", {"error": 1.0}),
    ]):
        strategy.ask(f"t{i}")
        strategy.tell(f"t{i}", outcome)
        strategy.tell(f"t{i}", Outcome("COMPLETE", {"error": 0.0, "size": 0.0}))  # ignored
    strategy.tell("never-asked", Outcome("COMPLETE", {"error": 0.0, "size": 0.0}))
    assert _population(strategy) == []
    json.dumps(strategy.state_dict(), allow_nan=False)


def _member(error, size, violation=0.0):
    return {"params": {}, "objectives": {"error": error, "size": size}, "violation": violation}


def test_ranking_is_feasibility_then_pareto_rank_then_crowding():
    members = [
        _member(0.0, 0.0, violation=0.5),  # dominates everything, but infeasible
        _member(1.0, 1.0),  # rank 1 (dominated by the next three)
        _member(0.1, 0.9),  # front, end
        _member(0.5, 0.5),  # front, middle
        _member(0.9, 0.1),  # front, end
        _member(0.0, 0.0, violation=0.1),  # infeasible, but less so than member 0
        _member(0.55, 0.45),  # front, next to member 3: crowded
    ]
    keys = _ranking_keys(members, TOY_OBJECTIVES)
    order = sorted(range(len(members)), key=lambda i: keys[i])
    assert order[:2] == [2, 4]  # the ends of the front: infinite crowding distance
    assert set(order[2:4]) == {3, 6}
    assert order[4:] == [1, 5, 0]


def test_tournament_prefers_feasible_members():
    # Two members dominate the feasible one on both objectives but break the constraint.
    space = ToySpace()
    constraint = Constraint("size", "<=", 3.0)
    strategy = _make(population_size=3, tournament_size=3, constraints=(constraint,),
                     mutation_prob=0.01)
    feasible = {"arch/kind": "a", "arch/depth": 1, "prune/ratio": 0.5}
    infeasible = [{"arch/kind": "b", "arch/depth": 6, "prune/ratio": 0.1},
                  {"arch/kind": "b", "arch/depth": 7, "prune/ratio": 0.1}]
    for i, params in enumerate([infeasible[0], feasible, infeasible[1]]):
        strategy.ask(f"t{i}")
        strategy._pending[f"t{i}"] = params  # the proposals under test
        values = toy_objectives(params)
        if params is not feasible:
            values = {"error": 0.0, "size": values["size"]}
        strategy.tell(f"t{i}", Outcome("COMPLETE", values))
    for i in range(10):
        child = ask_valid(strategy, space, f"c{i}")
        assert sum(child[k] != feasible[k] for k in child) == 1  # always the feasible parent
        strategy.tell(f"c{i}", Outcome("FAILED", error="boom"))


def test_several_asks_in_flight_are_children_of_the_population():
    space = ToySpace()
    strategy = _make(population_size=5, tournament_size=2)
    _run(strategy, 5)
    in_flight = [ask_valid(strategy, space, f"p{i}") for i in range(10)]
    assert all(space.check(p) is None for p in in_flight)
    with pytest.raises(ValueError, match="trial_id 'p0' was asked and not told yet"):
        strategy.ask("p0")
    for i, params in enumerate(reversed(in_flight)):  # results arrive in any order
        strategy.tell(f"p{9 - i}", Outcome("COMPLETE", toy_objectives(params)))
    assert len(_population(strategy)) == 5


class AllTypes(SearchSpace):
    name = "all-types"

    def default_dimensions(self):
        return {
            "arch/c": Categorical([1, True, "x"]),
            "arch/one": Categorical(["only"]),
            "arch/i": Int(0, 30, step=3),
            "arch/ilog": Int(1, 1000, log=True),
            "prune/f": Float(0.0, 0.7, step=0.05),
            "distill/lr": Float(1e-4, 1.0, log=True),
            "distill/x": Float(-1.0, 1.0),
            "quant/fixed": Float(2.0, 2.0),
        }

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


def test_mutation_stays_in_the_space_and_changes_the_value():
    rng = random.Random(0)
    for key, dimension in AllTypes().dimensions().items():
        if key in ("arch/one", "quant/fixed"):
            continue
        value = dimension.sample(rng)
        for _ in range(300):
            new = nearby_value(dimension, value, rng)
            assert dimension.contains(new), (key, new)
            assert type(new) is int or not isinstance(dimension, Int)
            assert not (type(new) is type(value) and new == value), (key, value)
            value = new


def test_numeric_mutation_is_mostly_local():
    rng = random.Random(1)
    dimension = Int(0, 100)
    steps = [abs(nearby_value(dimension, 50, rng) - 50) for _ in range(1000)]
    assert sum(s <= 15 for s in steps) > 800  # steps of a few grid points...
    assert max(steps) > 30  # ...and the odd jump anywhere
    log_dim = Float(1e-4, 1.0, log=True)
    ratios = [nearby_value(log_dim, 1e-2, rng) / 1e-2 for _ in range(1000)]
    # log space: moving up by a factor is as likely as moving down by it
    assert 400 < sum(r > 1 for r in ratios) < 600


def test_single_value_dimensions_are_never_mutated():
    space = AllTypes()
    strategy = EvolutionStrategy(population_size=3, tournament_size=2)
    strategy.setup(space, (Objective("f", "min"),), seed=0)
    for i in range(30):
        params = strategy.ask(f"t{i}")
        assert params["arch/one"] == "only" and params["quant/fixed"] == 2.0
        assert space.check(params) is None
        strategy.tell(f"t{i}", Outcome("COMPLETE", {"f": float(i % 7)}))


def test_repeatedly_invalid_ids_fall_back_to_random_draws():
    strategy = _make(population_size=2, tournament_size=2, seed=3)
    _run(strategy, 2)
    parents = [m["params"] for m in _population(strategy)]
    for _ in range(3):
        strategy.ask("t")
        strategy.tell("t", Outcome("INVALID", error="constraint"))
    drawn = [strategy.ask("t")]
    strategy.tell("t", Outcome("INVALID", error="constraint"))
    drawn += [strategy.ask("t")]
    # random draws: not one-dimension mutations of a parent, in general
    assert any(min(sum(d[k] != p[k] for k in d) for p in parents) > 1 for d in drawn)


def test_options_are_validated_in_setup():
    cases = [
        ({"population_size": 1}, "population_size must be an integer >= 2 or None, but got 1"),
        ({"tournament_size": 17}, r"tournament_size must be an integer between 1 and "
                                  r"population_size=16, but got 17"),
        ({"tournament_size": 0}, "tournament_size .* but got 0"),
        ({"mutation_prob": 0}, r"mutation_prob must be a number in \(0, 1\] or None, but got 0"),
        ({"mutation_prob": 1.5}, "but got 1.5"),
    ]
    for options, message in cases:
        strategy = EvolutionStrategy(**options)  # stored, not checked yet
        with pytest.raises(ValueError, match=message):
            strategy.setup(ToySpace(), TOY_OBJECTIVES, seed=0)
    with pytest.raises(ValueError, match="constraint 'accuracy >= 0.9' names 'accuracy'"):
        _make(constraints=(Constraint("accuracy", ">=", 0.9),))
    with pytest.raises(RuntimeError, match="setup"):
        EvolutionStrategy().ask("t")
    assert STRATEGIES.resolve("evolution") is EvolutionStrategy


def test_load_state_dict_checks_what_it_restores():
    original = _make(population_size=4, constraints=(Constraint("size", "<=", 3.0),))
    _run(original, 6)
    state = json.loads(json.dumps(original.state_dict()))
    with pytest.raises(ValueError, match="population_size=4"):
        _make(population_size=5, constraints=(Constraint("size", "<=", 3.0),)) \
            .load_state_dict(state)
    with pytest.raises(ValueError, match="saved with constraints"):
        _make(population_size=4).load_state_dict(state)

    class Other(ToySpace):
        def default_dimensions(self):
            return {**super().default_dimensions(), "quant/bits": Categorical([4, 8])}

    with pytest.raises(ValueError, match="different search space"):
        _make(population_size=4, space=Other(),
              constraints=(Constraint("size", "<=", 3.0),)).load_state_dict(state)
    with pytest.raises(ValueError, match="EvolutionStrategy.state_dict"):
        _make().load_state_dict({"strategy": "random", "version": 1})


def test_children_do_not_repeat_earlier_proposals():
    # 480 points; mutations of a small population keep landing on tried points, and
    # every one of them must be redrawn.
    space = ToySpace(gridded=True)
    strategy = _make(space=space, population_size=6, tournament_size=3)
    asked = _run(strategy, 80, space=space)
    fingerprints = [json.dumps(p, sort_keys=True) for p in asked]
    assert len(set(fingerprints)) == len(fingerprints)


def test_repeats_are_proposed_only_when_the_space_is_exhausted():
    space = ToySpace(gridded=True, dimensions={
        "arch/kind": Categorical(["a", "b"]), "arch/depth": Int(1, 2),
        "prune/ratio": Float(0.5, 1.0, step=0.5),
    })  # 8 points
    strategy = _make(space=space, population_size=2, tournament_size=1)
    asked = _run(strategy, 12, space=space)
    assert len({json.dumps(p, sort_keys=True) for p in asked[:8]}) == 8
    assert len(asked) == 12  # asks go on after the space is used up


def test_version_1_state_loads_and_remembers_what_it_holds():
    original = _make(population_size=4)
    _run(original, 6)
    state = json.loads(json.dumps(original.state_dict()))
    del state["asked"]
    state["version"] = 1
    state["population"] = state.pop("results")[-4:]  # versions 1 and 2 kept these only
    restored = _make(population_size=4)
    restored.load_state_dict(state)
    held = [m["params"] for m in state["population"]]
    assert len(restored.state_dict()["asked"]) == len(
        {json.dumps(p, sort_keys=True) for p in held})


def test_resume_with_another_budget_keeps_the_saved_population():
    original = EvolutionStrategy()
    original.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=100)
    ids = [f"t{i}" for i in range(30)]
    for trial_id in ids:
        params = original.ask(trial_id)
        original.tell(trial_id, Outcome("COMPLETE", toy_objectives(params)))
    state = json.loads(json.dumps(original.state_dict(), allow_nan=False))
    assert state["population_size"] == 20

    # `resume --trials 300`: the budget-sized population would be 50; the saved one stays
    extended = EvolutionStrategy()
    extended.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=300)
    extended.load_state_dict(state)
    assert extended.state_dict()["population_size"] == 20
    for number in range(10):  # the same proposals as the original from there on
        params = original.ask(f"n{number}")
        assert extended.ask(f"n{number}") == params
        for strategy in (original, extended):
            strategy.tell(f"n{number}", Outcome("COMPLETE", toy_objectives(params)))

    explicit = EvolutionStrategy(population_size=12)  # the user's size: refused
    explicit.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=300)
    with pytest.raises(ValueError, match="saved with population_size=20"):
        explicit.load_state_dict(state)


@pytest.mark.parametrize(("budget", "population", "tournament"),
                         [(30, 8, 4), (50, 10, 4), (100, 20, 8), (300, 50, 20), (None, 16, 6)])
def test_the_default_tournament_grows_with_the_population(budget, population, tournament):
    strategy = EvolutionStrategy()
    strategy.setup(ToySpace(), TOY_OBJECTIVES, seed=0, budget=budget)
    state = strategy.state_dict()
    assert (state["population_size"], state["tournament_size"]) == (population, tournament)


def _proposals_after_resume(state: dict, **options) -> list[dict]:
    strategy = EvolutionStrategy(**options)
    strategy.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=100)
    strategy.load_state_dict(json.loads(json.dumps(state)))
    return _run(strategy, 15, start=100)


def test_a_state_saved_before_the_tournament_was_recorded_resumes_with_four():
    original = EvolutionStrategy(tournament_size=4)
    original.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=100)
    _run(original, 30)
    state = original.state_dict()
    old = {k: v for k, v in state.items() if k != "tournament_size"}
    assert _proposals_after_resume(old) == _proposals_after_resume(state, tournament_size=4)
    # the default today (8 of 20) would have chosen other parents
    assert _proposals_after_resume(old) != _proposals_after_resume(state, tournament_size=8)
    small = EvolutionStrategy()  # budget 40: 8 members, so a tournament of 10 cannot be
    small.setup(ToySpace(), TOY_OBJECTIVES, seed=3, budget=40)
    _run(small, 10)
    with pytest.raises(ValueError, match="tournament_size must be an integer between 1 and "
                                         "population_size=8, but got 10"):
        _proposals_after_resume(small.state_dict(), tournament_size=10)


def test_screening_proposes_the_candidate_the_model_picks(monkeypatch):
    import nascompress.strategies.evolution as evolution

    seen = []

    def last_candidate(candidates, results, *args, **kwargs):
        seen.append(([dict(c) for c in candidates], len(results)))
        return len(candidates) - 1

    monkeypatch.setattr(evolution, "most_promising", last_candidate)
    strategy = _make(population_size=6, tournament_size=3, screened_children=5)
    asked = _run(strategy, 6)
    assert seen == []  # the random start is not screened
    asked += _run(strategy, 10, start=6)
    assert len(seen) == 10
    fingerprints = [json.dumps(p, sort_keys=True) for p in asked]
    for number, (candidates, n_results) in enumerate(seen):
        assert n_results == 6 + number  # every result so far, not only the population
        assert len(candidates) == 5
        keys = [json.dumps(c, sort_keys=True) for c in candidates]
        assert len(set(keys)) == 5
        assert not set(keys) & set(fingerprints[:6 + number])  # none asked before
        assert fingerprints[6 + number] == keys[-1]  # the one picked is proposed


def test_screened_children_is_validated():
    with pytest.raises(ValueError, match="screened_children must be an integer >= 1, but got 0"):
        _make(screened_children=0)


def test_a_population_larger_than_the_models_results_is_kept_whole():
    from nascompress.strategies._screening import MODEL_RESULTS

    size = MODEL_RESULTS + 20
    strategy = _make(population_size=size, tournament_size=2, screened_children=1)
    _run(strategy, size + 5)
    members = _population(strategy)
    assert len(members) == size
    assert members[0]["member"] == 5


def test_version_2_state_loads_its_population_as_the_results_seen():
    original = _make(population_size=4)
    _run(original, 9)
    state = json.loads(json.dumps(original.state_dict()))
    state["version"] = 2
    state["population"] = state.pop("results")[-4:]
    restored = _make(population_size=4)
    restored.load_state_dict(state)
    assert _population(restored) == state["population"]
    assert restored.state_dict()["results"] == state["population"]
    _run(restored, 3, start=9)  # and searches on
    assert [m["member"] for m in _population(restored)] == [8, 9, 10, 11]
