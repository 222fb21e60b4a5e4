"""``load_run``: DataFrames of the front and the trials, pick and export; ``nascompress spaces``."""

import json

import pytest

from nascompress import cli
from nascompress.api import constraints_from_kwargs, load_run
from nascompress.pareto import Constraint, pareto_front
from nascompress.picking import NoQualifyingPointError
from nascompress.search.records import RunDirectory


@pytest.fixture
def run_dir(tiny_run_dir):
    return tiny_run_dir


def test_constraints_from_kwargs():
    assert constraints_from_kwargs({"max_latency_ms": 2, "min_accuracy": 0.9, "max_x": None}) == [
        Constraint("latency_ms", "<=", 2.0), Constraint("accuracy", ">=", 0.9)]
    with pytest.raises(ValueError, match="latency_ms=2"):
        constraints_from_kwargs({"latency_ms": 2})
    with pytest.raises(ValueError, match="max_size_bytes"):
        constraints_from_kwargs({"max_size_bytes": float("inf")})


def test_load_run_frames(run_dir):
    run = load_run(run_dir)
    disk = RunDirectory(run_dir)
    trials = disk.load_trials()
    front = pareto_front(trials, disk.objectives(), disk.constraints())

    assert [o.name for o in run.objectives] == ["accuracy", "size_bytes", "latency_ms"]
    assert run.config == disk.read_run()["config"]
    assert run.name == "tiny"

    frame = run.front
    assert list(frame.columns[:5]) == ["number", "trial_id", "accuracy", "size_bytes",
                                       "latency_ms"]
    assert "arch/width" in frame.columns and "quant/bits" in frame.columns
    assert sorted(frame["number"]) == sorted(t["number"] for t in front)

    table = run.trials
    assert len(table) == len(trials)
    assert {"state", "on_front", "feasible", "error", "duration_s"} <= set(table.columns)
    assert int(table["on_front"].sum()) == len(front)
    assert table["accuracy"].between(0, 1).all()


def test_pick_and_record_lookup(run_dir):
    run = load_run(run_dir)
    best = run.pick()
    assert best.chosen["objectives"]["accuracy"] == run.front["accuracy"].max()
    assert run.record(best.chosen["number"]) is run.record(best.chosen["trial_id"])
    fastest = run.front["latency_ms"].min()
    assert run.pick(max_latency_ms=fastest).chosen["objectives"]["latency_ms"] == fastest
    assert run.pick(knee=True).rule == "knee"
    assert run.pick(constraints=["size_bytes <= 1e12"]).chosen == best.chosen
    with pytest.raises(NoQualifyingPointError) as info:
        run.pick(max_size_bytes=1)
    assert info.value.closest
    with pytest.raises(ValueError, match="latency_s"):
        run.pick(max_latency_s=1)
    with pytest.raises(KeyError, match="trial"):
        run.record("nope")


def test_export_defaults_to_the_default_pick(run_dir, tmp_path):
    run = load_run(run_dir)
    manifest = run.export(format="state_dict", out=tmp_path / "w.pt")
    assert manifest.source["trial_id"] == run.pick().chosen["trial_id"]
    assert (tmp_path / "w.pt").is_file() and manifest.manifest_path.is_file()
    knee = run.export(run.pick(knee=True), format="torchscript", out=tmp_path / "k.pt")
    assert knee.source["trial_id"] == run.pick(knee=True).chosen["trial_id"]


def test_load_run_of_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="run.json"):
        load_run(tmp_path)


def test_cli_spaces_lists_the_registry(capsys):
    assert cli.main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "image-cnn" in out and "built-in" in out
    assert cli.main(["spaces", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "image-cnn", "source": "built-in"} in rows
