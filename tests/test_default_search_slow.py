"""The issue's acceptance check on the real default evaluator: a 12-trial search.

Slow (a real search with full training budgets): run with `bash scripts/test.sh -m slow`.
"""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray")

from nascompress import cli  # noqa: E402


@pytest.mark.slow
def test_a_12_trial_default_search(tmp_path):
    assert cli.main(["search", "--trials", "12", "--name", "twelve", "--output-dir",
                     str(tmp_path), "--quiet"]) == 0
    run = tmp_path / "twelve"
    trials = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) >= 12
    groups = {key.split("/")[0] for t in complete for key in t["params"]}
    assert {"arch", "prune", "quant", "distill"} <= groups
    front = json.loads((run / "pareto.json").read_text())["front"]
    assert len(front) >= 2
    assert len({t["objectives"]["size_bytes"] for t in complete}) > 1
    assert len({t["objectives"]["latency_ms"] for t in complete}) > 1
    for trial in complete:
        artifact = run / "models" / trial["metrics"]["artifact"]
        assert artifact.stat().st_size == trial["objectives"]["size_bytes"]
