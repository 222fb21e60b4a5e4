"""A real (tiny) search with the in-process runner: records, front, numbering."""

import dataclasses
import json

import pytest

pytest.importorskip("torch")

from nascompress.config import parse_config  # noqa: E402
from nascompress.evaluators import Evaluator  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.local import run_local  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402

TINY = {
    "evaluator": {"options": {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1,
                              "latency": {"min_repeats": 3, "max_repeats": 10, "warmup": 1,
                                          "time_cap_s": 0.2}}},
}


def brute_force_front(trials, objectives):
    complete = [t for t in trials if t["state"] == "COMPLETE"]

    def better_or_equal(a, b, o):
        return a >= b if o.mode == "max" else a <= b

    def dominated(t):
        for other in complete:
            if other is t:
                continue
            a, b = other["objectives"], t["objectives"]
            if all(better_or_equal(a[o.name], b[o.name], o) for o in objectives) and any(
                a[o.name] != b[o.name] for o in objectives
            ):
                return True
        return False

    return sorted(t["number"] for t in complete if not dominated(t))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    config = parse_config({**TINY, "name": "local", "output_dir": str(out), "trials": 6,
                           "runner": "local", "strategy": {"name": "random"}, "seed": 3})
    experiment = build_experiment(config)
    run_local(experiment, stream=None)
    return experiment, RunDirectory(out / "local")


def test_records_cover_the_budget_and_all_groups(finished_run):
    _, run = finished_run
    trials = run.load_trials()
    assert [t["number"] for t in trials] == list(range(6))
    assert len({t["trial_id"] for t in trials}) == 6
    assert all(t["state"] == "COMPLETE" for t in trials)
    groups = {key.split("/")[0] for t in trials for key in t["params"]}
    assert groups == {"arch", "prune", "quant", "distill", "lowrank"}
    run_json = run.read_run()
    assert run_json["status"] == "finished"
    assert run_json["latency"]["batch_size"] >= 1 and "teacher" in run_json
    assert run_json["config"]["trials"] == 6


def test_pareto_json_is_exactly_the_brute_force_front(finished_run):
    experiment, run = finished_run
    trials = run.load_trials()
    front = json.loads((run.path / "pareto.json").read_text())["front"]
    assert sorted(t["number"] for t in front) == brute_force_front(trials, experiment.objectives)


def test_every_size_is_its_artifact_length(finished_run):
    _, run = finished_run
    for trial in run.load_trials():
        artifact = run.models_dir / trial["metrics"]["artifact"]
        assert artifact.stat().st_size == trial["objectives"]["size_bytes"]


def test_existing_run_is_never_overwritten(finished_run):
    from nascompress.config import ConfigError

    experiment, run = finished_run
    config = parse_config({**TINY, "name": "local", "output_dir": str(run.path.parent)})
    with pytest.raises(ConfigError, match="already exists"):
        build_experiment(config)


class Float32Evaluator(Evaluator):
    """A plug-in evaluator that returns numpy scalars, as evaluators written with numpy do."""

    name = "float32"

    def __init__(self, objectives):
        self._objectives = list(objectives)

    def objectives(self):
        return self._objectives

    def evaluate(self, params, *, space, dataset, context, report):
        np = pytest.importorskip("numpy")
        values = {o.name: np.float32(0.5 + 0.25 * i) for i, o in enumerate(self._objectives)}
        return {**values, "epochs_run": np.int64(2), "loss": np.float64(0.125)}


def test_numpy_scalar_objectives_complete_and_are_recorded_as_floats(tmp_path):
    config = parse_config({**TINY, "name": "np", "output_dir": str(tmp_path), "trials": 2,
                           "runner": "local", "strategy": {"name": "random"}, "seed": 0})
    experiment = build_experiment(config)
    experiment = dataclasses.replace(
        experiment, evaluator=Float32Evaluator(experiment.objectives)
    )
    run_local(experiment, stream=None)
    lines = (tmp_path / "np" / "trials.jsonl").read_text().splitlines()
    trials = [json.loads(line) for line in lines]
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        assert trial["objectives"] == {
            o.name: 0.5 + 0.25 * i for i, o in enumerate(experiment.objectives)
        }
        assert all(type(v) is float for v in trial["objectives"].values())
        assert trial["metrics"]["epochs_run"] == 2 and trial["metrics"]["loss"] == 0.125
    front = json.loads((tmp_path / "np" / "pareto.json").read_text())["front"]
    assert len(front) == 2  # equal objective vectors: neither dominates
