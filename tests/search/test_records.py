import json

import pytest

from nascompress.objectives import Objective
from nascompress.search.records import RunDirectory, TrialRecord, rows_to_csv

OBJECTIVES = [Objective("accuracy", "max"), Objective("size_bytes", "min")]


def _record(number, state="COMPLETE", acc=0.9, size=100.0):
    objectives = {"accuracy": acc, "size_bytes": size} if state == "COMPLETE" else {}
    return TrialRecord(number=number, trial_id=f"t{number}", state=state,
                       params={"arch/depth": 1}, objectives=objectives)


def test_append_and_reload(tmp_path):
    run = RunDirectory(tmp_path)
    for i in range(3):
        run.append_trial(_record(i, acc=0.5 + i / 10))
    loaded = run.load_trials()
    assert [r["number"] for r in loaded] == [0, 1, 2]
    assert loaded[2]["objectives"]["accuracy"] == pytest.approx(0.7)


def test_torn_last_line_is_skipped_not_fatal(tmp_path):
    run = RunDirectory(tmp_path)
    run.append_trial(_record(0))
    with open(tmp_path / "trials.jsonl", "a") as handle:
        handle.write('{"number": 1, "trial_id": "t1", "sta')
    with pytest.warns(UserWarning, match="truncated"):
        assert len(run.load_trials()) == 1


def test_corrupt_middle_line_is_an_error(tmp_path):
    (tmp_path / "trials.jsonl").write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        RunDirectory(tmp_path).load_trials()


def test_nan_is_written_as_null(tmp_path):
    run = RunDirectory(tmp_path)
    rec = _record(0)
    rec.metrics["latency_iqr_ms"] = float("nan")
    run.append_trial(rec)
    assert json.loads((tmp_path / "trials.jsonl").read_text())["metrics"]["latency_iqr_ms"] is None


def test_pareto_files_hold_only_non_dominated_complete_trials(tmp_path):
    run = RunDirectory(tmp_path)
    trials = [_record(0, acc=0.9, size=100).to_dict(), _record(1, acc=0.8, size=200).to_dict(),
              _record(2, acc=0.7, size=50).to_dict(), _record(3, state="FAILED").to_dict()]
    run.write_pareto(trials, OBJECTIVES)
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert [t["number"] for t in data["front"]] == [0, 2]
    assert data["hypervolume"]["value"] > 0 and "reference" in data["hypervolume"]
    csv_lines = (tmp_path / "pareto.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "accuracy" in csv_lines[0]
    assert not list(tmp_path.glob(".pareto*"))  # no temporary files left behind


def test_invalid_state_is_rejected():
    with pytest.raises(ValueError, match="state"):
        TrialRecord(number=0, trial_id="x", state="DONE", params={})


def test_rows_to_csv_unions_columns():
    text = rows_to_csv([{"a": 1}, {"a": 2, "b": 3}])
    assert text.splitlines() == ["a,b", "1,", "2,3"]
