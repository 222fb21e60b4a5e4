"""What a local search's Ray exposes: the sockets it listens on and its token file,
checked against the README's security section."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._helpers import write_tiny_config
from tests._procs import descendants, kill_all

pytest.importorskip("torch")
pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|\[::ffff:127\.\d+\.\d+\.\d+\]|\[::1\]):\d+$")



def _listening(pids: set[int]) -> dict[str, set[str]]:
    """Listening TCP addresses of ``pids``, by process name (``ss -ltnp``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    found: dict[str, set[str]] = {}
    for row in out.splitlines():
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+),', row):
            if int(pid) in pids:
                found.setdefault(name, set()).add(row.split()[3])
    return found


@pytest.mark.ray
def test_a_local_search_listens_on_loopback_only_with_a_private_token(tmp_path):
    if subprocess.run(["ss", "-V"], capture_output=True).returncode != 0:
        pytest.skip("needs ss (iproute2)")
    config = tmp_path / "experiment.yaml"
    write_tiny_config(config, trials=4, max_concurrent=2, strategy={"name": "random"})
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS"))}
    # A fresh user: no token yet; the search makes one (mode 0600) in this HOME.
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nascompress.cli", "search", "--config", str(config),
         "--output-dir", str(tmp_path / "results"), "--name", "sockets"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    seen: dict[str, set[str]] = {}
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:
            pids |= descendants([proc.pid])
            for name, addresses in _listening(descendants([proc.pid])).items():
                seen.setdefault(name, set()).update(addresses)
            time.sleep(0.5)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            kill_all(descendants([proc.pid]))
        kill_all(pids)  # anything Ray left behind
    assert proc.returncode == 0, output[-3000:]
    print("listening:", {name: sorted(a) for name, a in seen.items()})
    # Ray's own servers were seen (the check is not vacuous) ...
    assert {"gcs_server", "raylet"} <= set(seen), seen
    # ... and nothing listens beyond loopback (what the README's security section says).
    beyond = {name: sorted(a for a in addresses if not LOOPBACK.match(a))
              for name, addresses in seen.items()}
    assert not any(beyond.values()), beyond
    token = home / ".ray" / "auth_token"
    assert token.is_file() and stat.S_IMODE(token.stat().st_mode) == 0o600
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Security.**"):]
    assert "loopback" in section and "0600" in section
