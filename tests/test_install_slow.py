"""A plain install (no extras) runs the default search: what it needs is a core dependency.

Slow (a fresh virtual environment, packages from the registry): run with
`bash scripts/test.sh -m slow tests/test_install_slow.py`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The tested torch, as the set-up scripts install it (an unpinned torch would pull CUDA).
TORCH_SPEC = os.environ.get("NASCOMPRESS_TORCH_SPEC", "torch==2.13.0")


@pytest.mark.slow
def test_a_plain_install_runs_a_default_search(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, TORCH_SPEC], check=True)
    # A copy of the sources (pip builds in the source tree), installed as a user would:
    # not editable, so only what the package declares is there.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "results", "*.egg-info", "__pycache__"))
    subprocess.run([*pip, str(source), TORCH_SPEC], check=True)
    extras = subprocess.run([str(python), "-c", "import plotly"], capture_output=True)
    assert extras.returncode != 0, "the report extra should not have been installed"

    config = tmp_path / "two.yaml"
    config.write_text(
        "trials: 2\nrunner: local\nseed: 1\n"
        "evaluator: {name: compress-train, options: "
        "{epochs: 1, finetune_epochs: 1, teacher_epochs: 1}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(venv / "bin" / "nascompress"), "search", "--config", str(config),
                    "--name", "plain", "--output-dir", str(tmp_path / "results"), "--quiet"],
                   check=True, cwd=tmp_path, env=env, timeout=900)
    lines = (tmp_path / "results" / "plain" / "trials.jsonl").read_text().splitlines()
    trials = [json.loads(line) for line in lines]
    states = [t["state"] for t in trials]
    assert states == ["COMPLETE", "COMPLETE"], [t.get("error") for t in trials]
    assert all(t["metrics"]["latency_kind"] in ("fp32", "int8", "simulated") for t in trials)
