"""The per-node gate: reader/writer leases with expiry, plus the measurement cache.

Trainings and measurements of a search share a node's CPUs; a latency measured while two
other trials train next to it measures the contention, not the model. The gate gives
training trials *shared* leases and a measurement the *exclusive* one (see
:class:`LeaseTable` for the rules). Every backend of the gate (in-process
:class:`GateState`, the per-node Ray actor in :mod:`~nascompress.latency.ray_services`,
the relay of a trial's child process in :mod:`~nascompress.latency.relay`) speaks the one
:class:`GateProtocol`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


class GateProtocol(Protocol):
    """What a latency client asks of a gate; every call returns at once (never blocks).

    A refused client tries again later (polling), so a dead client never leaves a blocked
    call behind in a gate actor, and an actor needs no more than one thread.

    * ``try_shared(holder) -> bool``: take or keep a shared (training) lease; refused
      while a measurement holds or waits for the exclusive lease, which also drops the
      holder's old shared lease.
    * ``try_exclusive(holder) -> bool``: queue for, or take, the exclusive (measuring)
      lease; granted to the longest-waiting writer once no shared lease is left.
    * ``renew(holder) -> bool``: extend every lease ``holder`` has; False when it has
      none left (it expired).
    * ``release(holder) -> None``: drop every lease and queue place of ``holder``.
    * ``cache_get(key) -> dict | None`` / ``cache_put(key, value) -> None``: the search's
      measurement cache on this gate (:meth:`LatencyResult.to_dict` values; the first
      value stored for a key wins).
    """

    def try_shared(self, holder: str) -> bool: ...

    def try_exclusive(self, holder: str) -> bool: ...

    def renew(self, holder: str) -> bool: ...

    def release(self, holder: str) -> None: ...

    def cache_get(self, key: str) -> dict[str, Any] | None: ...

    def cache_put(self, key: str, value: dict[str, Any]) -> None: ...


class LeaseTable:
    """Reader/writer leases with expiry: the gate's whole state, no I/O, no threads.

    ``try_shared`` / ``try_exclusive`` never block: they grant or refuse at once, and a
    refused client tries again later. Rules:

    * a shared lease is refused while a measurement holds the exclusive lease or waits
      for it (writer preference: measurements are short, trainings long), and refusing
      drops the holder's old shared lease (it is pausing);
    * the exclusive lease goes to the longest-waiting writer once no shared lease is
      left; asking for it drops the asker's own shared lease;
    * every lease, and every writer's place in the queue, expires ``ttl_s`` after its
      last grant or renewal (``renew`` extends whatever the holder has).

    Args:
        ttl_s: lease lifetime without renewal.
        clock: seconds, monotonic; injectable for tests.
    """

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self._shared: dict[str, float] = {}
        self._waiting: dict[str, float] = {}  # insertion order = arrival order
        self._writer: tuple[str, float] | None = None

    def _purge(self, now: float) -> None:
        self._shared = {h: t for h, t in self._shared.items() if t > now}
        self._waiting = {h: t for h, t in self._waiting.items() if t > now}
        if self._writer is not None and self._writer[1] <= now:
            self._writer = None

    def try_shared(self, holder: str) -> bool:
        now = self._clock()
        self._purge(now)
        if self._writer is not None or self._waiting:
            self._shared.pop(holder, None)
            return False
        self._shared[holder] = now + self.ttl_s
        return True

    def try_exclusive(self, holder: str) -> bool:
        now = self._clock()
        self._purge(now)
        self._shared.pop(holder, None)
        if self._writer is not None and self._writer[0] == holder:
            self._writer = (holder, now + self.ttl_s)
            return True
        self._waiting[holder] = now + self.ttl_s
        if self._writer is None and not self._shared and next(iter(self._waiting)) == holder:
            del self._waiting[holder]
            self._writer = (holder, now + self.ttl_s)
            return True
        return False

    def renew(self, holder: str) -> bool:
        """Extend every lease ``holder`` has; False when it has none (it expired)."""
        now = self._clock()
        self._purge(now)
        found = False
        if holder in self._shared:
            self._shared[holder] = now + self.ttl_s
            found = True
        if holder in self._waiting:
            self._waiting[holder] = now + self.ttl_s
            found = True
        if self._writer is not None and self._writer[0] == holder:
            self._writer = (holder, now + self.ttl_s)
            found = True
        return found

    def release(self, holder: str) -> None:
        self._shared.pop(holder, None)
        self._waiting.pop(holder, None)
        if self._writer is not None and self._writer[0] == holder:
            self._writer = None

    def state(self) -> dict[str, Any]:
        """Who holds what right now (expired leases left out)."""
        self._purge(self._clock())
        return {"shared": sorted(self._shared), "waiting": list(self._waiting),
                "writer": self._writer[0] if self._writer else None}


class GateState:
    """A lease table plus the measurement cache: what one gate (or service) holds.

    Implements :class:`GateProtocol`. Thread-safe; the in-process backend and the Ray
    actors both wrap one.
    """

    def __init__(self, *, ttl_s: float) -> None:
        self._lock = threading.Lock()
        self.table = LeaseTable(ttl_s=ttl_s)
        self.cache: dict[str, dict[str, Any]] = {}
        self.stats = {"cache_hits": 0, "cache_misses": 0, "exclusive_grants": 0}

    def try_shared(self, holder: str) -> bool:
        with self._lock:
            return self.table.try_shared(holder)

    def try_exclusive(self, holder: str) -> bool:
        with self._lock:
            granted = self.table.try_exclusive(holder)
            self.stats["exclusive_grants"] += int(granted)
            return granted

    def renew(self, holder: str) -> bool:
        with self._lock:
            return self.table.renew(holder)

    def release(self, holder: str) -> None:
        with self._lock:
            self.table.release(holder)

    def cache_get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self.cache.get(key)
            self.stats["cache_hits" if hit is not None else "cache_misses"] += 1
            return None if hit is None else dict(hit)

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self.cache.setdefault(key, dict(value))

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {**self.table.state(), "cached": len(self.cache), **self.stats}


# --------------------------------------------------------------------------- in-process gates


_LOCAL_STATES: dict[str, GateState] = {}
_LOCAL_LOCK = threading.Lock()


def local_state(search_key: str, *, ttl_s: float = 10.0) -> GateState:
    """The in-process gate of ``search_key`` (created on first use)."""
    with _LOCAL_LOCK:
        if search_key not in _LOCAL_STATES:
            _LOCAL_STATES[search_key] = GateState(ttl_s=ttl_s)
        return _LOCAL_STATES[search_key]


def drop_local_state(search_key: str) -> None:
    with _LOCAL_LOCK:
        _LOCAL_STATES.pop(search_key, None)

