"""The optional ``budget`` of the Strategy contract, and that no proposal repeats."""

from __future__ import annotations

import pytest

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, SearchSpace
from nascompress.strategies import (
    BayesianStrategy,
    EvolutionStrategy,
    NSGA2Strategy,
    Outcome,
    RandomStrategy,
    RLStrategy,
    setup_strategy,
)
from nascompress.strategies._base import population_for, startup_trials

OBJECTIVES = (Objective("error", "min"), Objective("size", "min"))


class SmallSpace(SearchSpace):
    """4 x 3 x 2 = 24 points: repeats are likely within 20 asks unless redrawn."""

    name = "small"

    def default_dimensions(self):
        return {"a": Categorical([0, 1, 2, 3]), "b": Categorical(["x", "y", "z"]),
                "c": Categorical([True, False])}

    def build_model(self, params, *, input_shape, num_classes):  # pragma: no cover
        raise NotImplementedError


def _objectives(params):
    return {"error": (params["a"] - 2) ** 2 + (params["b"] != "y"), "size": params["a"]}


@pytest.mark.parametrize("factory", [RandomStrategy, BayesianStrategy, NSGA2Strategy,
                                     EvolutionStrategy, RLStrategy])
def test_no_proposal_repeats_an_earlier_one(factory):
    strategy = factory()
    setup_strategy(strategy, SmallSpace(), OBJECTIVES, seed=3, budget=20)
    seen = []
    for i in range(20):
        params = strategy.ask(f"t{i}")
        seen.append(tuple(sorted(params.items())))
        strategy.tell(f"t{i}", Outcome("COMPLETE", _objectives(params)))
    assert len(set(seen)) == 20


def test_repeat_check_survives_a_state_round_trip():
    space = SmallSpace()
    first = BayesianStrategy()
    first.setup(space, OBJECTIVES, seed=1, budget=20)
    asked = []
    for i in range(12):
        params = first.ask(f"t{i}")
        asked.append(tuple(sorted(params.items())))
        first.tell(f"t{i}", Outcome("COMPLETE", _objectives(params)))
    second = BayesianStrategy()
    second.setup(space, OBJECTIVES, seed=1, budget=20)
    second.load_state_dict(first.state_dict())
    for i in range(12, 20):
        a, b = first.ask(f"t{i}"), second.ask(f"t{i}")
        assert a == b
        asked.append(tuple(sorted(a.items())))
        for strategy in (first, second):
            strategy.tell(f"t{i}", Outcome("COMPLETE", _objectives(a)))
    assert len(set(asked)) == 20


def test_budget_sizes_populations_and_random_start():
    space = SmallSpace()
    assert population_for(None, default=16) == 16
    assert [population_for(b, default=16) for b in (20, 50, 100, 300, 1000)] == [8, 10, 20, 50,
                                                                                    50]
    # three searched dimensions: optuna's 10, capped at a quarter of the budget
    assert startup_trials(space, None, default=8) == 8
    assert [startup_trials(space, b, default=8) for b in (8, 20, 100, 300)] == [2, 5, 10, 10]
    evolution = EvolutionStrategy()
    evolution.setup(space, OBJECTIVES, seed=0, budget=100)
    assert evolution.state_dict()["population_size"] == 20
    # NSGA-II: at least ten generations (a fifth of the budget, five generations, did not
    # beat random search at 100 evaluations on the measured digits-cnn-3x table)
    assert [population_for(b, default=16, turnovers=10) for b in (50, 100, 300, 1000)] == [
        8, 10, 30, 50]
    for budget, population in ((50, 8), (100, 10), (300, 30)):
        nsga2 = NSGA2Strategy()
        nsga2.setup(space, OBJECTIVES, seed=0, budget=budget)
        assert nsga2.state_dict()["options"] == {"population_size": population,
                                                 "selection": "crowding"}
    explicit = NSGA2Strategy(population_size=6)
    explicit.setup(space, OBJECTIVES, seed=0, budget=50)
    assert explicit.state_dict()["options"] == {"population_size": 6, "selection": "crowding"}


def test_budget_is_validated():
    with pytest.raises(ValueError, match="budget must be an integer >= 1 or None, but got 0"):
        RandomStrategy().setup(SmallSpace(), OBJECTIVES, seed=0, budget=0)


def test_setup_strategy_leaves_budget_out_for_strategies_without_it():
    class Old(RandomStrategy):
        def setup(self, space, objectives, *, seed, constraints=()):
            self.got = "no budget"
            super().setup(space, objectives, seed=seed, constraints=constraints)

    old = Old()
    setup_strategy(old, SmallSpace(), OBJECTIVES, seed=0, budget=50)
    assert old.got == "no budget"
    new = EvolutionStrategy()
    setup_strategy(new, SmallSpace(), OBJECTIVES, seed=0, budget=50)
    assert new.state_dict()["population_size"] == 10
