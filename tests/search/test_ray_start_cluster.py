"""The README's cluster steps with real ``ray start`` processes (a head and a worker on
127.0.0.1, token authentication on), a search joining through ``--address``, and the
one-line answers for addresses that cannot be joined.

Every process started here is ended by its process id (found by the test's own
``--temp-dir`` in its command line), never with ``ray stop``, which would end every Ray
on the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests._helpers import assert_ran_on_two_nodes, write_tiny_config
from tests._procs import kill_all, tagged

pytest.importorskip("torch")
pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
#: This checkout, first on every started process's path (drivers and Ray workers), so
#: that they run the code under test rather than another installed copy.
ROOT = Path(__file__).resolve().parents[2]



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_start_cluster():
    """A head and a worker node, each its own ``ray start`` (1 CPU each), token auth on."""
    if shutil.which(RAY) is None:
        pytest.skip("no ray executable beside the interpreter")
    # Short: Ray's socket paths under the temp dir must stay under 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="nascray-", dir="/tmp"))
    token = temp / "auth_token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32).hex().encode())
    os.close(fd)
    # The token reaches every node and the driver as the README says: a file (or
    # RAY_AUTH_TOKEN) and RAY_AUTH_MODE=token.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    port = _free_port()
    # Two nodes on one machine, each on its own loopback address: Ray replaces 127.0.0.1
    # by the machine's address (unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which a
    # joining node refuses) but leaves 127.0.0.2 and 127.0.0.3 as they are. Their GCS and
    # raylets still listen on every interface (Ray binds to loopback only for a node at
    # 127.0.0.1): the random token guards them.
    address = f"127.0.0.2:{port}"
    common = ["--num-cpus=1", f"--temp-dir={temp}", "--disable-usage-stats"]
    nodes = [(["--head", f"--port={port}", "--include-dashboard=false",
               "--node-ip-address=127.0.0.2"], {}),
             ([f"--address={address}", "--node-ip-address=127.0.0.3"], {})]
    try:
        for args, extra in nodes:
            ports = [f"--dashboard-agent-listen-port={_free_port()}",
                     f"--metrics-export-port={_free_port()}"]
            done = subprocess.run([RAY, "start", *args, *common, *ports], env={**env, **extra},
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-3000:]
        yield {"address": address, "env": env, "token": token}
    finally:
        kill_all(tagged(str(temp)))
        shutil.rmtree(temp, ignore_errors=True)


def _search(args, env, cwd, timeout=400):
    return subprocess.run([sys.executable, "-m", "nascompress.cli", "search", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.mark.cluster
@pytest.mark.ray
def test_search_joins_a_ray_start_cluster_and_runs_on_both_nodes(ray_start_cluster, tmp_path):
    config = tmp_path / "experiment.yaml"
    write_tiny_config(config, trials=6, max_concurrent=2, strategy={"name": "random"})
    # The driver is given the token only (RAY_AUTH_MODE unset): it turns token mode on.
    env = {k: v for k, v in ray_start_cluster["env"].items() if k != "RAY_AUTH_MODE"}
    started = time.monotonic()
    done = _search(["--config", str(config), "--address", ray_start_cluster["address"],
                    "--output-dir", str(tmp_path), "--name", "cluster", "--quiet"],
                   env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"search through --address: {time.monotonic() - started:.1f}s")
    run = tmp_path / "cluster"
    assert_ran_on_two_nodes(run, trials=6)


def _one_line_refusal(done, output_dir):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    # Refused before anything ran: no run folder, no teacher, no trial.
    assert not [p for p in output_dir.rglob("*") if p.name in ("run.json", "teacher.pt",
                                                               "trials.jsonl")]
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1 and "address" in lines[0], lines
    return lines[0]


@pytest.mark.cluster
@pytest.mark.ray
def test_a_cluster_that_cannot_be_joined_answers_in_one_line(ray_start_cluster, tmp_path):
    env = {k: v for k, v in ray_start_cluster["env"].items()
           if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    cases = {
        "no token": ({}, ray_start_cluster["address"], "token"),
        "wrong token": ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
                        ray_start_cluster["address"], "rejected"),
        "refused": ({}, f"127.0.0.1:{_free_port()}", "cannot reach"),
        # No --address: RAY_ADDRESS is the address, checked alike, and the line says so.
        "refused RAY_ADDRESS": ({"RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}, None,
                                "from the environment"),
    }
    for name, (extra, address, expected) in cases.items():
        where = ["--address", address] if address else []
        done = _search([*where, "--output-dir", str(tmp_path), "--trials", "1"],
                       {**env, **extra}, tmp_path, timeout=60)
        line = _one_line_refusal(done, tmp_path)
        assert expected in line, (name, line)
