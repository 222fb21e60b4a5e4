"""Joining a Ray cluster, and starting a local one that exposes as little as Ray allows.

Ray 2.60 turns on token authentication (``RAY_AUTH_MODE=token``) for a cluster started
by ``ray.init()``, and for one started by ``ray start --head`` when a token already
exists; a process that joins without the token is refused (``InvalidAuthToken``), and
``ray.init(address=...)`` then retries for about twenty seconds before raising. So
before joining, :func:`check_cluster` asks the cluster's GCS, in a child process with a
deadline, who it is: a refused connection, a rejected token, a port that does not answer
as Ray, or another Ray/Python version become one line naming ``address``.

Token sources are Ray's own: ``RAY_AUTH_TOKEN``, the file at ``RAY_AUTH_TOKEN_PATH``, or
``~/.ray/auth_token``. When the cluster wants a token, one of them holds it and
``RAY_AUTH_MODE`` is unset, the driver turns token mode on for itself (what
``RAY_AUTH_MODE=token`` would do).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

#: Seconds the whole check may take (connect, then the GCS probe in a child process).
CHECK_TIMEOUT_S = 9.0
#: address -> whether joining it needs token mode, as :func:`check_cluster` found.
_TOKEN_NEEDED: dict[str, bool] = {}

_AUTH_HELP = (
    "the cluster uses token authentication: give this process the cluster's token "
    "(copy the head's ~/.ray/auth_token to this machine, mode 600, or set RAY_AUTH_TOKEN) "
    "and set RAY_AUTH_MODE=token"
)


def _config_error(message: str):
    from nascompress.config import ConfigError

    return ConfigError(message)


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; ``ConfigError`` otherwise."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _config_error(
            f"address: expected HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT, "
            f"but got {address!r}"
        )
    return host.strip("[]"), int(port)


def token_available() -> bool:
    """Whether one of Ray's token sources holds a token for this process."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidate = Path(path).expanduser() if path else Path.home() / ".ray" / "auth_token"
    try:
        return bool(candidate.read_text().strip())
    except OSError:
        return False


def _probe(address: str, *, token_mode: bool | None, timeout_s: float) -> dict:
    """Ask the GCS at ``address`` for its versions, in a child process (Ray's client
    retries on its own; the child is killed at the deadline)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    if token_mode is not None:
        env["RAY_AUTH_MODE"] = "token" if token_mode else "disabled"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
            timeout=timeout_s, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": "crash", "message": (done.stderr.strip().splitlines() or ["?"])[-1]}


_PROBE = """
import json, sys
try:
    from ray._raylet import GcsClient
    from ray._common.usage import usage_lib
    client = GcsClient(address=sys.argv[1])
    print(json.dumps({"metadata": usage_lib.get_cluster_metadata(client) or {}}))
except Exception as exc:
    kind = "auth" if type(exc).__name__ == "AuthenticationError" else "other"
    print(json.dumps({"error": kind, "message": str(exc).split(".")[0][:200]}))
"""


def check_cluster(address: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> bool:
    """Fail fast, in one line, when the Ray cluster at ``address`` cannot be joined.

    Returns whether the driver must join in token mode. ``auto`` is passed through to Ray
    unchecked; ``ray://`` (Ray Client) addresses are only checked for a connection.

    Raises:
        ConfigError: the address is malformed, refuses the connection, does not answer
            as a Ray GCS, rejects this process's token (or the lack of one), or runs
            another Ray or Python version than this process.
    """
    if address == "auto":
        return False
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=min(3.0, timeout_s / 3)):
            pass
    except OSError as exc:
        raise _config_error(
            f"address: cannot reach a Ray cluster at {address!r} ({exc}); start one with "
            "'ray start --head' or check host, port and firewall"
        ) from None
    if address.startswith("ray://"):
        return False
    mode = os.environ.get("RAY_AUTH_MODE", "").lower() or None
    deadline = time.monotonic() + max(1.0, timeout_s - 2)
    token_mode = None
    if mode is None:
        # Without a mode, join as the cluster asks: plain first, and with the token at
        # hand only when the cluster wants one. (A token-mode driver does connect to a
        # cluster without authentication, but its actors on other nodes then never
        # start.)
        answer = _probe(address, token_mode=False,
                        timeout_s=max(1.0, deadline - time.monotonic()))
        if answer.get("error") == "auth" and token_available():
            token_mode = True
            answer = _probe(address, token_mode=True,
                            timeout_s=max(1.0, deadline - time.monotonic()))
    else:
        answer = _probe(address, token_mode=None,
                        timeout_s=max(1.0, deadline - time.monotonic()))
    if answer.get("error") == "timeout":
        raise _config_error(
            f"address: {address!r} accepts connections but did not answer as a Ray cluster "
            f"within {timeout_s:.0f}s; give the head's GCS address (the HOST:PORT that "
            "'ray start --head' prints, 6379 by default)"
        )
    if answer.get("error") == "auth":
        have = "rejected this process's token" if (token_mode or mode == "token") else (
            "asks for a token and this process has none")
        raise _config_error(f"address: the Ray cluster at {address!r} {have}; {_AUTH_HELP}")
    if "error" in answer:
        raise _config_error(
            f"address: cannot join the Ray cluster at {address!r} "
            f"({answer.get('message', answer['error'])}); check that it is a Ray head's "
            "GCS address"
        )
    _check_versions(address, answer.get("metadata") or {})
    _TOKEN_NEEDED[address] = bool(token_mode)
    return bool(token_mode)


def needs_token(address: str) -> bool:
    """Whether joining ``address`` needs token mode, as :func:`check_cluster` found it
    (checked now if it was not checked in this process)."""
    if address not in _TOKEN_NEEDED:
        check_cluster(address)
    return _TOKEN_NEEDED.get(address, False)


def _check_versions(address: str, metadata: dict) -> None:
    import platform

    import ray

    theirs_ray = metadata.get("ray_version")
    theirs_py = metadata.get("python_version")
    mine_py = platform.python_version()
    if theirs_ray and theirs_ray != ray.__version__:
        raise _config_error(
            f"address: the Ray cluster at {address!r} runs Ray {theirs_ray}, this process "
            f"Ray {ray.__version__}; install the same Ray version on the driver and every node"
        )
    if theirs_py and theirs_py != mine_py:
        raise _config_error(
            f"address: the Ray cluster at {address!r} runs Python {theirs_py}, this process "
            f"Python {mine_py}; Ray needs the same Python version on the driver and every node"
        )


def enable_token_mode() -> None:
    """Turn Ray's token authentication on for this process (``RAY_AUTH_MODE=token``)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray caches its config at import: refresh it as ray.init would
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):
        pass


def secure_default_token() -> Path | None:
    """Make the token a local Ray will use readable by its owner only; returns its path.

    ``ray.init()`` turns token authentication on and writes ``~/.ray/auth_token`` with the
    process umask (usually 0644: every local user could read it and join the cluster).
    A missing token is created here first, mode 0600; an existing one owned by this user
    is restricted to 0600. Nothing is done when ``RAY_AUTH_MODE`` is set to something else
    than ``token`` or the token comes from ``RAY_AUTH_TOKEN``.
    """
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    if mode not in ("", "token") or os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return None
    path_env = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(path_env).expanduser() if path_env else Path.home() / ".ray" / "auth_token"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created meanwhile by another process
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(0o600)
    except OSError:
        return None
    return path


def loopback_only() -> None:
    """Keep a local Ray's node address on 127.0.0.1.

    Ray replaces a loopback ``node_ip_address`` with the machine's address unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (which, despite its name, only decides this
    on Linux); the runtime-env and dashboard agents then bind to that address. The
    variable is read at import, so it is set for the processes Ray starts and the
    constant is updated in this one.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except ImportError:
        pass


def search_address(address: str | None) -> str | None:
    """The Ray cluster a search on the ``ray`` runner joins, or None to start its own.

    ``address`` (the config's, or ``--address``) when given; else ``RAY_ADDRESS`` when set,
    Ray's own variable (``ray job submit`` sets it to ``auto`` for its entrypoint, so a
    search submitted as a Ray job runs on that job's cluster); else None. A Ray that only
    happens to run on this machine is never joined: Ray's plain ``ray.init()`` would join
    the last cluster ``ray start`` recorded (even the stale record of a dead one) and
    then refuse the local search's CPU count with a message that names neither.
    """
    return address or os.environ.get("RAY_ADDRESS") or None


def init_ray(address: str | None) -> bool:
    """Start (or join, given an ``address``: see :func:`search_address`) Ray; returns True
    when this call started it.

    A local Ray keeps its dashboard off and its node address on 127.0.0.1 (its agents
    bind there); its GCS, raylet and workers still listen on every interface (Ray 2.60
    has no setting for them), behind Ray's token authentication, whose token file is
    made readable by its owner only (:mod:`nascompress.cluster`). Joining a
    cluster (``address``) turns token mode on when the cluster's token is at hand.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Our progress lines are the console output; Tune's own tables would repeat them.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        if not os.environ.get("RAY_AUTH_MODE") and address != "auto" and needs_token(address):
            enable_token_mode()
        ray.init(address=address, log_to_driver=False)
    else:
        loopback_only()
        secure_default_token()
        # "local": a new Ray, whatever cluster this machine runs or recorded last.
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False, _node_ip_address="127.0.0.1")
    return True
