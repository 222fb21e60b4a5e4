"""Address checks and the token file, without a cluster (see test_ray_start_cluster.py
for the real one)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from nascompress import cluster
from nascompress.config import ConfigError
from tests._procs import run_reaped

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("address", ["nohost", "host:", ":6379", "host:99999", "host:x"])
def test_malformed_addresses_are_named(address):
    with pytest.raises(ConfigError, match=r"^address: expected HOST:PORT"):
        cluster.check_cluster(address)


def test_another_ray_or_python_version_is_one_line():
    pytest.importorskip("ray")
    import ray

    with pytest.raises(ConfigError, match=r"^address: .* runs Ray 0\.1\.0, this process Ray "):
        cluster._check_versions("h:1", {"ray_version": "0.1.0"})
    with pytest.raises(ConfigError, match=r"^address: .* runs Python 2\.7\.18"):
        cluster._check_versions("h:1", {"ray_version": ray.__version__,
                                        "python_version": "2.7.18"})
    cluster._check_versions("h:1", {"ray_version": ray.__version__,
                                    "python_version": platform.python_version()})


def test_the_token_file_is_created_or_restricted_to_its_owner(clean_env, monkeypatch):
    token = clean_env / ".ray" / "auth_token"
    assert not cluster.token_available()
    assert cluster.secure_default_token() == token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text()) == 64
    assert cluster.token_available()
    token.chmod(0o644)  # as Ray writes it with a usual umask
    before = token.read_text()
    cluster.secure_default_token()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_text() == before
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    token.chmod(0o644)
    assert cluster.secure_default_token() is None  # not ours to touch then
    assert stat.S_IMODE(token.stat().st_mode) == 0o644


def test_token_from_the_environment(clean_env, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")
    assert cluster.token_available()
    assert cluster.secure_default_token() is None
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    path = clean_env / "tok"
    path.write_text("x" * 64)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert cluster.token_available()


def test_a_search_joins_its_address_else_ray_address_else_starts_its_own(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.search_address(None) is None
    assert cluster.search_address("h:1") == "h:1"
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert cluster.search_address(None) is None
    # As `ray job submit` sets it for its entrypoint; the config's address still wins.
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert cluster.search_address(None) == "auto"
    assert cluster.search_address("h:1") == "h:1"


def test_an_unreachable_ray_address_is_one_line_that_names_the_variable(monkeypatch):
    from nascompress.search.experiment import _check_cluster_address

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=r"^address: cannot reach .* RAY_ADDRESS") as caught:
        _check_cluster_address(None)
    assert "\n" not in str(caught.value)


LOCAL_INIT = """
import ray
from nascompress.cluster import init_ray
started = init_ray(None)
print("STARTED", started, ray.get_runtime_context().gcs_address)
ray.shutdown()
"""


@pytest.mark.ray
def test_a_local_search_starts_its_own_ray_beside_one_ray_start_recorded(tmp_path):
    """``ray start`` records its cluster in ``<ray temp dir>/ray_current_cluster``, and a
    crashed one leaves the record behind; Ray's plain ``ray.init()`` joins what it names
    (and refuses the local search's CPU count). The local search starts its own Ray."""
    pytest.importorskip("ray")
    # Short: Ray's socket paths under its temp dir must stay under 107 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="nasc-", dir="/tmp"))
    try:
        (ray_tmp / "ray").mkdir()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            recorded = f"127.0.0.1:{sock.getsockname()[1]}"
        (ray_tmp / "ray" / "ray_current_cluster").write_text(recorded)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
        env.update(RAY_TMPDIR=str(ray_tmp), HOME=str(tmp_path), RAY_USAGE_STATS_ENABLED="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            env.get("PYTHONPATH")])))
        done = run_reaped([sys.executable, "-c", LOCAL_INIT], timeout=300, env=env,
                          cwd=tmp_path)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    started = [line.split() for line in done.stdout.splitlines() if line.startswith("STARTED")]
    assert started and started[0][1] == "True", done.stdout
    assert started[0][2] != recorded
