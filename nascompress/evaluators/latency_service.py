"""Latency you can trust: measurements that own their hardware, a pinned target, a cache.

Three parts, used by every trial through one ambient object (:func:`current`):

**The gate** (per node). Trainings and measurements of a search share a node's CPUs; a
latency measured while two other trials train next to it measures the contention, not
the model. A :class:`LeaseTable` implements a reader/writer rule: a training trial holds
a *shared* lease while it trains and renews it at cheap checkpoints (at most every
``checkpoint_interval_s``, from inside the batch loop and between pipeline phases); a
measurement asks for the *exclusive* lease, which is granted once every shared lease is
released. A waiting measurement blocks new shared leases (writer preference), so a
training that reaches its next checkpoint gives its lease back and pauses until the
measurement is over. Every lease expires ``lease_ttl_s`` after its last renewal; a
heartbeat thread renews the leases of a live process, so a trial that dies while holding
one (killed worker, lost node) stops blocking the node after at most ``lease_ttl_s``,
without any liveness protocol between processes. A measurement never waits more than
``max_wait_s``: after that it is taken anyway and recorded with ``latency_exclusive:
false``.

Under Ray the table lives in one named actor per node (created by the driver for every
node alive at the start, lazily for nodes that join later); the local runner uses the
same table in-process behind a lock. Clients poll the table (non-blocking calls, a few
tens of milliseconds apart while they wait) rather than block inside it, so a dead
client can never leave a blocked call behind in the actor, and the actor never needs
more than one thread.

**The target.** With ``device_resource`` (a Ray custom resource, e.g. ``latency_target``
declared only on the deployment node) every measurement of the search runs in one
service actor scheduled with that resource: the trial ships the exported ONNX bytes
(or, for the ``torch`` runtime, the module) and gets the :class:`LatencyResult` back.
The service measures under its own node's gate. Without it, the trial measures in its
own process under its node's gate.

**The cache.** Results are keyed by a hash of the model's *structure* (the ONNX graph
with the values of its weight tensors left out: ops, attributes, shapes and data types
stay), the runtime, the resolved device, the ONNX Runtime / torch version and the whole
:class:`LatencySetup`. Dense kernels do the same work whatever the weight values, so two
trials that differ only in training (distillation settings, sparsity masks, bit-widths
below 8 that all run on the int8 path) are timed once. The cache lives where the
measurements happen: in the node's gate actor, in the service actor, or in-process for
the local runner; it lasts one search. Reused results say ``latency_cached: true``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nascompress.evaluators.latency import LatencyResult, LatencySetup

BACKENDS = ("local", "ray")
GATE_PREFIX = "nascompress-gate-"
SERVICE_PREFIX = "nascompress-latency-"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
#: Longest pause between two tries of a training waiting for a measurement to end.
PAUSED_POLL_MAX_S = 0.25
#: Fraction of the custom resource the service actor takes: any positive amount pins it
#: to a node that declares the resource, and leaves the rest to whoever else needs it.
SERVICE_RESOURCE_AMOUNT = 0.01


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LatencyServiceConfig:
    """How the trials of one search measure latency; picklable, shipped with each trial.

    Attributes:
        backend: ``"local"`` (in-process gate, the local runner) or ``"ray"`` (one gate
            actor per node).
        exclusive: take the exclusive lease around each measurement (trainings of this
            search on the node pause); ``False`` measures whenever asked.
        cache: reuse the result of a structurally identical model measured earlier.
        device_resource: Ray custom resource that places the single measurement service
            actor (``backend="ray"`` only).
        search_key: names the gate and service actors of this search.
        lease_ttl_s: a lease not renewed for this long is dropped (dead holders).
        max_wait_s: longest wait for the exclusive lease before measuring anyway.
        checkpoint_interval_s: a training contacts the gate at most this often.
        poll_s: pause between two tries of a waiting client.
    """

    backend: str = "local"
    exclusive: bool = True
    cache: bool = True
    device_resource: str | None = None
    search_key: str = "default"
    lease_ttl_s: float = 10.0
    max_wait_s: float = 120.0
    checkpoint_interval_s: float = 0.1
    poll_s: float = 0.02

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, but got {self.backend!r}")
        if self.device_resource is not None and self.backend != "ray":
            raise ValueError(
                f"latency.device_resource={self.device_resource!r} needs the Ray runner (it "
                "names a Ray custom resource); use --runner ray or leave it unset"
            )
        for name in ("lease_ttl_s", "max_wait_s", "checkpoint_interval_s", "poll_s"):
            value = getattr(self, name)
            low_ok = value >= 0 if name == "checkpoint_interval_s" else value > 0
            if isinstance(value, bool) or not isinstance(value, int | float) or not low_ok:
                bound = ">= 0" if name == "checkpoint_interval_s" else "> 0"
                raise ValueError(f"{name} must be a number {bound}, but got {value!r}")


# --------------------------------------------------------------------------- lease table


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

    Thread-safe; the in-process backend and the Ray actors both wrap one.
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


# --------------------------------------------------------------------------- cache keys


def onnx_structure_hash(model: bytes | str | os.PathLike[str]) -> str:
    """SHA-256 of an ONNX model with the values of its weight tensors left out.

    Initializers keep their names, shapes and data types; their data is dropped, except
    for int64 tensors (shapes, axes: they change what the graph computes). Node
    attributes, including constant tensors, are kept.
    """
    import onnx

    data = Path(model).read_bytes() if not isinstance(model, bytes) else model
    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    for tensor in proto.graph.initializer:
        if tensor.data_type == onnx.TensorProto.INT64:
            continue
        for name in ("raw_data", "float_data", "int32_data", "string_data", "double_data",
                     "uint64_data"):
            tensor.ClearField(name)
    # Their order follows the module's parameter registration, which re-registering a
    # parameter (sparsity masks, fake quantization) changes without changing the graph.
    ordered = sorted(proto.graph.initializer, key=lambda t: t.name)
    proto.graph.ClearField("initializer")
    proto.graph.initializer.extend(ordered)
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def torch_structure_hash(model) -> str:
    """SHA-256 of a module's printed structure and its tensors' names, shapes and types."""
    parts = [repr(model)]
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cache_key(model_key: str, *, runtime: str, setup: LatencySetup, device: str) -> str:
    """The cache key of one measurement: model structure, runtime and version, setup."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        version = ort.__version__
    else:
        import torch

        version = torch.__version__
    text = json.dumps({"model": model_key, "runtime": runtime, "version": version,
                       "device": device, "setup": setup.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- measuring


def resolve_ort_device(device: str) -> str:
    """``"cpu"`` / ``"cuda"`` for ONNX Runtime: ``"auto"`` picks CUDA when its provider exists.

    Raises:
        ValueError: ``"cuda"`` was asked for but this ONNX Runtime build has no
            ``CUDAExecutionProvider`` (the CPU-only ``onnxruntime`` wheel, or no GPU).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        return "cuda" if CUDA_PROVIDER in available else "cpu"
    if device == "cuda" and CUDA_PROVIDER not in available:
        raise ValueError(
            "latency.device is 'cuda' but ONNX Runtime on this node has no "
            f"{CUDA_PROVIDER} (available: {available}); install onnxruntime-gpu where "
            "latency is measured and give it a GPU, or use latency.device 'cpu' or 'auto'"
        )
    return device


def ort_session_for(model: bytes | str | os.PathLike[str], setup: LatencySetup):
    """An ONNX Runtime session built for ``setup``: its threads, and CUDA when asked.

    Session options are those of :func:`~nascompress.compression.onnx_export.ort_session`
    (fixed intra-op threads, sequential execution, every graph optimization).

    Raises:
        ValueError: CUDA was asked for but is unavailable, or its provider failed to
            initialise (ONNX Runtime then silently falls back to the CPU, which would
            time the wrong device).
    """
    import onnxruntime as ort

    from nascompress.compression.onnx_export import _session_options

    device = resolve_ort_device(setup.device)
    providers = [CUDA_PROVIDER, CPU_PROVIDER] if device == "cuda" else [CPU_PROVIDER]
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, _session_options(setup.threads), providers=providers)
    if device == "cuda" and session.get_providers()[0] != CUDA_PROVIDER:
        raise ValueError(
            f"latency.device is 'cuda' but {CUDA_PROVIDER} could not be initialised "
            f"(session runs on {session.get_providers()}); check the CUDA and cuDNN "
            "libraries that onnxruntime-gpu needs"
        )
    return session


def measure_onnx_bytes(model: bytes, example, setup: LatencySetup) -> LatencyResult:
    """Build a session for ``setup`` from ONNX bytes and time it (no gate, no cache)."""
    import numpy as np

    from nascompress.evaluators.ort_latency import measure_ort_latency

    session = ort_session_for(model, setup)
    return measure_ort_latency(session, np.asarray(example), setup)


def measure_torch_module(model, example, setup: LatencySetup) -> LatencyResult:
    """Time a torch module (no gate, no cache)."""
    import torch

    from nascompress.evaluators.latency import measure_latency

    return measure_latency(model, torch.as_tensor(example), setup)


# --------------------------------------------------------------------------- backends


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


class _ActorBackend:
    """Calls a Ray actor's gate methods and waits for the answer."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def __getattr__(self, name: str):
        import ray

        method = getattr(self._handle, name)
        return lambda *args: ray.get(method.remote(*args))


def _gate_actor_class():
    import ray

    @ray.remote(num_cpus=0, max_restarts=0)
    class LatencyGate:
        """One node's gate: a :class:`GateState` in an actor (num_cpus=0)."""

        def __init__(self, ttl_s: float) -> None:
            self._state = GateState(ttl_s=ttl_s)

        def try_shared(self, holder):
            return self._state.try_shared(holder)

        def try_exclusive(self, holder):
            return self._state.try_exclusive(holder)

        def renew(self, holder):
            return self._state.renew(holder)

        def release(self, holder):
            return self._state.release(holder)

        def cache_get(self, key):
            return self._state.cache_get(key)

        def cache_put(self, key, value):
            return self._state.cache_put(key, value)

        def state(self):
            return self._state.state()

    return LatencyGate


def _service_actor_class():
    import ray

    @ray.remote(num_cpus=0, max_restarts=0)
    class LatencyService:
        """Measures every model of a search on the node holding ``device_resource``."""

        def __init__(self, config: LatencyServiceConfig) -> None:
            self._config = replace(config, device_resource=None)
            self._cache = GateState(ttl_s=config.lease_ttl_s)
            self._node_id = ray.get_runtime_context().get_node_id()

        def node_id(self) -> str:
            return self._node_id

        def cache_get(self, key):
            return self._cache.cache_get(key)

        def state(self):
            return {**self._cache.state(), "node_id": self._node_id}

        def measure(self, kind: str, payload, example, setup: dict, key: str | None,
                    trial_id: str = ""):
            # One call at a time (a plain actor): a second trial asking for the same
            # model waits here and then finds it in the cache.
            if key is not None and self._config.cache:
                hit = self._cache.cache_get(key)
                if hit is not None:
                    return {**hit, "cached": True, "wait_s": 0.0}
            gate = TrialLatency(self._config, backend=ray_gate_backend(self._config),
                                holder=f"service:{os.getpid()}:{uuid.uuid4().hex[:6]}")
            try:
                run = measure_onnx_bytes if kind == "onnx" else measure_torch_module
                result = replace(gate.measure_exclusive(
                    lambda: run(payload, example, LatencySetup(**setup))), measured_by=trial_id)
            finally:
                gate.close()
            if key is not None and self._config.cache:
                self._cache.cache_put(key, result.to_dict())
            return result.to_dict()

    return LatencyService


_DRIVER_HANDLES: dict[str, list[Any]] = {}


def gate_name(search_key: str, node_id: str) -> str:
    return f"{GATE_PREFIX}{search_key}-{node_id}"


def service_name(search_key: str) -> str:
    return f"{SERVICE_PREFIX}{search_key}"


def ray_gate_backend(config: LatencyServiceConfig, node_id: str | None = None) -> _ActorBackend:
    """The gate actor of this process's node (created, detached, if the node is new)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = node_id or ray.get_runtime_context().get_node_id()
    name = gate_name(config.search_key, node_id)
    try:
        handle = ray.get_actor(name)
    except ValueError:
        # A node that joined after the search started: nobody created its gate. It is
        # detached so it outlives this worker; the driver kills it by name at the end.
        handle = _gate_actor_class().options(
            name=name, get_if_exists=True, lifetime="detached",
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(config.lease_ttl_s)
    return _ActorBackend(handle)


class _ServiceClient:
    def __init__(self, handle) -> None:
        self._handle = handle

    def measure(self, kind, payload, example, setup: dict, key, trial_id=""):
        import ray

        return ray.get(self._handle.measure.remote(kind, payload, example, setup, key,
                                                   trial_id))


def start_ray_services(config: LatencyServiceConfig) -> dict[str, Any]:
    """On the driver: one gate actor per alive node, and the service if one is asked for.

    The actors are owned by the driver, so they end with it; :func:`stop_ray_services`
    also removes gates that trials created for nodes that joined later.

    Raises:
        ValueError: ``device_resource`` is set but no node of the cluster declares it.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    info: dict[str, Any] = {"gates": []}
    # A named actor still dies when its owner drops the last handle: keep them here.
    handles = _DRIVER_HANDLES.setdefault(config.search_key, [])
    gate_cls = _gate_actor_class()
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        node_id = node["NodeID"]
        handles.append(gate_cls.options(
            name=gate_name(config.search_key, node_id), get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(config.lease_ttl_s))
        info["gates"].append(node_id)
    if config.device_resource:
        declared = ray.cluster_resources().get(config.device_resource, 0)
        if declared <= 0:
            raise ValueError(
                f"latency.device_resource={config.device_resource!r}: no node of the Ray "
                "cluster declares this resource; start the target node with "
                f"'ray start ... --resources='{{\"{config.device_resource}\": 1}}'' (or "
                "ray.init(resources=...)), or leave latency.device_resource unset"
            )
        service = _service_actor_class().options(
            name=service_name(config.search_key), get_if_exists=True,
            resources={config.device_resource: SERVICE_RESOURCE_AMOUNT},
        ).remote(config)
        handles.append(service)
        info["service_node_id"] = ray.get(service.node_id.remote())
    ray.get([h.state.remote() for h in handles])  # all up before the first trial asks
    return info


def stop_ray_services(config: LatencyServiceConfig) -> None:
    """Kill this search's gate and service actors (also detached ones)."""
    import ray

    prefixes = (f"{GATE_PREFIX}{config.search_key}-", service_name(config.search_key))
    _DRIVER_HANDLES.pop(config.search_key, None)
    for name in ray.util.list_named_actors():
        if isinstance(name, str) and name.startswith(prefixes):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name), no_restart=True)


def connect(config: LatencyServiceConfig):
    """(gate backend, service client or None) for this process."""
    if config.backend == "local":
        return local_state(config.search_key, ttl_s=config.lease_ttl_s), None
    import ray

    service = None
    if config.device_resource:
        service = _ServiceClient(ray.get_actor(service_name(config.search_key)))
    return ray_gate_backend(config), service


# --------------------------------------------------------------------------- the client


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
        backend: the gate (a :class:`GateState` or anything with its methods).
        service: a client of the measurement service, or None to measure here.
        holder: this client's name in the lease table.
        trial_id: recorded as ``measured_by`` with what this client measures.
    """

    def __init__(self, config: LatencyServiceConfig, *, backend, service=None,
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
        from nascompress.evaluators.latency import resolve_device

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


def open_client(config: LatencyServiceConfig, trial_id: str) -> TrialLatency:
    """A client for one trial in this process (connects to the gate / service)."""
    backend, service = connect(config)
    return TrialLatency(config, backend=backend, service=service, trial_id=trial_id,
                        holder=f"{trial_id}:{os.getpid()}:{uuid.uuid4().hex[:6]}")


# --------------------------------------------------------------------------- relay


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
