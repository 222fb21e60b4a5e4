"""One trial's side of the latency service: the gate, the cache and the target.

Evaluators reach the active client with :func:`current`; the runner opens one per trial
(:func:`open_client`) and makes it current with :func:`activate`. A client measures in
its own process under its node's gate, or sends the model to the search's service actor
when the search pins a target (see :mod:`~nascompress.latency.ray_services`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, Protocol

from nascompress.latency.cache import cache_key, onnx_structure_hash, torch_structure_hash
from nascompress.latency.gate import GateProtocol, local_state
from nascompress.latency.measure import (
    LatencyResult,
    LatencySetup,
    measure_torch_module,
    resolve_device,
)
from nascompress.latency.ort import measure_onnx_bytes, resolve_ort_device
from nascompress.latency.settings import LatencyServiceConfig

#: Longest pause between two tries of a training waiting for a measurement to end.
PAUSED_POLL_MAX_S = 0.25


class MeasureService(Protocol):
    """The search's measurement service, as a client calls it (an actor or a relay).

    ``measure(kind, payload, example, setup, key, trial_id)`` times ``payload`` (ONNX
    bytes for ``kind="onnx"``, a torch module for ``"torch"``) per the
    :meth:`LatencySetup.to_dict` ``setup`` under the service node's exclusive lease,
    looks in and fills the service's cache under ``key`` (None: no cache), and returns
    :meth:`LatencyResult.to_dict`.
    """

    def measure(self, kind: str, payload: Any, example: Any, setup: dict[str, Any],
                key: str | None, trial_id: str = "") -> dict[str, Any]: ...


class TrialLatency:
    """One trial's (or one service's) side of the gate, the cache and the target.

    Evaluators reach it with :func:`current`. Training code calls :meth:`start_training`
    once, :meth:`checkpoint` often (it is cheap: it contacts the gate at most every
    ``checkpoint_interval_s``) and :meth:`stop_training` at the end; measuring code calls
    :meth:`measure_onnx` / :meth:`measure_torch`, which look in the cache, release this
    trial's own shared lease, measure under the exclusive lease (here or in the service)
    and take the shared lease back.

    Args:
        config: the search's settings.
        backend: the gate (see :class:`~nascompress.latency.gate.GateProtocol`).
        service: the measurement service (:class:`MeasureService`), or None to
            measure here.
        holder: this client's name in the lease table.
        trial_id: recorded as ``measured_by`` with what this client measures.
    """

    def __init__(self, config: LatencyServiceConfig, *, backend: GateProtocol,
                 service: MeasureService | None = None,
                 holder: str | None = None, trial_id: str = "") -> None:
        self.config = config
        self.trial_id = trial_id
        self._backend = backend
        self._service = service
        self.holder = holder or f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._training = False
        self._holding = False
        self._last_contact = 0.0
        self.paused_s = 0.0
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    @property
    def gate_kind(self) -> str:
        if not self.config.exclusive:
            return "off"
        return "service" if self._service is not None else self.config.backend

    # -- training (shared lease) --------------------------------------------------------

    def start_training(self) -> None:
        """Take the shared lease (waiting while a measurement runs on the node)."""
        if not self.config.exclusive or self._training:
            return
        self._training = True
        self._acquire_shared()

    def checkpoint(self) -> None:
        """A point where training may pause for a measurement; cheap when called often."""
        if not self._training:
            return
        now = time.monotonic()
        if now - self._last_contact < self.config.checkpoint_interval_s:
            return
        self._acquire_shared()

    def stop_training(self) -> None:
        if not self._training:
            return
        self._training = False
        self._holding = False
        self._backend.release(self.holder)

    @contextlib.contextmanager
    def training(self) -> Iterator[TrialLatency]:
        self.start_training()
        try:
            yield self
        finally:
            self.stop_training()

    def _acquire_shared(self) -> None:
        started = time.monotonic()
        pause = self.config.poll_s
        while not self._backend.try_shared(self.holder):
            self._holding = False
            # A paused training asks less and less often: its calls (and the gate's
            # answers) are CPU work on the node being measured.
            time.sleep(pause)
            pause = min(2 * pause, PAUSED_POLL_MAX_S)
        self._holding = True
        self._last_contact = time.monotonic()
        self.paused_s += self._last_contact - started
        self._ensure_heartbeat()

    # -- measuring (exclusive lease) ----------------------------------------------------

    def measure_exclusive(self, run: Callable[[], LatencyResult]) -> LatencyResult:
        """Run ``run`` under the exclusive lease (or after ``max_wait_s`` without it)."""
        if not self.config.exclusive:
            return replace(run(), gate="off", exclusive=False, wait_s=0.0, cached=False)
        started = time.monotonic()
        granted = False
        try:
            while True:
                if self._backend.try_exclusive(self.holder):
                    granted = True
                    break
                if time.monotonic() - started >= self.config.max_wait_s:
                    break
                time.sleep(self.config.poll_s)
            waited = time.monotonic() - started
            if granted:
                self._holding = True
                self._ensure_heartbeat()
            else:
                self._backend.release(self.holder)  # leave the writers' queue
            result = run()
        finally:
            self._holding = False
            self._backend.release(self.holder)
        return replace(result, gate=self.config.backend, exclusive=granted, wait_s=waited,
                       cached=False)

    def measure_onnx(self, model: bytes, example, setup: LatencySetup) -> LatencyResult:
        """Latency of an ONNX model (bytes) on ONNX Runtime, per ``setup``."""
        # With a service the target decides what "auto" means; it is one fixed device.
        device = setup.device if self._service is not None else resolve_ort_device(setup.device)
        key = (cache_key(onnx_structure_hash(model), runtime="onnxruntime", setup=setup,
                         device=device) if self.config.cache else None)
        return self._measure("onnx", model, example, setup, key,
                             lambda: measure_onnx_bytes(model, example, setup))

    def measure_torch(self, model, example, setup: LatencySetup) -> LatencyResult:
        """Latency of a torch module in eager mode, per ``setup``."""
        device = setup.device if self._service is not None else resolve_device(setup.device)
        key = (cache_key(torch_structure_hash(model), runtime="torch", setup=setup,
                         device=device) if self.config.cache else None)
        return self._measure("torch", model, example, setup, key,
                             lambda: measure_torch_module(model, example, setup))

    def _measure(self, kind, payload, example, setup, key, run) -> LatencyResult:
        if key is not None:
            hit = self._cache_get(key)
            if hit is not None:
                return replace(LatencyResult.from_dict(hit), cached=True, wait_s=0.0)
        was_training = self._training
        if was_training:
            # Our own shared lease would keep the exclusive one from ever being granted
            # (here, or in the service when it runs on this node).
            self.stop_training()
        try:
            if self._service is not None:
                result = LatencyResult.from_dict(self._service.measure(
                    kind, payload, example, setup.to_dict(), key, self.trial_id))
                if self.config.exclusive:
                    result = replace(result, gate="service")
                return result
            found: dict[str, Any] = {}

            def run_unless_cached() -> LatencyResult:
                # Another trial may have measured the same model while this one waited.
                hit = self._cache_get(key) if key is not None else None
                if hit is None:
                    return run()
                found["hit"] = hit
                return LatencyResult.from_dict(hit)

            result = self.measure_exclusive(run_unless_cached)
            if "hit" in found:
                return replace(LatencyResult.from_dict(found["hit"]), cached=True, wait_s=0.0)
            result = replace(result, measured_by=self.trial_id)
            if key is not None:
                self._backend.cache_put(key, result.to_dict())
            return result
        finally:
            if was_training:
                self.start_training()

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        if self._service is not None:
            return None  # the service looks in its own cache
        return self._backend.cache_get(key)

    # -- liveness -----------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is not None or self._closed:
            return
        self._heartbeat = threading.Thread(target=self._beat, name="latency-gate-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        interval = self.config.lease_ttl_s / 4
        while not self._stop.wait(interval):
            if self._holding:
                with contextlib.suppress(Exception):  # a lost gate only costs exclusivity
                    self._backend.renew(self.holder)

    def close(self) -> None:
        """Release every lease and stop the heartbeat."""
        self._closed = True
        self._stop.set()
        self._training = False
        self._holding = False
        with contextlib.suppress(Exception):
            self._backend.release(self.holder)


# --------------------------------------------------------------------------- ambient


_CURRENT: contextvars.ContextVar[TrialLatency | None] = contextvars.ContextVar(
    "nascompress_latency", default=None)


def current() -> TrialLatency:
    """The active trial's latency client; outside a runner, a private in-process one.

    Outside a runner (an evaluator called directly) there is nobody to share the node
    with, so the gate is trivially exclusive, and nothing is cached.
    """
    active = _CURRENT.get()
    if active is not None:
        return active
    config = LatencyServiceConfig(cache=False, search_key=f"direct-{os.getpid()}")
    return TrialLatency(config, backend=local_state(config.search_key))


@contextlib.contextmanager
def activate(client: TrialLatency) -> Iterator[TrialLatency]:
    """Make ``client`` what :func:`current` returns in this thread; close it afterwards."""
    token = _CURRENT.set(client)
    try:
        yield client
    finally:
        _CURRENT.reset(token)
        client.close()
