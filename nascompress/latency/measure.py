"""Latency measurement: warm-up, fixed threads and batch, repeats until the spread is small.

On CPU each timed call is wrapped in ``time.perf_counter``; on CUDA, CUDA events with a
synchronisation bracket each call, because kernel launches return before the GPU is done.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, get_args

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from nascompress.settings import ConstraintError, Settings

Device = Literal["auto", "cpu", "cuda"]
DEVICES = get_args(Device)


class LatencySetup(Settings):
    """How latency is measured; recorded in ``run.json`` and every trial.

    The one declaration of these settings: the experiment config's ``latency`` section
    (:class:`~nascompress.config.LatencyConfig`) is this plus the search-level fields.
    Frozen and hashable; :meth:`to_dict` and ``LatencySetup(**d)`` round-trip.

    Raises:
        SettingError: a value is out of range or of the wrong type (a ``ValueError``,
            one line: ``latency.threads must be >= 1, but got 0``).
    """

    model_config = ConfigDict(frozen=True)
    section: ClassVar[str] = "latency"

    #: ``"cpu"``, ``"cuda"``, or ``"auto"`` (CUDA when available, else CPU).
    device: Device = "cpu"
    #: intra-op threads while timing (CPU); fixed so runs are comparable.
    threads: int = Field(1, ge=1)
    #: inputs per timed forward pass.
    batch_size: int = Field(16, ge=1)
    #: untimed passes first (allocator, caches, lazy init).
    warmup: int = Field(10, ge=0)
    #: timed passes always taken.
    min_repeats: int = Field(20, ge=1)
    #: stop after this many passes even if the spread is still large.
    max_repeats: int = Field(500, ge=1)
    #: stop once IQR / median is at most this (0.1 = 10%).
    target_rel_iqr: float = Field(0.1, gt=0)
    #: stop after this much timing, whatever the spread.
    time_cap_s: float = Field(2.0, gt=0)

    @field_validator("max_repeats")
    @classmethod
    def _enough_repeats(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_repeats")
        if low is not None and value < low:
            raise ConstraintError(f">= {cls.section}.min_repeats ({low})")
        return value

    def to_dict(self) -> dict[str, Any]:
        """The measurement settings alone (also for a subclass such as ``LatencyConfig``)."""
        return self.model_dump(include=set(LatencySetup.model_fields))


@dataclass(frozen=True)
class LatencyResult:
    """Summary of one measurement, in milliseconds per forward pass of one batch."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    repeats: int
    converged: bool
    device: str
    threads: int
    batch_size: int
    #: How the measurement was taken (see :mod:`nascompress.latency`):
    #: ``gate`` is ``"off"``, ``"local"`` (in-process lock) or ``"ray"`` (per-node actor);
    #: ``exclusive`` whether no training of this search ran on the node meanwhile;
    #: ``wait_s`` how long the exclusive lease took to get; ``cached`` whether this is
    #: the stored result of an identical model measured earlier in the search, and
    #: ``measured_by`` the trial that took the measurement.
    gate: str = "off"
    exclusive: bool = False
    wait_s: float = 0.0
    cached: bool = False
    measured_by: str = ""

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def as_metrics(self) -> dict[str, Any]:
        """Flat keys recorded in a trial's ``metrics``."""
        return {
            "latency_median_ms": self.median_ms,
            "latency_iqr_ms": self.iqr_ms,
            "latency_q1_ms": self.q1_ms,
            "latency_q3_ms": self.q3_ms,
            "latency_repeats": self.repeats,
            "latency_converged": self.converged,
            "latency_device": self.device,
            "latency_threads": self.threads,
            "latency_batch_size": self.batch_size,
            "latency_gate": self.gate,
            "latency_exclusive": self.exclusive,
            "latency_wait_s": self.wait_s,
            "latency_cached": self.cached,
            "latency_measured_by": self.measured_by,
        }


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is visible, else ``"cpu"``.

    Raises:
        ValueError: ``"cuda"`` was asked for but no GPU is visible to this process.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "latency.device is 'cuda' but no GPU is visible to this process; use 'cpu' or "
            "'auto', or give trials a GPU (resources.gpu)"
        )
    return device


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, median, q3


def measure_latency(model, example_input, setup: LatencySetup) -> LatencyResult:
    """Time ``model(example_input)`` per :class:`LatencySetup` and summarise.

    ``example_input`` is a single example or a batch; it is repeated to
    ``setup.batch_size`` along the first dimension. On CPU each sample is one pass by
    the wall clock; on CUDA, one sample is CUDA events around about ``CUDA_SAMPLE_MS``
    of back-to-back passes after a sustained warm-up, divided by the passes.
    """
    import torch

    device = resolve_device(setup.device)
    batch = example_input[:1].repeat(setup.batch_size, *([1] * (example_input.dim() - 1)))
    batch = batch.to(device)
    model = model.to(device).eval()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(setup.threads)
    try:
        with torch.inference_mode():
            for _ in range(setup.warmup):
                model(batch)
            if device == "cuda":
                samples = _cuda_timed_runs(model, batch, setup)
            else:
                samples = time_until_stable(lambda: wall_clock_ms(lambda: model(batch)), setup)
    finally:
        torch.set_num_threads(previous_threads)
    return summarize(samples, setup, device)


#: An idle GPU runs at low clocks and raises them only under sustained load, so CUDA
#: timing starts with at least this long of back-to-back passes.
CUDA_WARMUP_S = 0.25
#: Each CUDA sample times enough back-to-back passes to last about this long, so the GPU
#: is not left idle between samples. Measured on an H100 (``bench/gpu``, 20 models of
#: 0.1-0.7 ms): one synchronised pass per sample from a cold GPU gave a run-to-run CV of
#: 49 % (τ 0.48); this method from a cold GPU 14 % (τ 0.72), the same as one pass per
#: sample on the then warm GPU (14 %, τ 0.75). Models that small are bound by the CPU's
#: kernel launches, whose speed varies on a shared host; neither method makes them stable.
CUDA_SAMPLE_MS = 2.0


def _cuda_timed_runs(model, batch, setup: LatencySetup) -> list[float]:
    """Per-pass milliseconds from CUDA events around back-to-back passes (synchronised)."""
    import torch

    def per_pass_ms(passes: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(passes):
            model(batch)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / passes

    def passes_per_sample(ms: float) -> int:
        return max(1, min(1000, round(CUDA_SAMPLE_MS / max(ms, 1e-4))))

    torch.cuda.synchronize()
    estimate = per_pass_ms(1)
    deadline = time.perf_counter() + CUDA_WARMUP_S
    while time.perf_counter() < deadline:
        estimate = per_pass_ms(passes_per_sample(estimate))
    passes = passes_per_sample(estimate)
    return time_until_stable(lambda: per_pass_ms(passes), setup)


def wall_clock_ms(run: Callable[[], Any]) -> float:
    """Milliseconds one call of ``run`` takes, by ``time.perf_counter``."""
    t0 = time.perf_counter()
    run()
    return (time.perf_counter() - t0) * 1000.0


def time_until_stable(time_once: Callable[[], float], setup: LatencySetup) -> list[float]:
    """Call ``time_once`` (returning ms) until the spread is small or a cap is reached.

    Stops after ``setup.min_repeats`` samples once IQR <= ``target_rel_iqr`` × median,
    or when ``time_cap_s`` of timing has passed, and always by ``max_repeats``.
    """
    samples: list[float] = []
    deadline = time.perf_counter() + setup.time_cap_s
    while len(samples) < setup.max_repeats:
        samples.append(time_once())
        if len(samples) >= setup.min_repeats:
            q1, median, q3 = _quartiles(samples)
            if (q3 - q1) <= setup.target_rel_iqr * median or time.perf_counter() > deadline:
                break
    return samples


def summarize(samples: list[float], setup: LatencySetup, device: str) -> LatencyResult:
    """The :class:`LatencyResult` of timed samples taken per ``setup`` on ``device``."""
    q1, median, q3 = _quartiles(samples)
    return LatencyResult(
        median_ms=median, q1_ms=q1, q3_ms=q3, repeats=len(samples),
        converged=(q3 - q1) <= setup.target_rel_iqr * median,
        device=device, threads=setup.threads, batch_size=setup.batch_size,
    )


def measure_torch_module(model, example, setup: LatencySetup) -> LatencyResult:
    """Time a torch module (no gate, no cache)."""
    import torch

    return measure_latency(model, torch.as_tensor(example), setup)
