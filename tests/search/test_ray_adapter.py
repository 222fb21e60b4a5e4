"""The Ray Tune adapter: any Strategy as a ray.tune.search.Searcher."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("ray")
pytest.importorskip("optuna")

from nascompress.pareto import Constraint  # noqa: E402
from nascompress.search.ray_adapter import StrategySearcher  # noqa: E402
from nascompress.strategies import (  # noqa: E402
    FINISHED,
    BayesianStrategy,
    Outcome,
    RandomStrategy,
    Strategy,
)
from tests._helpers import FG_OBJECTIVES, FGSpace, fg_objectives  # noqa: E402


class Spy(Strategy):
    """Wraps a strategy and records every tell."""

    name = "spy"

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.tells: list[tuple[str, Outcome]] = []
        self.constraints = None

    def setup(self, space, objectives, *, seed, constraints=()):
        self.constraints = tuple(constraints)
        self.inner.setup(space, objectives, seed=seed, constraints=constraints)

    def ask(self, trial_id):
        return self.inner.ask(trial_id)

    def tell(self, trial_id, outcome):
        self.tells.append((trial_id, outcome))
        self.inner.tell(trial_id, outcome)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)

    def real_tells(self) -> list[tuple[str, Outcome]]:
        """Tells of run trials (ask_valid's INVALID re-asks left out)."""
        return [(tid, o) for tid, o in self.tells if o.state != "INVALID"]


def _searcher(strategy: Strategy | None = None, seed: int = 0) -> StrategySearcher:
    return StrategySearcher(
        strategy or Spy(BayesianStrategy(n_startup_trials=3)), FGSpace(), FG_OBJECTIVES, seed=seed
    )


def test_metric_and_mode_lists_come_from_objectives():
    searcher = _searcher()
    assert searcher.metric == ["f", "g"] and searcher.mode == ["min", "max"]
    assert searcher.set_search_properties("other", "max", {"lr": 0.1}) is True
    assert searcher.metric == ["f", "g"]


def test_suggests_several_valid_configs_before_any_completion():
    searcher = _searcher()
    configs = [searcher.suggest(f"t{i}") for i in range(5)]
    assert all(FGSpace().check(c) is None for c in configs)
    assert searcher.strategy.real_tells() == []
    with pytest.raises(ValueError, match="trial_id 't0' was already suggested"):
        searcher.suggest("t0")
    for i, config in enumerate(configs):
        searcher.on_trial_complete(f"t{i}", result=fg_objectives(config))
    assert [tid for tid, _ in searcher.strategy.real_tells()] == [f"t{i}" for i in range(5)]
    assert all(o.state == "COMPLETE" for _, o in searcher.strategy.real_tells())


def test_double_and_unknown_completions_are_ignored():
    searcher = _searcher()
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", result=fg_objectives(config))
    searcher.on_trial_complete("t0", result=None, error=True)
    searcher.on_trial_complete("never-suggested", result=fg_objectives(config))
    assert [(tid, o.state) for tid, o in searcher.strategy.real_tells()] == [("t0", "COMPLETE")]


@pytest.mark.parametrize(
    ("result", "error", "state", "message"),
    [
        (None, True, "FAILED", "raised an error"),
        ({"f": 1.0, "g": 1.0}, True, "FAILED", "raised an error"),
        (None, False, "FAILED", "no result"),
        ({"f": float("nan"), "g": 1.0}, False, "FAILED", "f=nan"),
        ({"f": 1.0, "g": float("inf")}, False, "FAILED", "g=inf"),
        ({"f": 1.0}, False, "FAILED", "g=None"),
        ({"trial_state": "FAILED", "error": "OOM"}, False, "FAILED", "OOM"),
        ({"trial_state": "PRUNED", "f": 1.0}, False, "PRUNED", None),
        ({"trial_state": "DONE", "f": 1.0, "g": 1.0}, False, "FAILED", "'DONE'"),
        ({"f": 1, "g": 2.5, "done": True}, False, "COMPLETE", None),
    ],
)
def test_results_map_to_outcomes(result, error, state, message):
    searcher = _searcher()
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result=result, error=error)
    [(trial_id, outcome)] = searcher.strategy.real_tells()
    assert trial_id == "t0" and outcome.state == state
    if message:
        assert message in outcome.error
    if state == "COMPLETE":
        assert outcome.objectives == {"f": 1.0, "g": 2.5}
    trial = searcher.strategy.inner._study.trials[-1]
    assert trial.state.name == {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED"}.get(state, "FAIL")


def test_numpy_scalars_count_as_numbers():
    np = pytest.importorskip("numpy")
    searcher = _searcher()
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"f": np.float32(0.5), "g": np.int64(2)})
    [(_, outcome)] = searcher.strategy.real_tells()
    assert outcome.state == "COMPLETE" and outcome.objectives == {"f": 0.5, "g": 2.0}


def test_finished_passes_through():
    searcher = _searcher(RandomStrategy(max_trials=1))
    assert isinstance(searcher.suggest("t0"), dict)
    assert searcher.suggest("t1") == FINISHED


def test_constructor_validates():
    with pytest.raises(TypeError, match="strategy must be a Strategy"):
        StrategySearcher("bayesian", FGSpace(), FG_OBJECTIVES, seed=0)
    with pytest.raises(ValueError, match="max_invalid_attempts must be an integer >= 1"):
        StrategySearcher(RandomStrategy(), FGSpace(), FG_OBJECTIVES, seed=0, max_invalid_attempts=0)
    with pytest.raises(ValueError, match="objectives must not be empty"):
        StrategySearcher(RandomStrategy(), FGSpace(), [], seed=0)


def test_save_restore_continues_identically(tmp_path):
    original = _searcher(seed=5)
    for i in range(8):
        config = original.suggest(f"t{i}")
        original.on_trial_complete(f"t{i}", result=fg_objectives(config))
    live = original.suggest("live")  # still running at checkpoint time
    path = tmp_path / "searcher-state-x.pkl"
    original.save(str(path))
    assert json.loads(path.read_text())["live"] == ["live"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind

    restored = _searcher(seed=5)
    restored.restore(str(path))
    for searcher in (original, restored):
        searcher.on_trial_complete("live", result=fg_objectives(live))
        searcher.on_trial_complete("t0", result=fg_objectives(live))  # completed before: ignored

    def continue_(searcher: StrategySearcher) -> list[dict[str, Any]]:
        configs = []
        for i in range(6):
            configs.append(searcher.suggest(f"n{i}"))
            searcher.on_trial_complete(f"n{i}", result=fg_objectives(configs[-1]))
        return configs

    assert continue_(restored) == continue_(original)
    with pytest.raises(RuntimeError, match="freshly constructed"):
        restored.restore(str(path))
    with pytest.raises(ValueError, match="saved by strategy 'spy'"):
        _searcher(RandomStrategy()).restore(str(path))


LIMIT = Constraint("f", "<=", 4.0)


def test_constraints_reach_the_strategy_and_the_checkpoint(tmp_path):
    strategy = Spy(BayesianStrategy(n_startup_trials=2))
    searcher = StrategySearcher(strategy, FGSpace(), FG_OBJECTIVES, seed=0, constraints=[LIMIT])
    assert strategy.constraints == (LIMIT,)
    for i in range(3):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", result=fg_objectives(config))
    trials = strategy.inner._study.trials
    assert all("c0" in t.constraints for t in trials if t.state.name == "COMPLETE")
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    assert json.loads(path.read_text())["constraints"] == [LIMIT.to_dict()]

    restored = StrategySearcher(Spy(BayesianStrategy(n_startup_trials=2)), FGSpace(),
                                FG_OBJECTIVES, seed=0, constraints=[LIMIT])
    restored.restore(str(path))
    assert restored.suggest("n0") == searcher.suggest("n0")
    unconstrained = StrategySearcher(Spy(BayesianStrategy(n_startup_trials=2)), FGSpace(),
                                     FG_OBJECTIVES, seed=0)
    with pytest.raises(ValueError, match=r"saved with constraints \['f <= 4'\]"):
        unconstrained.restore(str(path))


class BeforeConstraints(RandomStrategy):
    """A plug-in written before setup took constraints."""

    def setup(self, space, objectives, *, seed):
        super().setup(space, objectives, seed=seed)


def test_strategies_without_the_constraints_keyword_still_work_unconstrained():
    searcher = StrategySearcher(BeforeConstraints(), FGSpace(), FG_OBJECTIVES, seed=0)
    assert FGSpace().check(searcher.suggest("t0")) is None
    with pytest.raises(TypeError, match="constraints"):
        StrategySearcher(BeforeConstraints(), FGSpace(), FG_OBJECTIVES, seed=0,
                         constraints=[LIMIT])


def test_constraints_are_validated():
    with pytest.raises(TypeError, match="constraints must be a sequence of Constraint"):
        StrategySearcher(RandomStrategy(), FGSpace(), FG_OBJECTIVES, seed=0, constraints=LIMIT)
    with pytest.raises(ValueError, match="names 'latency_ms', which is not an objective"):
        StrategySearcher(RandomStrategy(), FGSpace(), FG_OBJECTIVES, seed=0,
                         constraints=[Constraint("latency_ms", "<=", 1.0)])


def _tune_fit(strategy: Strategy, tmp_path, name: str, samples: int = 6):
    """A real Tune run of ``samples`` toy trials, two at a time, searched by ``strategy``."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    def trainable(config):
        tune.report(fg_objectives(config))

    searcher = StrategySearcher(strategy, FGSpace(), FG_OBJECTIVES, seed=0)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=2), num_samples=samples
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=str(tmp_path), verbose=0, log_to_file=False
        ),
    )
    return tuner.fit()


@pytest.mark.ray
def test_real_tune_run(ray_session, tmp_path):
    strategy = Spy(BayesianStrategy(n_startup_trials=3))
    results = _tune_fit(strategy, tmp_path, "toy")
    assert len(results) == 6 and not results.errors
    told = strategy.real_tells()
    assert len(told) == 6 and all(o.state == "COMPLETE" for _, o in told)
    for result in results:
        config = {k: result.config[k] for k in FGSpace().dimensions()}
        assert FGSpace().check(config) is None
        assert result.metrics["f"] == pytest.approx(fg_objectives(config)["f"])
    # Tune checkpointed the searcher with our save(): a JSON file in the experiment dir
    saved = list((tmp_path / "toy").glob("searcher-state-*.pkl"))
    assert saved and json.loads(saved[0].read_text())["strategy"] == "spy"


def _built_in_strategies() -> list[str]:
    from nascompress.strategies import STRATEGIES

    return sorted(name for name, source in STRATEGIES.available().items()
                  if source == "built-in")


@pytest.mark.ray
@pytest.mark.parametrize("name", _built_in_strategies())
def test_every_built_in_strategy_runs_under_tune(ray_session, tmp_path, name):
    # Tune pickles the searcher, with the strategy, when the run starts: optuna's
    # NSGA-II sampler held a lock that does not pickle, and nsga2 failed there.
    from nascompress.strategies import STRATEGIES

    options = {"nsga2": {"population_size": 2}, "evolution": {"population_size": 2}}
    strategy = Spy(STRATEGIES.resolve(name)(**options.get(name, {})))
    results = _tune_fit(strategy, tmp_path, name)
    assert len(results) == 6 and not results.errors
    assert len(strategy.real_tells()) == 6


def test_a_strategy_set_up_by_the_caller_is_not_set_up_again():
    strategy = Spy(RandomStrategy())
    strategy.setup(FGSpace(), FG_OBJECTIVES, seed=0, constraints=[LIMIT])
    calls = []
    strategy.setup = lambda *args, **kwargs: calls.append(args)  # would reset its state
    searcher = StrategySearcher(strategy, FGSpace(), FG_OBJECTIVES, seed=0,
                                constraints=[LIMIT], set_up=False)
    assert calls == []
    assert isinstance(searcher.suggest("t0"), dict)  # runs on the caller's setup
    assert strategy.constraints == (LIMIT,)
    with pytest.raises(TypeError, match="set_up must be true or false"):
        StrategySearcher(RandomStrategy(), FGSpace(), FG_OBJECTIVES, seed=0, set_up="no")
