"""Multi-objective successive halving: the rule, and PRUNED records in both runners."""

import json
import math
import time

import pytest

from nascompress.search.early_stopping import MultiObjectiveHalving

METRICS = {"val_accuracy": "max", "est_size_bytes": "min"}


def test_a_dominated_trial_is_stopped_once_enough_trials_reached_the_rung():
    rule = MultiObjectiveHalving(rungs=[2, 4], eta=3, metrics=METRICS)
    assert not rule.on_result("good", 2, {"val_accuracy": 0.9, "est_size_bytes": 100}).stop
    assert not rule.on_result("small", 2, {"val_accuracy": 0.5, "est_size_bytes": 10}).stop
    assert not rule.on_result("early", 1, {"val_accuracy": 0.1, "est_size_bytes": 1e6}).stop
    decision = rule.on_result("bad", 2, {"val_accuracy": 0.4, "est_size_bytes": 200})
    assert decision.stop and decision.rung == 2
    assert "dominated by 2 of the 3 trials" in decision.reason
    assert decision.metrics["pruned_at_step"] == 2 and decision.metrics["pruned_rank"] == 1


def test_too_few_trials_at_a_rung_stop_nobody():
    rule = MultiObjectiveHalving(rungs=[1], eta=3, metrics=METRICS)
    assert not rule.on_result("a", 1, {"val_accuracy": 0.9, "est_size_bytes": 1}).stop
    assert not rule.on_result("b", 1, {"val_accuracy": 0.1, "est_size_bytes": 9}).stop


def test_a_non_dominated_trial_is_kept_even_outside_the_top_fraction():
    rule = MultiObjectiveHalving(rungs=[1], eta=3, metrics=METRICS)
    for i in range(6):  # a front of six trade-offs
        assert not rule.on_result(f"t{i}", 1, {"val_accuracy": 0.5 + 0.05 * i,
                                               "est_size_bytes": 100 + 100 * i}).stop
    # Accuracy alone would stop it; it is the smallest model, so it stays.
    assert not rule.on_result("tiny", 1, {"val_accuracy": 0.2, "est_size_bytes": 5}).stop


def test_a_skipped_rung_is_judged_and_missing_metrics_are_left_out():
    rule = MultiObjectiveHalving(rungs=[2, 4], eta=2, metrics=METRICS)
    for name, acc, size in (("a", 0.9, 10), ("b", 0.8, 5)):  # neither dominates
        assert not rule.on_result(name, 5, {"val_accuracy": acc, "est_size_bytes": size}).stop
    assert set(rule.state()[2]) == set(rule.state()[4]) == {"a", "b"}
    decision = rule.on_result("c", 7, {"val_accuracy": 0.1, "est_size_bytes": math.nan})
    assert decision.stop and decision.rung == 2 and "est_size_bytes" not in decision.reason
    assert not rule.on_result("d", "x", {"val_accuracy": 0.0}).stop  # no step, no judgment


def test_options_are_validated():
    with pytest.raises(ValueError, match="rungs"):
        MultiObjectiveHalving(rungs=[3, 2], metrics=METRICS)
    with pytest.raises(ValueError, match="eta"):
        MultiObjectiveHalving(rungs=[1], eta=1, metrics=METRICS)
    with pytest.raises(ValueError, match="metrics"):
        MultiObjectiveHalving(rungs=[1], metrics={"val_accuracy": "up"})


def test_the_rule_survives_pickling():
    import pickle

    rule = MultiObjectiveHalving(rungs=[1], eta=2, metrics=METRICS)
    rule.on_result("a", 1, {"val_accuracy": 0.9, "est_size_bytes": 1})
    copy = pickle.loads(pickle.dumps(rule))
    assert copy.on_result("b", 1, {"val_accuracy": 0.1, "est_size_bytes": 2}).stop


# --------------------------------------------------------------------------- runners


torch = pytest.importorskip("torch")

from nascompress.config import parse_config  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402

WIDTHS = [8, 16, 32, 64]


def _fake_evaluate(step_s):
    """Accuracy grows with width and step; size is fixed by width (a front of 4)."""

    def evaluate(params, *, space, dataset, context, report, **_):
        width, penalty = params["arch/width"], params["prune/ratio"]
        accuracy = 0.0
        for step in range(1, 7):
            accuracy = min(1.0, width / 64 * step / 6) - penalty
            report(step, {"val_accuracy": accuracy, "est_size_bytes": float(width)})
            time.sleep(step_s)
        return {"accuracy": accuracy, "size_bytes": float(width), "latency_ms": width / 10}

    return evaluate


def evaluate_without_pauses(params, **kwargs):
    """The fake evaluator as a module-level function, so a spawned child can unpickle it."""
    return _fake_evaluate(0.0)(params, **kwargs)


def _experiment(tmp_path, runner, trials, step_s=0.0):
    config = parse_config({
        "name": runner, "output_dir": str(tmp_path), "trials": trials, "runner": runner,
        "max_concurrent": 2, "seed": 3, "strategy": {"name": "random"},
        "space": {"dimensions": {"arch/width": {"type": "categorical", "choices": WIDTHS},
                                 "prune/ratio": {"type": "categorical",
                                                 "choices": [0.0, 0.25, 0.5]}}},
        "early_stopping": {"enabled": True, "rungs": [2, 4], "eta": 2,
                           "metrics": {"val_accuracy": "max", "est_size_bytes": "min"}},
        "evaluator": {"options": {"teacher_epochs": 1}},
    })
    experiment = build_experiment(config)
    experiment.evaluator.evaluate = _fake_evaluate(step_s)
    told = []
    tell = experiment.strategy.tell
    experiment.strategy.tell = lambda trial_id, outcome: (told.append(outcome), tell(
        trial_id, outcome))[1]
    return experiment, told


def _check_pruned_records(run_dir, experiment, told=None):
    trials = RunDirectory(run_dir).load_trials()
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, "nothing was stopped"
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials), \
        [t["error"] for t in trials]
    for trial in pruned:
        assert trial["error"].startswith("early stopping at step")
        assert trial["metrics"]["pruned_at_step"] in (2, 4)
    front = json.loads((run_dir / "pareto.json").read_text())["front"]
    assert {t["trial_id"] for t in front}.isdisjoint(t["trial_id"] for t in pruned)
    if told is not None:
        assert sum(o.state == "PRUNED" for o in told) == len(pruned)
        assert all(o.error for o in told if o.state == "PRUNED")
    return trials


def test_local_runner_prunes_and_records_pruned(tmp_path):
    from nascompress.search.local import run_local

    experiment, told = _experiment(tmp_path, "local", trials=12)
    run_local(experiment, stream=None)
    trials = _check_pruned_records(tmp_path / "local", experiment, told)
    assert len(trials) == 12


def test_time_limited_trials_are_pruned_from_the_parent(tmp_path):
    from nascompress.search.local import run_local

    experiment, told = _experiment(tmp_path, "local", trials=5)
    experiment.config.trial_timeout_s = 60  # each trial in a child process
    experiment.evaluator.evaluate = evaluate_without_pauses  # picklable for the child
    run_local(experiment, stream=None)
    trials = RunDirectory(tmp_path / "local").load_trials()
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials), \
        [t["error"] for t in trials]


@pytest.mark.ray
def test_tune_scheduler_prunes_and_records_pruned(ray_session, tmp_path):
    from nascompress.search.controller import run_ray

    experiment, _ = _experiment(tmp_path, "ray", trials=8, step_s=0.05)
    run_ray(experiment, stream=None)
    trials = _check_pruned_records(tmp_path / "ray", experiment)
    assert len(trials) == 8
    for trial in trials:
        if trial["state"] == "PRUNED":
            assert trial["metrics"]["last_step"] >= trial["metrics"]["pruned_at_step"]
            assert "nascompress_prefilter" not in trial["params"]


@pytest.mark.ray
def test_prefiltered_candidates_are_pruned_untrained_under_tune(ray_session, tmp_path,
                                                                monkeypatch):
    from nascompress.search.controller import run_ray
    from nascompress.search.experiment import Experiment

    def reject_wide(params):
        if params["arch/width"] >= 32:
            return "latency predictor: too slow (not trained)", {"predicted_latency_ms": 9.0}
        return None

    monkeypatch.setattr(Experiment, "prefilter", lambda self, **kwargs: reject_wide)
    experiment, _ = _experiment(tmp_path, "ray", trials=6)
    experiment.config.early_stopping.enabled = False
    evaluated = []
    inner = experiment.evaluator.evaluate

    def evaluate(params, **kwargs):
        evaluated.append(params["arch/width"])  # runs in a worker: only its return counts
        return {**inner(params, **kwargs), "evaluated": True}

    experiment.evaluator.evaluate = evaluate
    run_ray(experiment, stream=None)
    trials = RunDirectory(tmp_path / "ray").load_trials()
    assert len(trials) == 6
    for trial in trials:
        assert "nascompress_prefilter" not in trial["params"]
        if trial["params"]["arch/width"] >= 32:
            assert trial["state"] == "PRUNED" and "not trained" in trial["error"]
            assert trial["metrics"] == {"predicted_latency_ms": 9.0, **{
                k: v for k, v in trial["metrics"].items() if k in ("node_id", "node_ip")}}
        else:
            assert trial["state"] == "COMPLETE" and trial["metrics"]["evaluated"]
