"""Running one trial: the part shared by the local runner and the Ray Tune controller."""

from __future__ import annotations

import base64
import contextlib
import json
import multiprocessing
import numbers
import queue
import tempfile
import time
import traceback
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nascompress.evaluators import Evaluator, ReportFn, TrialContext, no_report
from nascompress.latency.client import TrialLatency, activate
from nascompress.latency.connection import open_client
from nascompress.latency.relay import RelayBackend, RelayServer
from nascompress.latency.settings import LatencyServiceConfig
from nascompress.objectives import Objective
from nascompress.pareto import TrialState, is_finite_number, is_number, objective_values_are_finite
from nascompress.spaces import SearchSpace

# One dataset per worker process: trials reuse it instead of reloading per trial.
_DATASET_CACHE: dict[str, Any] = {}


def trial_seed(search_seed: int, params: Mapping[str, Any]) -> int:
    """A per-candidate seed: the same params in the same search always train the same way."""
    digest = zlib.crc32(json.dumps(dict(params), sort_keys=True, default=str).encode())
    return (search_seed * 1_000_003 + digest) % (2**31 - 1)


def load_dataset(name: str, options: Mapping[str, Any]):
    """Load (and cache per process) a dataset from the registry."""
    from nascompress.data import DATASETS

    key = json.dumps([name, dict(options)], sort_keys=True, default=str)
    if key not in _DATASET_CACHE:
        _DATASET_CACHE[key] = DATASETS.resolve(name, field="dataset.name")(**options)
    return _DATASET_CACHE[key]


def short_error(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, enough to find the failing line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _plain_number(value: Any) -> Any:
    """A numpy scalar as the Python int or float it stands for; anything else as it is.

    Evaluators may put numpy scalars in their results; the outcome is sent as JSON (to
    the Ray driver) and written to ``trials.jsonl``, and json cannot write them.
    """
    if is_number(value) and not isinstance(value, int | float):
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    return value


class TrialPruned(Exception):  # noqa: N818 - named like optuna.TrialPruned on purpose
    """Raised from a trial's ``report`` to stop it early; it ends as PRUNED, not FAILED.

    Args:
        reason: why, recorded as the trial's ``error``.
        metrics: recorded in the trial's ``metrics`` (the step, the rank, ...).
    """

    def __init__(self, reason: str, metrics: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.metrics = dict(metrics or {})


@dataclass
class TrialOutcome:
    """What one trial produced, before it gets a number in the log."""

    state: str
    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    #: files the evaluator wrote (name -> base64 bytes); the driver stores them under
    #: ``models/``, so records never depend on a filesystem shared with the workers.
    files: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "objectives": self.objectives, "metrics": self.metrics,
                "error": self.error, "started_at": self.started_at,
                "finished_at": self.finished_at, "files": self.files}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialOutcome:
        return cls(**{k: data[k] for k in ("state", "objectives", "metrics", "error",
                                          "started_at", "finished_at")},
                   files=dict(data.get("files") or {}))

    def file_bytes(self) -> dict[str, bytes]:
        return {name: base64.b64decode(data) for name, data in self.files.items()}


@dataclass
class TrialRunner:
    """Everything a worker needs to evaluate a candidate; picklable for Ray.

    Attributes:
        space: the search space (builds models).
        evaluator: the evaluator (trains, compresses, measures).
        objectives: what the evaluator returns, in order.
        dataset_name / dataset_options: resolved in the worker and cached per process.
        search_seed: the search's seed; each trial derives its own from it.
        shared: the evaluator's once-per-search state (e.g. teacher logits).
        device: what the trial was given (``"cpu"`` or ``"cuda"``).
        timeout_s: when set, each evaluation runs in a child process that is killed
            after this many seconds (a hung trial is then recorded as FAILED).
        latency_service: how measurements share the node (gate, cache, pinned target);
            ``None`` leaves evaluators with a private in-process client.
        early_stopping: a :class:`~nascompress.search.early_stopping.MultiObjectiveHalving`
            consulted on every ``report`` (in the process that calls the runner: the local
            runner; under Ray Tune the scheduler decides instead). A stopped trial
            returns PRUNED with the rule's reason.
        prefilter: ``prefilter(params) -> (reason, metrics) | None``; a candidate with a
            reason returns PRUNED before anything is built (the latency predictor's
            filter, see :class:`~nascompress.latency.predictor.LatencyPrefilter`).
        stage: ``context.stage`` of its trials: ``"search"``, or ``"final"`` for the
            finalists an evaluator chose (:meth:`~nascompress.evaluators.Evaluator.finalists`).
    """

    space: SearchSpace
    evaluator: Evaluator
    objectives: Sequence[Objective]
    dataset_name: str
    dataset_options: Mapping[str, Any]
    search_seed: int
    shared: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    timeout_s: float | None = None
    latency_service: LatencyServiceConfig | None = None
    early_stopping: Any = None
    prefilter: Any = None
    #: ``context.stage`` of the trials it runs (``"final"`` for finalists).
    stage: str = "search"

    def __call__(
        self, params: Mapping[str, Any], trial_id: str, report: ReportFn = no_report
    ) -> TrialOutcome:
        """Evaluate ``params``; never raises for a failing candidate (returns FAILED).

        Returns PRUNED without evaluating when the prefilter rejects ``params``, and
        PRUNED when early stopping stops the trial at a rung.
        """
        if self.prefilter is not None:
            verdict = self.prefilter(params)
            if verdict is not None:
                reason, metrics = verdict
                now = time.time()
                return TrialOutcome("PRUNED", metrics=dict(metrics), error=reason,
                                    started_at=now, finished_at=now)
        if self.early_stopping is not None:
            report = _stopping_report(self.early_stopping, trial_id, report)
        if self.timeout_s is None:
            return self.evaluate_here(params, trial_id, report)
        return self._evaluate_in_child(params, trial_id, report)

    def evaluate_here(
        self,
        params: Mapping[str, Any],
        trial_id: str,
        report: ReportFn = no_report,
        *,
        latency: TrialLatency | None = None,
        workdir: Path | None = None,
    ) -> TrialOutcome:
        """Evaluate in this process (artifacts go to a temporary folder, then the outcome).

        ``latency`` is the trial's latency client (by default one opened from
        ``latency_service``); evaluators reach it through
        :func:`nascompress.latency.client.current`. ``workdir`` is the folder for the
        artifacts when the caller owns it (and removes it); by default a temporary folder
        made and removed here.
        """
        started = time.time()
        if latency is None and self.latency_service is not None:
            try:
                latency = open_client(self.latency_service, trial_id)
            except Exception as exc:  # e.g. the search's gate actor is gone
                return TrialOutcome("FAILED", error=f"latency service: {short_error(exc)}",
                                    started_at=started, finished_at=time.time())
        scope = activate(latency) if latency is not None else contextlib.nullcontext()
        folder = (contextlib.nullcontext(str(workdir)) if workdir is not None
                  else _temporary_artifact_folder())
        with scope, folder as workdir:
            try:
                reason = self.space.check(params)
                if reason:
                    raise ValueError(f"invalid parameters: {reason}")
                dataset = load_dataset(self.dataset_name, self.dataset_options)
                context = TrialContext(
                    trial_id=trial_id, seed=trial_seed(self.search_seed, params),
                    artifact_dir=Path(workdir), shared=self.shared, device=self.device,
                    stage=self.stage,
                )
                result = self.evaluator.evaluate(
                    params, space=self.space, dataset=dataset, context=context, report=report
                )
            except TrialPruned as exc:
                return TrialOutcome("PRUNED", metrics=exc.metrics, error=exc.reason,
                                    started_at=started, finished_at=time.time())
            except MemoryError as exc:
                return TrialOutcome("FAILED", metrics={"failure_kind": "out_of_memory"},
                                    error=f"out of memory: {short_error(exc)}",
                                    started_at=started, finished_at=time.time())
            except Exception as exc:  # the candidate failed, the search goes on
                return TrialOutcome("FAILED", error=short_error(exc), started_at=started,
                                    finished_at=time.time())
            files = {
                path.name: base64.b64encode(path.read_bytes()).decode("ascii")
                for path in sorted(Path(workdir).iterdir()) if path.is_file()
            }
        return self._outcome(result, started, files)

    def _outcome(self, result: Mapping[str, Any], started: float, files) -> TrialOutcome:
        names = {o.name for o in self.objectives}
        objectives = {k: result.get(k) for k in names}
        metrics = {k: _plain_number(v) for k, v in result.items() if k not in names}
        if not objective_values_are_finite(self.objectives, objectives):
            bad = {k: v for k, v in objectives.items() if not is_finite_number(v)}
            return TrialOutcome(TrialState.FAILED, metrics=metrics, started_at=started,
                                finished_at=time.time(),
                                error=f"non-finite or missing objective values: {bad}")
        # float(): an evaluator may return numpy scalars (numpy.float32 is no float and
        # json cannot write it); records and strategies get plain floats.
        return TrialOutcome(TrialState.COMPLETE, {k: float(v) for k, v in objectives.items()},
                            metrics, started_at=started, finished_at=time.time(), files=files)

    def _evaluate_in_child(
        self, params: Mapping[str, Any], trial_id: str, report: ReportFn
    ) -> TrialOutcome:
        # The artifact folder is made and removed here, not in the child: a child killed
        # at the time limit (or by the kernel) would leave its folder, artifacts and all.
        with _temporary_artifact_folder() as workdir:
            return self._run_child(params, trial_id, report, Path(workdir))

    def _run_child(
        self, params: Mapping[str, Any], trial_id: str, report: ReportFn, workdir: Path
    ) -> TrialOutcome:
        # "spawn", not "fork": forking a process that runs Ray and torch threads can
        # deadlock the child. The price is a fresh interpreter per trial.
        ctx = multiprocessing.get_context("spawn")
        messages = ctx.Queue()
        replies = ctx.Queue()
        # The child is not connected to Ray: its gate, cache and service calls come
        # here as messages and are answered from this process.
        relay = RelayServer(self.latency_service) if self.latency_service else None
        # The rules stay here (they hold locks and live state): reports come back to
        # this process, which decides.
        shipped = replace(self, early_stopping=None, prefilter=None)
        child = ctx.Process(target=_child_main,
                            args=(shipped, dict(params), trial_id, messages, replies,
                                  workdir),
                            daemon=True)
        started = time.time()
        child.start()
        deadline = started + float(self.timeout_s)
        try:
            while True:
                try:
                    kind, *payload = messages.get(timeout=min(1.0, max(0.01,
                                                                      deadline - time.time())))
                except queue.Empty:
                    if time.time() >= deadline:
                        return TrialOutcome(
                            "FAILED", metrics={"failure_kind": "timeout"},
                            error=f"exceeded the per-trial time limit of {self.timeout_s:g} s",
                            started_at=started, finished_at=time.time())
                    if not child.is_alive():
                        return _dead_child_outcome(child.exitcode, started)
                    continue
                if kind == "report":
                    try:
                        report(*payload)
                    except TrialPruned as exc:
                        return TrialOutcome("PRUNED", metrics=exc.metrics, error=exc.reason,
                                            started_at=started, finished_at=time.time())
                elif kind == "latency":
                    replies.put(relay.handle(*payload) if relay else
                                (False, "no latency service configured"))
                else:
                    return TrialOutcome.from_dict(payload[0])
        finally:
            if child.is_alive():
                child.kill()
            child.join(timeout=10)
            if relay is not None:
                relay.close()


def _stopping_report(rule, trial_id: str, report: ReportFn) -> ReportFn:
    """``report`` that also asks the early-stopping rule, raising TrialPruned on a stop."""

    def wrapped(step: int, metrics: Mapping[str, Any]) -> None:
        report(step, metrics)
        decision = rule.on_result(trial_id, step, metrics)
        if decision.stop:
            raise TrialPruned(decision.reason or "stopped early", decision.metrics)

    return wrapped


def _temporary_artifact_folder() -> tempfile.TemporaryDirectory:
    """A trial's artifact folder, removed when its ``with`` block ends."""
    return tempfile.TemporaryDirectory(prefix="nascompress-trial-", ignore_cleanup_errors=True)


def _child_main(runner: TrialRunner, params, trial_id, messages, replies, workdir) -> None:
    def report(step, metrics):
        messages.put(("report", step, dict(metrics)))

    latency = None
    config = runner.latency_service
    if config is not None:
        relay = RelayBackend(messages, replies)
        latency = TrialLatency(config, backend=relay,
                               service=relay if config.device_resource else None,
                               holder=f"{trial_id}:child:{multiprocessing.current_process().pid}",
                               trial_id=trial_id)
    outcome = runner.evaluate_here(params, trial_id, report, latency=latency, workdir=workdir)
    messages.put(("done", outcome.to_dict()))


def _dead_child_outcome(exitcode: int | None, started: float) -> TrialOutcome:
    if exitcode is not None and exitcode < 0:
        import signal

        name = signal.Signals(-exitcode).name
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
        return TrialOutcome("FAILED", metrics={"failure_kind": "killed", "signal": name},
                            error=f"trial process killed by {name}{hint}",
                            started_at=started, finished_at=time.time())
    return TrialOutcome("FAILED", metrics={"failure_kind": "crashed"},
                        error=f"trial process exited with code {exitcode} without a result",
                        started_at=started, finished_at=time.time())
