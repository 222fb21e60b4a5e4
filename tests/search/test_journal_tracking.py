"""The optuna journal (live view), ``nascompress dashboard``, and the MLflow/TensorBoard
trackers, fed by real searches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests._helpers import write_tiny_config

pytest.importorskip("torch")

from nascompress import cli  # noqa: E402
from nascompress.search.journal import JOURNAL_FILE, read_journal  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]



def _config(tmp_path, *, trials, tracking=""):
    return write_tiny_config(tmp_path / "experiment.yaml", extra_yaml=tracking, trials=trials,
                             runner="local", seed=4, strategy={"name": "random"},
                             constraints=["latency_ms <= 100"])


def test_the_journal_mirrors_the_trial_log(tiny_run_dir):
    run = RunDirectory(tiny_run_dir)
    records = run.load_trials()
    trials = read_journal(tiny_run_dir / JOURNAL_FILE)
    assert len(trials) == len(records) > 0
    assert {t["study"] for t in trials} == {tiny_run_dir.name}
    modes = {"max": "MAXIMIZE", "min": "MINIMIZE"}
    assert trials[0]["directions"] == [modes[o.mode] for o in run.objectives()]
    by_id = {t["user_attrs"]["trial_id"]: t for t in trials}
    for record in records:
        trial = by_id[record["trial_id"]]
        assert trial["user_attrs"]["number"] == record["number"]
        state = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED"}.get(record["state"], "FAIL")
        assert trial["state"] == state
        if state == "COMPLETE":
            assert trial["values"] == [record["objectives"][o.name] for o in run.objectives()]
            assert trial["user_attrs"]["artifact"] == record["metrics"]["artifact"]
        for key, value in record["params"].items():
            assert trial["params"].get(key, trial["user_attrs"].get(f"param:{key}")) == value


def test_dashboard_serves_the_run_on_loopback_only(tiny_run_dir, tmp_path):
    pytest.importorskip("optuna_dashboard")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nascompress.cli", "dashboard", str(tiny_run_dir), "--port", "0",
         "--stop-after", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/studies", timeout=20) as response:
            studies = json.loads(response.read())["study_summaries"]
        assert [s["study_name"] for s in studies] == [tiny_run_dir.name]
        study_id = studies[0]["study_id"]
        with urllib.request.urlopen(f"{url}api/studies/{study_id}", timeout=20) as response:
            detail = json.loads(response.read())
        assert len(detail["trials"]) == len(RunDirectory(tiny_run_dir).load_trials())
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        mine = [row for row in listening.splitlines() if f"pid={proc.pid}," in row]
        assert mine and all(row.split()[3].startswith("127.0.0.1:") for row in mine), mine
        # The study's page: Pareto front, history, trials.
        _maybe_screenshot(f"{url}dashboard/studies/{study_id}", tmp_path / "dashboard.png")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _maybe_screenshot(url: str, out: Path) -> None:
    """A headless-Chromium screenshot where Chromium is installed (kept for a look)."""
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        return
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1400,2400",
                    "--virtual-time-budget=8000", f"--screenshot={out}", url],
                   capture_output=True, timeout=120)
    assert out.stat().st_size > 20000, "the dashboard screenshot looks blank"
    keep = os.environ.get("NASCOMPRESS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / out.name).write_bytes(out.read_bytes())


def test_mlflow_and_tensorboard_follow_a_search_and_its_resume(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboardX")
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    tracking = (f"tracking:\n  mlflow: {{enabled: true, tracking_uri: 'file:{store}', "
                "experiment: nas}\n  tensorboard: {enabled: true}")
    out = tmp_path / "results"
    config = _config(tmp_path, trials=2, tracking=tracking)
    assert cli.main(["search", "--config", str(config), "--name", "m", "--output-dir",
                     str(out), "--quiet"]) == 0
    run = RunDirectory(out / "m")
    assert cli.main(["resume", str(run.path), "--trials", "3", "--quiet"]) == 0
    records = run.load_trials()
    assert len(records) == 3

    client = MlflowClient(tracking_uri=f"file:{store}")
    experiment = client.get_experiment_by_name("nas")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    # Params are written once (MLflow keeps them immutable); the budget tag follows resumes.
    assert parent.data.params["trials"] == "2" and parent.data.tags["nascompress.budget"] == "3"
    assert parent.data.params["strategy.name"] == "random"
    assert "hypervolume" in parent.data.metrics
    assert {r.data.tags["nascompress.trial_id"] for r in children} == {
        r["trial_id"] for r in records}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        record = next(r for r in records
                      if r["trial_id"] == child.data.tags["nascompress.trial_id"])
        assert child.info.status == "FINISHED"
        for name, value in record["objectives"].items():
            assert child.data.metrics[name] == pytest.approx(value)
        assert json.loads(child.data.params["arch/depth"]) == record["params"]["arch/depth"]
        artifacts = [a.path for a in client.list_artifacts(child.info.run_id, "model")]
        assert artifacts == [f"model/{record['metrics']['artifact']}"]
    # One journal study, continued by the resume: no duplicates.
    trials = read_journal(run.path / JOURNAL_FILE)
    assert sorted(t["user_attrs"]["trial_id"] for t in trials) == sorted(
        r["trial_id"] for r in records)
    events = list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_a_failing_tracker_never_stops_the_search(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    # Nothing listens on port 9: every MLflow call fails, fast (no retries).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    tracking = "tracking:\n  mlflow: {enabled: true, tracking_uri: 'http://127.0.0.1:9'}"
    out = tmp_path / "results"
    started = time.monotonic()
    assert cli.main(["search", "--config", str(_config(tmp_path, trials=2, tracking=tracking)),
                     "--name", "f", "--output-dir", str(out), "--quiet"]) == 0
    assert time.monotonic() - started < 120
    assert len(RunDirectory(out / "f").load_trials()) == 2
    err = capsys.readouterr().err
    assert err.count("warning: mlflow tracking") == 1, err
