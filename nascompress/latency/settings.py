"""How the trials of one search share nodes and targets while measuring latency."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("local", "ray")


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

