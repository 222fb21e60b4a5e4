"""Processes a test started outside Python's subprocess handles (``ray start`` daemons):
found by a unique tag in their command line, ended by their process ids (never by name,
never ``ray stop``, which would end every Ray on the machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pids) -> set[int]:
    """``pids`` and every process below them."""
    tree, found, todo = _children(), set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(tree.get(pid, []))
    return found


def tagged(tag: str) -> set[int]:
    """Processes whose command line contains ``tag``, and their descendants."""
    hits = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if tag.encode() in cmdline.read_bytes():
                hits.add(int(cmdline.parent.name))
        except OSError:
            continue
    hits.discard(os.getpid())
    return descendants(hits)


def kill_all(pids, *, grace_s: float = 5.0) -> None:
    """SIGTERM ``pids``, then SIGKILL whatever is left after ``grace_s``."""
    pids = set(pids) - {os.getpid()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)
        pids = {p for p in pids if Path(f"/proc/{p}").exists()
                and "zombie" not in _state(p)}
        if not pids:
            return


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


def run_reaped(args, *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)``
    that also ends every process the child started (the GCS, raylet and workers of a Ray
    it started), both after it exits and when the timeout kills it. A Ray left running
    by a killed child would slow every later test, and Ray's plain ``ray.init()`` would
    find it and try to join it."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)
    started: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while True:
            started |= descendants([proc.pid])
            try:
                stdout, stderr = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(args, timeout) from None
    finally:
        kill_all(started | (descendants([proc.pid]) if proc.poll() is None else set()))
        proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
