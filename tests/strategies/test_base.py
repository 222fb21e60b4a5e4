"""The Strategy contract helpers: Outcome, FINISHED, ask_valid and the registry."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import nascompress
from nascompress.objectives import Objective
from nascompress.pareto import Constraint
from nascompress.spaces import Categorical, Int, SearchSpace
from nascompress.strategies import (
    FINISHED,
    STRATEGIES,
    TRIAL_STATES,
    BayesianGPStrategy,
    BayesianStrategy,
    EvolutionStrategy,
    GridStrategy,
    NSGA2Strategy,
    Outcome,
    RandomStrategy,
    Strategy,
    ask_valid,
    check_constraints,
    constraint_violations,
)

ALL_STRATEGIES = [RandomStrategy, GridStrategy, EvolutionStrategy, BayesianStrategy,
                  BayesianGPStrategy, NSGA2Strategy]
OPTUNA_BASED = (BayesianStrategy, NSGA2Strategy)

OBJECTIVES = (Objective("f", "min"), Objective("g", "max"))


class SumSpace(SearchSpace):
    """Two ints whose sum must stay <= limit; a joint constraint for ask_valid."""

    name = "sum-toy"

    def __init__(self, *, limit: int = 4) -> None:
        self.limit = limit
        super().__init__()

    def default_dimensions(self):
        return {"arch/a": Int(0, 5), "arch/b": Int(0, 5), "quant/c": Categorical(["x", "y"])}

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        if params["arch/a"] + params["arch/b"] > self.limit:
            return f"arch/a + arch/b must be <= {self.limit}"
        return None

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


class Recording(Strategy):
    """Replays a fixed list of answers and records every call."""

    name = "recording"

    def __init__(self, *, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, Outcome | None]] = []

    def setup(self, space, objectives, *, seed):
        pass

    def ask(self, trial_id):
        self.calls.append(("ask", trial_id, None))
        return self.answers.pop(0)

    def tell(self, trial_id, outcome):
        self.calls.append(("tell", trial_id, outcome))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_finished_is_rays_string():
    search = pytest.importorskip("ray.tune.search")
    assert FINISHED == search.Searcher.FINISHED == "FINISHED"


def test_outcome_validates_state_and_copies_objectives():
    with pytest.raises(ValueError, match="Outcome.state must be one of .*'DONE'"):
        Outcome("DONE")
    with pytest.raises(TypeError, match="Outcome.error"):
        Outcome("FAILED", error=3)
    values = {"f": 1.0, "g": 2.0}
    outcome = Outcome("COMPLETE", values)
    values["f"] = 99.0
    assert outcome.objectives == {"f": 1.0, "g": 2.0}
    assert set(TRIAL_STATES) == {"COMPLETE", "FAILED", "PRUNED", "INVALID"}


@pytest.mark.parametrize(
    ("outcome", "good"),
    [
        (Outcome("COMPLETE", {"f": 1.0, "g": 2}), True),
        (Outcome("COMPLETE", {"f": float("nan"), "g": 2.0}), False),
        (Outcome("COMPLETE", {"f": float("inf"), "g": 2.0}), False),
        (Outcome("COMPLETE", {"f": 1.0}), False),
        (Outcome("COMPLETE", {"f": True, "g": 2.0}), False),
        (Outcome("PRUNED", {"f": 1.0, "g": 2.0}), False),
        (Outcome("FAILED", {"f": 1.0, "g": 2.0}), False),
        (Outcome("INVALID", error="no"), False),
    ],
)
def test_only_complete_finite_outcomes_are_good(outcome, good):
    assert outcome.is_good(OBJECTIVES) is good


def test_strategy_is_abstract():
    with pytest.raises(TypeError):
        Strategy()  # type: ignore[abstract]


def test_ask_valid_tells_invalid_and_reasks_same_id():
    space = SumSpace(limit=4)
    bad = {"arch/a": 5, "arch/b": 5, "quant/c": "x"}
    good = {"arch/a": 1, "arch/b": 2, "quant/c": "y"}
    strategy = Recording(answers=[bad, bad, good])
    assert ask_valid(strategy, space, "t1") == good
    kinds = [(kind, tid) for kind, tid, _ in strategy.calls]
    assert kinds == [("ask", "t1"), ("tell", "t1"), ("ask", "t1"), ("tell", "t1"), ("ask", "t1")]
    told = [outcome for kind, _, outcome in strategy.calls if kind == "tell"]
    assert all(o.state == "INVALID" and "arch/a + arch/b" in o.error for o in told)


@pytest.mark.parametrize("answer", [None, FINISHED])
def test_ask_valid_passes_none_and_finished_through(answer):
    strategy = Recording(answers=[answer])
    assert ask_valid(strategy, SumSpace(), "t1") == answer
    assert [kind for kind, _, _ in strategy.calls] == ["ask"]


def test_ask_valid_gives_up_naming_the_last_reason():
    bad = {"arch/a": 5, "arch/b": 5, "quant/c": "x"}
    strategy = Recording(answers=[bad] * 3)
    with pytest.raises(RuntimeError, match=r"rejected all 3 proposals.*arch/a \+ arch/b"):
        ask_valid(strategy, SumSpace(), "t1", max_attempts=3)
    with pytest.raises(ValueError, match="max_attempts must be an integer >= 1, but got 0"):
        ask_valid(strategy, SumSpace(), "t1", max_attempts=0)


def test_ask_valid_rejects_non_dict_proposals():
    with pytest.raises(TypeError, match="must return a dict, None or 'FINISHED'"):
        ask_valid(Recording(answers=[["not", "a", "dict"]]), SumSpace(), "t1")


def test_ask_valid_with_random_strategy_only_returns_valid_params():
    space = SumSpace(limit=2)
    strategy = RandomStrategy()
    strategy.setup(space, OBJECTIVES, seed=0)
    for i in range(30):
        params = ask_valid(strategy, space, f"t{i}")
        assert space.check(params) is None
        strategy.tell(f"t{i}", Outcome("COMPLETE", {"f": 0.0, "g": 0.0}))


def test_registry_resolves_builtins():
    for factory in ALL_STRATEGIES:
        assert STRATEGIES.resolve(factory.name) is factory
    assert sorted(f.name for f in ALL_STRATEGIES) == [
        "bayesian", "bayesian-gp", "evolution", "grid", "nsga2", "random"
    ]


def test_importing_strategies_pulls_in_no_heavy_library():
    code = (
        "import sys, nascompress.strategies\n"
        "heavy = sorted({'ray', 'torch', 'optuna'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    root = Path(nascompress.__file__).resolve().parent.parent
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("factory", ALL_STRATEGIES)
def test_setup_validates_arguments(factory):
    if issubclass(factory, OPTUNA_BASED):
        pytest.importorskip("optuna")
    with pytest.raises(TypeError, match="space must be a SearchSpace"):
        factory().setup("image-cnn", OBJECTIVES, seed=0)
    with pytest.raises(ValueError, match="objectives must not be empty"):
        factory().setup(SumSpace(), [], seed=0)
    with pytest.raises(ValueError, match="objective names must be distinct"):
        factory().setup(SumSpace(), [Objective("f", "min")] * 2, seed=0)
    with pytest.raises(TypeError, match="seed must be an integer, but got '1'"):
        factory().setup(SumSpace(), OBJECTIVES, seed="1")
    with pytest.raises(ValueError, match="names 'size_bytes', which is not an objective"):
        factory().setup(SumSpace(), OBJECTIVES, seed=0,
                        constraints=[Constraint("size_bytes", "<=", 1e6)])
    with pytest.raises(TypeError, match="constraints must hold Constraint instances"):
        factory().setup(SumSpace(), OBJECTIVES, seed=0, constraints=["f <= 1"])


def test_check_constraints_returns_a_tuple():
    constraints = [Constraint("f", "<=", 1.0), Constraint("g", ">=", 0.5)]
    assert check_constraints(constraints, OBJECTIVES) == tuple(constraints)
    assert check_constraints((), OBJECTIVES) == ()
    with pytest.raises(TypeError, match="sequence of Constraint, but got Constraint"):
        check_constraints(constraints[0], OBJECTIVES)


def test_constraint_violations_are_relative_and_zero_when_met():
    constraints = [Constraint("f", "<=", 2.0), Constraint("g", ">=", 0.5),
                   Constraint("f", ">=", 0.0)]
    assert constraint_violations({"f": 1.0, "g": 0.5}, constraints) == (0.0, 0.0, 0.0)
    assert constraint_violations({"f": 3.0, "g": 0.25}, constraints) == (0.5, 0.5, 0.0)
    # a zero bound has no scale: the violation is absolute
    assert constraint_violations({"f": -0.25, "g": 1.0}, constraints) == (0.0, 0.0, 0.25)
    assert constraint_violations({"g": float("nan")}, constraints[:2]) == (math.inf, math.inf)
