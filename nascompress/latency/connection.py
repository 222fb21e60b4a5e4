"""Connect a process to its search's latency gate and service."""

from __future__ import annotations

import os
import uuid

from nascompress.latency.client import MeasureService, TrialLatency
from nascompress.latency.gate import GateProtocol, local_state
from nascompress.latency.settings import LatencyServiceConfig


def connect(config: LatencyServiceConfig) -> tuple[GateProtocol, MeasureService | None]:
    """(gate backend, service client or None) for this process."""
    if config.backend == "local":
        return local_state(config.search_key, ttl_s=config.lease_ttl_s), None
    import ray

    from nascompress.latency.ray_services import ServiceClient, ray_gate_backend, service_name

    service = None
    if config.device_resource:
        service = ServiceClient(ray.get_actor(service_name(config.search_key)))
    return ray_gate_backend(config), service


def open_client(config: LatencyServiceConfig, trial_id: str) -> TrialLatency:
    """A client for one trial in this process (connects to the gate / service)."""
    backend, service = connect(config)
    return TrialLatency(config, backend=backend, service=service, trial_id=trial_id,
                        holder=f"{trial_id}:{os.getpid()}:{uuid.uuid4().hex[:6]}")

