"""A repeated proposal is replaced by a never-asked neighbour of it (bayesian, nsga2, rl)."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Float, Int, SearchSpace
from nascompress.strategies import BayesianStrategy, NSGA2Strategy, Outcome, setup_strategy
from nascompress.strategies._base import params_fingerprint
from nascompress.strategies._neighbours import unseen_neighbour
from nascompress.strategies._optuna import _SAMPLER_REDRAWS

OBJECTIVES = (Objective("error", "min"), Objective("size", "min"))


class GridSpace(SearchSpace):
    """5 dimensions with 3 values each (243 points), like the digits-7d-3x table."""

    name = "grid5x3"

    def default_dimensions(self):
        return {
            "a": Categorical([0, 1, 2]),
            "b": Categorical(["x", "y", "z"]),
            "c": Int(1, 3),
            "d": Float(0.0, 0.5, step=0.25),
            "e": Categorical([8, 16, 32]),
        }

    def build_model(self, params, *, input_shape, num_classes):  # pragma: no cover
        raise NotImplementedError


def _objectives(params):
    error = ((params["a"] - 2) ** 2 + (params["b"] != "y") + abs(params["c"] - 2)
             + params["d"] + (params["e"] == 8) * 0.5)
    return {"error": error, "size": params["c"] * params["e"] * (1 - params["d"])}


def _distance(p, q):
    return sum(p[k] != q[k] for k in p)


def _watch_sampler(strategy):
    """Record, per ask, every proposal the optuna sampler made (repeats included)."""
    proposals: list[dict] = []
    ask_sampler = strategy._ask_sampler

    def recorded(study):
        trial = ask_sampler(study)
        proposals.append({k: strategy._to_value(k, trial.params[k]) for k in trial.params})
        return trial

    strategy._ask_sampler = recorded
    return proposals


def _search(strategy, space, n, start=0):
    asked, replacements = [], []
    proposals = _watch_sampler(strategy)
    for i in range(start, start + n):
        proposals.clear()
        params = strategy.ask(f"t{i}")
        if len(proposals) > _SAMPLER_REDRAWS + 1:
            # the sampler repeated itself on every re-ask; the last proposal was enqueued
            # in place of its last repeat
            repeat = proposals[-2]
            assert params_fingerprint(repeat) in strategy._asked_keys
            replacements.append((repeat, params))
        asked.append(params)
        strategy.tell(f"t{i}", Outcome("COMPLETE", _objectives(params)))
    return asked, replacements


# ---------------------------------------------------------------------- unseen_neighbour


def test_unseen_neighbour_changes_as_few_dimensions_as_it_can():
    dimensions = GridSpace().dimensions()
    point = {"a": 1, "b": "y", "c": 2, "d": 0.25, "e": 16}
    asked = {params_fingerprint(point)}
    rng = random.Random(0)
    first = unseen_neighbour(dimensions, point, asked, rng)
    assert _distance(first, point) == 1
    # every point one change away asked: the next is two changes away
    for key, dimension in dimensions.items():
        for value in dimension.grid():
            asked.add(params_fingerprint({**point, key: value}))
    second = unseen_neighbour(dimensions, point, asked, rng)
    assert _distance(second, point) == 2
    assert all(dimensions[k].contains(v) for k, v in second.items())
    # nothing unseen at all: None
    everything = {params_fingerprint(dict(zip(dimensions, values, strict=True)))
                  for values in _product([d.grid() for d in dimensions.values()])}
    assert unseen_neighbour(dimensions, point, everything, rng) is None


def test_unseen_neighbour_leaves_single_value_dimensions_alone():
    dimensions = {"a": Categorical([1, 2, 3]), "one": Categorical(["only"]),
                  "f": Float(2.0, 2.0)}
    point = {"a": 1, "one": "only", "f": 2.0}
    neighbour = unseen_neighbour(dimensions, point, {params_fingerprint(point)},
                                 random.Random(1))
    assert neighbour["one"] == "only" and neighbour["f"] == 2.0 and neighbour["a"] != 1


def _product(grids):
    if not grids:
        yield ()
        return
    for value in grids[0]:
        for rest in _product(grids[1:]):
            yield (value, *rest)


# ---------------------------------------------------------------------- optuna strategies


@pytest.mark.parametrize("seed", [0, 1])
def test_tpe_repeats_are_replaced_by_neighbours_of_the_repeat(seed):
    strategy = BayesianStrategy(sampler="tpe")  # "auto" would pick the GP at budget 80
    setup_strategy(strategy, GridSpace(), OBJECTIVES, seed=seed, budget=80)
    asked, replacements = _search(strategy, GridSpace(), 80)
    # unseen points remain throughout (80 of 243), so nothing is asked twice
    assert len({params_fingerprint(p) for p in asked}) == 80
    # TPE settles and keeps proposing the same points: most asks need a replacement...
    assert len(replacements) >= 20
    # ...and the replacement is next to the repeat, not anywhere in the space (a uniform
    # draw differs from it in 5 * 2/3 = 3.3 of the 5 dimensions on average)
    distances = [_distance(repeat, new) for repeat, new in replacements]
    assert statistics.median(distances) == 1
    assert statistics.mean(distances) < 1.6


def test_nsga2_repeats_are_replaced_by_neighbours_too():
    # Unscreened: screening already skips bred children that repeat an earlier ask
    # (while it finds an unseen one among its tries), which leaves the replacement
    # path below almost unused.
    strategy = NSGA2Strategy(screened_children=1)
    setup_strategy(strategy, GridSpace(), OBJECTIVES, seed=0, budget=120)
    asked, replacements = _search(strategy, GridSpace(), 120)
    assert len({params_fingerprint(p) for p in asked}) == 120
    # NSGA-II's children repeat often on so small a space; those still repeated after
    # the re-asks are replaced by points one or two changes away
    distances = [_distance(repeat, new) for repeat, new in replacements]
    assert len(distances) >= 10
    assert statistics.median(distances) == 1 and max(distances) <= 2


class TinySpace(GridSpace):
    """3 dimensions with 3 values each: 27 points."""

    name = "grid3x3"

    def default_dimensions(self):
        dimensions = super().default_dimensions()
        return {key: dimensions[key] for key in ("a", "b", "c")}


def test_every_point_is_asked_once_before_any_repeat():
    space = TinySpace()
    strategy = BayesianStrategy()
    setup_strategy(strategy, space, OBJECTIVES, seed=0, budget=27)
    asked = []
    for i in range(30):
        params = strategy.ask(f"t{i}")
        asked.append(params_fingerprint(params))
        strategy.tell(f"t{i}", Outcome("COMPLETE", _objectives({**params, "d": 0.0,
                                                                 "e": 16})))
    # the whole space, then repeats (nothing unseen is left), not an error
    assert len(set(asked[:27])) == 27
    assert set(asked[27:]) <= set(asked[:27])


def test_resume_reproduces_the_replacements():
    space = GridSpace()
    # TPE, whose repeats this is about (as above); "auto" would run the GP at budget 60,
    # 90 GP asks (1.5 minutes of the suite) for the same replacement path.
    first = BayesianStrategy(sampler="tpe")
    setup_strategy(first, space, OBJECTIVES, seed=5, budget=60)
    _search(first, space, 30)
    second = BayesianStrategy(sampler="tpe")
    setup_strategy(second, space, OBJECTIVES, seed=5, budget=60)
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    asked_first, replaced = _search(first, space, 30, start=30)
    asked_second, _ = _search(second, space, 30, start=30)
    assert replaced  # the stretch compared does replace repeats
    assert asked_second == asked_first


# ---------------------------------------------------------------------- rl


class MixedSpace(SearchSpace):
    """Every kind of rl action: values, grid bins, log-int bins, continuous bins."""

    name = "rl-mixed"

    def default_dimensions(self):
        return {
            "kind": Categorical(["a", "b", "c"]),
            "depth": Int(1, 4),
            "width": Int(0, 1000),
            "channels": Int(1, 4096, log=True),
            "ratio": Float(0.0, 0.9, step=0.01),
            "lr": Float(1e-4, 1.0, log=True),
            "x": Float(-1.0, 1.0),
        }

    def build_model(self, params, *, input_shape, num_classes):  # pragma: no cover
        raise NotImplementedError


def test_rl_action_of_inverts_the_value_of_an_action():
    pytest.importorskip("torch")
    from nascompress.strategies import RLStrategy

    strategy = RLStrategy()
    setup_strategy(strategy, MixedSpace(), OBJECTIVES, seed=0)
    rng = random.Random(3)
    for spec in strategy._actions:
        assert spec.kind in ("values", "index_bins", "range_bins")
        for _ in range(200):
            action = rng.randrange(spec.n)
            assert spec.action_of(spec.value(action, rng)) == action


def test_rl_converged_policy_proposes_unseen_neighbours_instead_of_repeats():
    torch = pytest.importorskip("torch")
    from nascompress.strategies import RLStrategy

    space = GridSpace()
    strategy = RLStrategy()
    setup_strategy(strategy, space, OBJECTIVES, seed=0, budget=30)
    # A policy that has converged on one point: every sample is that point.
    with torch.no_grad():
        for logits in strategy._policy.logits:
            logits.zero_()
            logits[0] = 50.0
    mode = {"a": 0, "b": "x", "c": 1, "d": 0.0, "e": 8}
    asked = []
    for i in range(12):
        params = strategy.ask(f"t{i}")
        pending = strategy._pending[f"t{i}"]
        # the actions kept for the update are those of the values proposed
        assert [spec.value(a, random.Random(0)) for spec, a in
                zip(strategy._actions, pending["actions"], strict=True)] == [
            params[k] for k in strategy._keys]
        assert pending["log_prob"] == pytest.approx(
            strategy._policy.sample_log_prob(pending["actions"]))
        asked.append(params)
    assert asked[0] == mode
    assert len({params_fingerprint(p) for p in asked}) == 12
    # the first replacements are the mode with one value moved
    assert all(_distance(p, mode) == 1 for p in asked[1:9])
    # resume: the same replacements follow
    state = json.loads(json.dumps(strategy.state_dict()))
    restored = RLStrategy()
    setup_strategy(restored, space, OBJECTIVES, seed=0, budget=30)
    restored.load_state_dict(state)
    for i in range(12, 18):
        assert restored.ask(f"t{i}") == strategy.ask(f"t{i}")
