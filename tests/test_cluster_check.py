"""Address checks and the token file, without a cluster (see test_ray_start_cluster.py
for the real one)."""

from __future__ import annotations

import platform
import stat

import pytest

from nascompress import cluster
from nascompress.config import ConfigError


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
