"""Latency calls of a trial's child process, answered by its parent.

A trial run with a time limit evaluates in a spawned child that is not connected to Ray;
the child's :class:`RelayBackend` plays the gate and the service (it speaks
:class:`~nascompress.latency.gate.GateProtocol` and
:class:`~nascompress.latency.client.MeasureService`) by message, and the parent's
:class:`RelayServer` forwards each call to the search's real gate and service.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from nascompress.latency.connection import connect
from nascompress.latency.settings import LatencyServiceConfig


class RelayBackend:
    """Gate, cache and service calls of a trial's child process, answered by its parent.

    A trial run with a time limit evaluates in a spawned child that is not connected to
    Ray; it sends each call as a ``("latency", op, args)`` message on the trial's queue
    and waits for the answer on ``replies``. One call at a time (the heartbeat thread
    and the trial share the pipe).
    """

    def __init__(self, messages, replies) -> None:
        self._messages = messages
        self._replies = replies
        self._lock = threading.Lock()

    def _call(self, op: str, *args):
        with self._lock:
            self._messages.put(("latency", op, args))
            ok, value = self._replies.get()
        if not ok:
            raise RuntimeError(f"latency {op} failed in the trial's parent: {value}")
        return value

    def try_shared(self, holder):
        return self._call("try_shared", holder)

    def try_exclusive(self, holder):
        return self._call("try_exclusive", holder)

    def renew(self, holder):
        return self._call("renew", holder)

    def release(self, holder):
        return self._call("release", holder)

    def cache_get(self, key):
        return self._call("cache_get", key)

    def cache_put(self, key, value):
        return self._call("cache_put", key, value)

    def measure(self, kind, payload, example, setup, key, trial_id=""):
        return self._call("measure", kind, payload, example, setup, key, trial_id)


class RelayServer:
    """The parent's side of :class:`RelayBackend`: forwards calls, remembers holders.

    :meth:`close` releases every holder the child used, so a child killed at its time
    limit leaves no lease behind (its heartbeat would have stopped anyway; this only
    spares the node ``lease_ttl_s`` of waiting).
    """

    def __init__(self, config: LatencyServiceConfig) -> None:
        self.config = config
        self._backend, self._service = connect(config)
        self._holders: set[str] = set()

    @property
    def has_service(self) -> bool:
        return self._service is not None

    def handle(self, op: str, args: tuple) -> tuple[bool, Any]:
        try:
            if op in ("try_shared", "try_exclusive", "renew", "release"):
                self._holders.add(args[0])
            if op == "measure":
                return True, self._service.measure(*args)
            return True, getattr(self._backend, op)(*args)
        except Exception as exc:  # answered to the child, which raises it there
            return False, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        for holder in self._holders:
            with contextlib.suppress(Exception):
                self._backend.release(holder)
