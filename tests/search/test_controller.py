"""A real Ray Tune search of a few trials through the controller (shared Ray session)."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray")

from nascompress.config import parse_config  # noqa: E402
from nascompress.pareto import pareto_front  # noqa: E402
from nascompress.search.controller import run_ray  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402

TINY_EVALUATOR = {"options": {"epochs": 2, "finetune_epochs": 1, "teacher_epochs": 2,
                              "latency": {"min_repeats": 5, "max_repeats": 20, "warmup": 2,
                                          "time_cap_s": 0.3}}}


@pytest.mark.ray
def test_ray_search_records_every_trial_and_the_front(ray_session, tmp_path):
    config = parse_config({"name": "tune", "output_dir": str(tmp_path), "trials": 5,
                           "max_concurrent": 2, "seed": 1, "evaluator": TINY_EVALUATOR,
                           "strategy": {"name": "bayesian", "options": {"n_startup_trials": 3}}})
    experiment = build_experiment(config)
    session = run_ray(experiment, stream=None)
    run = RunDirectory(tmp_path / "tune")
    trials = run.load_trials()
    assert len(trials) == 5 == len(session.records)
    assert sorted(t["number"] for t in trials) == list(range(5))
    assert len({t["trial_id"] for t in trials}) == 5
    assert all(t["state"] == "COMPLETE" for t in trials), [t["error"] for t in trials]
    for trial in trials:
        assert set(trial["params"]) == set(experiment.space.dimensions())
        assert experiment.space.check(trial["params"]) is None
        assert trial["metrics"]["latency_repeats"] >= 5
    stored = json.loads((run.path / "pareto.json").read_text())
    expected = pareto_front(trials, experiment.objectives)
    assert [t["number"] for t in stored["front"]] == [t["number"] for t in expected]
    assert run.read_run()["status"] == "finished"


@pytest.mark.ray
def test_a_failing_candidate_is_recorded_failed_and_kept_off_the_front(ray_session, tmp_path):
    config = parse_config({"name": "fails", "output_dir": str(tmp_path), "trials": 2,
                           "max_concurrent": 2, "evaluator": TINY_EVALUATOR,
                           "strategy": {"name": "random"}})
    experiment = build_experiment(config)

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    experiment.evaluator.evaluate = explode  # pickled with the trial runner
    run_ray(experiment, stream=None)
    trials = RunDirectory(tmp_path / "fails").load_trials()
    assert [t["state"] for t in trials] == ["FAILED", "FAILED"]
    assert all("boom" in t["error"] for t in trials)
    assert json.loads((tmp_path / "fails" / "pareto.json").read_text())["front"] == []


def test_trial_resources_beyond_the_cluster_are_named():
    from nascompress.config import ConfigError, ResourcesConfig
    from nascompress.search.controller import check_trial_resources

    cluster = {"CPU": 2.0, "trial_slot": 2.0, "node:127.0.0.1": 1.0, "memory": 1e9}
    check_trial_resources(ResourcesConfig(cpu=2, custom={"trial_slot": 1}), cluster)
    for resources, message in [
        (ResourcesConfig(cpu=3), "resources.cpu=3, but the Ray cluster has 2 CPU"),
        (ResourcesConfig(gpu=1), "resources.gpu=1, but the Ray cluster has 0 GPU"),
        (ResourcesConfig(custom={"fpga": 1}), "resources.custom.fpga=1, but the Ray cluster "
                                              "has 0 fpga"),
    ]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
            check_trial_resources(resources, cluster)
        assert "trial_slot=2" in str(caught.value) and "node:" not in str(caught.value)


@pytest.mark.ray
def test_trials_take_the_custom_resources_they_ask_for(ray_session, tmp_path):
    config = parse_config({"name": "custom", "output_dir": str(tmp_path), "trials": 2,
                           "max_concurrent": 2, "seed": 0, "evaluator": TINY_EVALUATOR,
                           "strategy": {"name": "random"},
                           "resources": {"cpu": 1, "custom": {"trial_slot": 2}}})
    run_ray(build_experiment(config), stream=None)
    trials = RunDirectory(tmp_path / "custom").load_trials()
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    # Each trial holds both of the node's slots: the two ran one after the other, although
    # two CPUs and max_concurrent would have let them overlap.
    first, second = sorted(trials, key=lambda t: t["started_at"])
    assert first["finished_at"] <= second["started_at"]


@pytest.mark.ray
def test_a_resource_no_node_has_is_refused_before_anything_runs(ray_session, tmp_path):
    from nascompress.config import ConfigError

    config = parse_config({"name": "nowhere", "output_dir": str(tmp_path), "trials": 2,
                           "evaluator": TINY_EVALUATOR,
                           "resources": {"custom": {"fpga": 1}}})
    with pytest.raises(ConfigError, match="resources.custom.fpga=1"):
        run_ray(build_experiment(config), stream=None)
    assert not (tmp_path / "nowhere" / "trials.jsonl").exists()
    assert ray_session.is_initialized()  # the shared session was not shut down
