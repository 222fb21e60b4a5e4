"""Resume: an interrupted search finishes its budget with no trial lost or duplicated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._helpers import write_tiny_config

pytest.importorskip("torch")

from nascompress import cli  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402


def _config(tmp_path, *, trials, runner="local"):
    return write_tiny_config(tmp_path / "experiment.yaml", trials=trials, runner=runner,
                             seed=5, max_concurrent=2,
                             strategy={"name": "bayesian", "options": {"n_startup_trials": 3}})


def _assert_complete_run(run: RunDirectory, trials: int):
    records = run.load_trials()
    assert [r["number"] for r in records] == list(range(trials))
    assert len({r["trial_id"] for r in records}) == trials
    assert all(r["state"] == "COMPLETE" for r in records), [r["error"] for r in records]
    front = json.loads((run.path / "pareto.json").read_text())
    assert front["n_trials"] == trials


def test_resume_after_a_torn_write_finishes_the_budget(tmp_path, capsys):
    config = _config(tmp_path, trials=4)
    out = tmp_path / "results"
    assert cli.main(["search", "--config", str(config), "--name", "r", "--output-dir",
                     str(out), "--quiet"]) == 0
    run = RunDirectory(out / "r")
    # Simulate a crash: only two records made it, the third was torn mid-write.
    lines = (run.path / "trials.jsonl").read_text().splitlines()
    (run.path / "trials.jsonl").write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40])
    # The torn line is dropped with a warning, not an error, and its trial run again.
    with pytest.warns(UserWarning, match="ignoring a truncated last line"):
        assert cli.main(["resume", str(run.path), "--quiet"]) == 0
    _assert_complete_run(run, 4)
    assert run.read_run()["status"] == "finished" and len(run.read_run()["resumed"]) == 1
    # A finished run can be extended.
    assert cli.main(["resume", str(run.path), "--trials", "6", "--quiet"]) == 0
    _assert_complete_run(run, 6)
    # ... but not shrunk below what is recorded.
    assert cli.main(["resume", str(run.path), "--trials", "2", "--quiet"]) == 2
    assert "--trials" in capsys.readouterr().err


def _kill_after(cmd, run_dir: Path, records: int, env):
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    deadline = time.time() + 240
    log = run_dir / "trials.jsonl"
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= records:
            os.killpg(process.pid, signal.SIGKILL)  # the driver and anything it started
            break
        time.sleep(0.05)
    process.wait()


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_sigkilled_driver_resumes_without_lost_or_duplicated_trials(tmp_path, runner):
    trials = 6
    config = _config(tmp_path, trials=trials, runner=runner)
    out = tmp_path / "results"
    run_dir = out / "k"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    base = [sys.executable, "-m", "nascompress.cli"]
    _kill_after(base + ["search", "--config", str(config), "--name", "k", "--output-dir",
                        str(out), "--quiet"], run_dir, 2, env)
    _kill_after(base + ["resume", str(run_dir), "--quiet"], run_dir, 4, env)
    done = subprocess.run(base + ["resume", str(run_dir), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_complete_run(RunDirectory(run_dir), trials)
