"""The gate and the measurement service as Ray actors.

Under Ray the gate's table lives in one named actor per node (created by the driver for
every node alive at the start, lazily for nodes that join later). With
``device_resource`` (a Ray custom resource, e.g. ``latency_target`` declared only on the
deployment node) every measurement of the search runs in one service actor scheduled
with that resource: the trial ships the exported ONNX bytes (or, for the ``torch``
runtime, the module) and gets the :class:`LatencyResult` back. The service measures under
its own node's gate and keeps its own cache.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import replace
from typing import Any

from nascompress.latency.client import TrialLatency
from nascompress.latency.gate import GateState
from nascompress.latency.measure import LatencySetup, measure_torch_module
from nascompress.latency.ort import measure_onnx_bytes
from nascompress.latency.settings import LatencyServiceConfig

GATE_PREFIX = "nascompress-gate-"
SERVICE_PREFIX = "nascompress-latency-"
#: Fraction of the custom resource the service actor takes: any positive amount pins it
#: to a node that declares the resource, and leaves the rest to whoever else needs it.
SERVICE_RESOURCE_AMOUNT = 0.01


class _ActorBackend:
    """A gate actor as a :class:`~nascompress.latency.gate.GateProtocol`: calls and waits."""

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
            self._config = config.replace(device_resource=None)
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


class ServiceClient:
    """Calls the search's service actor (a :class:`~nascompress.latency.client.MeasureService`)."""

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
