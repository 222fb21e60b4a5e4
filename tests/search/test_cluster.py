"""A search across a 2-node Ray cluster on loopback (Ray's own cluster utilities).

Runs in a child process: the cluster needs its own Ray driver, while other tests in
this session share a plain local Ray.
"""

import os
import sys
import textwrap

import pytest

from tests._helpers import assert_ran_on_two_nodes, write_tiny_config
from tests._procs import run_reaped

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



@pytest.mark.ray
def test_search_runs_on_both_nodes_and_records_on_the_driver(tmp_path):
    config = tmp_path / "experiment.yaml"
    write_tiny_config(config, trials=6, max_concurrent=2, strategy={"name": "random"})
    # A token at hand, and a cluster that asks for none: the driver must join it plainly
    # (in token mode it connects, but its actors on the other node never start).
    token = tmp_path / "auth_token"
    token.write_text("0" * 64)
    token.chmod(0o600)
    done = run_reaped([sys.executable, "-c", SCRIPT, str(config), str(tmp_path)],
                          timeout=300,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                               "RAY_AUTH_TOKEN_PATH": str(token),
                               # Ray would swap 127.0.0.1 for the machine's address when
                               # joining; this keeps the head, nodes and driver on loopback.
                               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "cluster"
    assert_ran_on_two_nodes(run, trials=6)
