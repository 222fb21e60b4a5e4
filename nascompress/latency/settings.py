"""How the trials of one search share nodes and targets while measuring latency."""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

from pydantic import ConfigDict, Field, model_validator

from nascompress.settings import ConstraintError, Settings

Backend = Literal["local", "ray"]
BACKENDS = get_args(Backend)


class LatencySharing(Settings):
    """How measurements share a node with trainings: the user-facing half of the service.

    Declared once here; the experiment config's ``latency`` section
    (:class:`~nascompress.config.LatencyConfig`) and :class:`LatencyServiceConfig` both
    take these fields from this class.
    """

    section: ClassVar[str] = "latency"

    #: take the exclusive lease around each measurement (trainings of this search on
    #: the node pause); ``False`` measures whenever asked.
    exclusive: bool = True
    #: Ray custom resource that places the single measurement service actor (Ray only).
    device_resource: str | None = None
    #: reuse the result of a structurally identical model measured earlier.
    cache: bool = True
    #: a lease not renewed for this long is dropped (dead holders).
    lease_ttl_s: float = Field(10.0, gt=0)
    #: longest wait for the exclusive lease before measuring anyway.
    max_wait_s: float = Field(120.0, gt=0)


class LatencyServiceConfig(LatencySharing):
    """How the trials of one search measure latency; picklable, shipped with each trial.

    The :class:`LatencySharing` fields, and those set by the search at run time:

    Attributes:
        backend: ``"local"`` (in-process gate, the local runner) or ``"ray"`` (one gate
            actor per node).
        search_key: names the gate and service actors of this search.
        checkpoint_interval_s: a training contacts the gate at most this often.
        poll_s: pause between two tries of a waiting client.
    """

    model_config = ConfigDict(frozen=True)

    backend: Backend = "local"
    search_key: str = "default"
    checkpoint_interval_s: float = Field(0.1, ge=0)
    poll_s: float = Field(0.02, gt=0)

    @model_validator(mode="after")
    def _resource_needs_ray(self) -> LatencyServiceConfig:
        if self.device_resource is not None and self.backend != "ray":
            raise ConstraintError(
                "unset unless the Ray runner is used (it names a Ray custom resource; use "
                "--runner ray or leave it unset)",
                field="device_resource", value=self.device_resource)
        return self
