"""Latency you can trust: measured on the target, owning its node, cached by structure.

Where each concern lives:

* :mod:`~nascompress.latency.measure` — :class:`LatencySetup` (how to time),
  :class:`LatencyResult` (median, quartiles, how it was taken), the repeat-until-stable
  loop, torch eager timing on CPU and CUDA (CUDA events).
* :mod:`~nascompress.latency.ort` — ONNX Runtime sessions and their timing (fp32, int8).
* :mod:`~nascompress.latency.gate` — the per-node gate (:class:`GateProtocol`): training
  trials hold shared leases, a measurement takes the exclusive one; leases expire.
* :mod:`~nascompress.latency.cache` — cache keys: a structure is timed once per search.
* :mod:`~nascompress.latency.ray_services` — the gate as one Ray actor per node, and the
  measurement service pinned to a target node by a Ray custom resource.
* :mod:`~nascompress.latency.client` — one trial's side of all that
  (:class:`TrialLatency`), reached by evaluators through :func:`current`;
  :mod:`~nascompress.latency.connection` opens one for a trial.
* :mod:`~nascompress.latency.relay` — the same calls from a trial's child process,
  answered by its parent.
* :mod:`~nascompress.latency.trace`, :mod:`~nascompress.latency.layer_table`,
  :mod:`~nascompress.latency.predictor` — predicting latency before training (a table of
  layers timed on the target, or a feature regression) and the pre-filter built on them.

Only ``ray_services`` imports ray (lazily); nothing here imports torch at module level.
"""

from nascompress.latency.client import MeasureService, TrialLatency, activate, current
from nascompress.latency.connection import connect, open_client
from nascompress.latency.gate import GateProtocol, GateState, LeaseTable
from nascompress.latency.measure import LatencyResult, LatencySetup
from nascompress.latency.settings import LatencyServiceConfig

__all__ = [
    "GateProtocol",
    "GateState",
    "LatencyResult",
    "LatencyServiceConfig",
    "LatencySetup",
    "LeaseTable",
    "MeasureService",
    "TrialLatency",
    "activate",
    "connect",
    "current",
    "open_client",
]
