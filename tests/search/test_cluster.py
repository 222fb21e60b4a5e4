"""A search across a 2-node Ray cluster on loopback (Ray's own cluster utilities).

Runs in a child process: the cluster needs its own Ray driver, while other tests in
this session share a plain local Ray.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray")

SCRIPT = textwrap.dedent("""
    import json, sys
    from ray.cluster_utils import Cluster
    from nascompress import cli

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        code = cli.main(["search", "--config", sys.argv[1], "--address", cluster.address,
                         "--output-dir", sys.argv[2], "--name", "cluster", "--quiet"])
    finally:
        cluster.shutdown()
    sys.exit(code)
""")

CONFIG = """
trials: 6
max_concurrent: 2
strategy: {name: random}
evaluator:
  options:
    epochs: 2
    finetune_epochs: 1
    teacher_epochs: 1
    latency: {min_repeats: 3, max_repeats: 10, warmup: 1, time_cap_s: 0.2}
"""


@pytest.mark.ray
def test_search_runs_on_both_nodes_and_records_on_the_driver(tmp_path):
    config = tmp_path / "experiment.yaml"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(config), str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                               # Ray would swap 127.0.0.1 for the machine's address when
                               # joining; this keeps the head, nodes and driver on loopback.
                               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "cluster"
    trials = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 6 and all(t["state"] == "COMPLETE" for t in trials)
    assert len({t["metrics"]["node_id"] for t in trials}) == 2
    for trial in trials:  # artifacts came back to the driver's folder with the results
        artifact = run / "models" / trial["metrics"]["artifact"]
        assert artifact.stat().st_size == trial["objectives"]["size_bytes"]
