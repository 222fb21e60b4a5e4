"""Driver-side bookkeeping shared by every runner: run.json, numbering, records, the front."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nascompress.latency.gate import drop_local_state
from nascompress.latency.settings import LatencyServiceConfig
from nascompress.pareto import pareto_front
from nascompress.search.early_stopping import MultiObjectiveHalving
from nascompress.search.experiment import Experiment
from nascompress.search.records import TrialRecord, write_atomic
from nascompress.search.trial import TrialOutcome, TrialRunner
from nascompress.strategies import Outcome

STRATEGY_FILE = "strategy.json"


@dataclass
class SearchSession:
    """One search in progress on the driver.

    Numbers trials in the order they finish, appends each to ``trials.jsonl`` at once,
    and rewrites the Pareto files after every record, so the files on disk are always
    a consistent view of what has finished.
    """

    experiment: Experiment
    shared: Mapping[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    stream: TextIO | None = field(default=sys.stdout)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen_ids: set[str] = field(default_factory=set)
    _told_ids: set[str] = field(default_factory=set)
    _asked_ids: set[str] = field(default_factory=set)
    _records_at_start: int = 0
    #: names this search's latency gate / service actors and its in-process cache.
    search_key: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    #: trial id -> (reason, metrics) for trials the early-stopping scheduler stopped.
    _pruned: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    _prefilter: Any = None
    _prefilter_ready: bool = False

    @classmethod
    def start(
        cls, experiment: Experiment, *, stream: TextIO | None = sys.stdout, resume: bool = False
    ) -> SearchSession:
        """Write ``run.json``, run the evaluator's preparation, and (on resume) reload.

        On resume the trial log is repaired (a torn last line dropped) and numbering
        continues after the recorded trials; the runner then calls
        :meth:`restore_strategy`.
        """
        config = experiment.config
        if config.latency.device_resource and config.runner != "ray":
            from nascompress.config import ConfigError

            raise ConfigError(
                f"latency.device_resource={config.latency.device_resource!r} names a Ray "
                "custom resource and needs runner 'ray'; use --runner ray or leave it unset"
            )
        run_dir = experiment.run_dir
        run_dir.path.mkdir(parents=True, exist_ok=True)
        previous = run_dir.read_run() if resume else {}
        metadata = experiment.run_metadata()
        if resume:
            metadata["created_at"] = previous.get("created_at", metadata["created_at"])
            metadata["resumed"] = [*previous.get("resumed", []), time.time()]
            run_dir.repair_trials()
        run_dir.write_run({**metadata, "status": "preparing"})
        if stream:
            verb = "resuming" if resume else "preparing"
            print(f"run {experiment.run_name}: {verb} in {run_dir.path}", file=stream,
                  flush=True)
        shared = experiment.evaluator.prepare(
            space=experiment.space, dataset=experiment.dataset, seed=experiment.config.seed,
            workdir=run_dir.path,
        )
        if "teacher" in shared:
            metadata["teacher"] = shared["teacher"]
            if stream:
                teacher = shared["teacher"]
                print(f"teacher {teacher['source']}: val accuracy "
                      f"{teacher['val_accuracy']:.4f} ({teacher['seconds']:.1f} s)",
                      file=stream, flush=True)
        run_dir.write_run({**metadata, "status": "running"})
        session = cls(experiment, shared, records=run_dir.load_trials(), stream=stream)
        session._seen_ids = {r["trial_id"] for r in session.records}
        session._records_at_start = len(session.records)
        return session

    # -- strategy checkpoint -----------------------------------------------------------

    def note_asked(self, trial_id: str) -> None:
        """Remember an asked trial, so an interrupted one can be told FAILED on resume."""
        with self._lock:
            self._asked_ids.add(trial_id)

    def note_told(self, trial_ids: Iterable[str]) -> None:
        with self._lock:
            self._told_ids.update(trial_ids)

    def save_strategy(self) -> None:
        """Checkpoint the strategy (JSON, atomic) together with what it was told."""
        state = {
            "strategy": self.experiment.config.strategy.name,
            "state": self.experiment.strategy.state_dict(),
            "told": sorted(self._told_ids),
            "asked": sorted(self._asked_ids),
        }
        write_atomic(self.experiment.run_dir.path / STRATEGY_FILE, json.dumps(state))

    def restore_strategy(self) -> None:
        """Reload the strategy checkpoint and catch it up with the trial log (resume).

        Call it after anything that runs ``strategy.setup`` (which resets a strategy).
        """
        strategy = self.experiment.strategy
        path = self.experiment.run_dir.path / STRATEGY_FILE
        checkpoint: dict[str, Any] = {"told": [], "asked": []}
        if path.exists():
            checkpoint = json.loads(path.read_text(encoding="utf-8"))
            strategy.load_state_dict(checkpoint["state"])
        told = set(checkpoint["told"])
        # Finished after the last checkpoint: the strategy still waits for these.
        for record in self.records:
            if record["trial_id"] not in told:
                strategy.tell(record["trial_id"], outcome_from_record(record))
                told.add(record["trial_id"])
        # Asked but never finished: lost with the old driver, they will be re-asked.
        for trial_id in sorted(set(checkpoint["asked"]) - told):
            strategy.tell(trial_id, Outcome("FAILED", error="interrupted by a driver restart"))
            told.add(trial_id)
        self._told_ids = told
        self._asked_ids = set(checkpoint["asked"]) | told
        self.save_strategy()

    def remaining_trials(self) -> int:
        """Trials still to run to reach the budget."""
        return max(0, self.experiment.config.trials - len(self.records))

    @property
    def latency_search_key(self) -> str:
        return f"{self.experiment.run_name}-{self.search_key}"

    def latency_service_config(self, *, backend: str = "local") -> LatencyServiceConfig:
        """How this search's trials share nodes and targets while measuring latency.

        Raises:
            ValueError: ``latency.device_resource`` is set for the local runner.
        """
        latency = self.experiment.config.latency
        return LatencyServiceConfig(
            backend=backend, exclusive=latency.exclusive, cache=latency.cache,
            device_resource=latency.device_resource,
            search_key=self.latency_search_key,
            lease_ttl_s=latency.lease_ttl_s, max_wait_s=latency.max_wait_s,
        )

    def early_stopping_rule(self) -> MultiObjectiveHalving | None:
        """The configured successive-halving rule, or None when early stopping is off."""
        cfg = self.experiment.config.early_stopping
        if not cfg.enabled:
            return None
        return MultiObjectiveHalving(rungs=cfg.rungs, eta=cfg.eta, metrics=cfg.metrics,
                                     margins=cfg.margins, relative_margin=cfg.relative_margin)

    def prefilter(self, *, backend: str = "local"):
        """The latency predictor's pre-filter, or None (off, or no latency constraint).

        Calibrated online from this search's measured trials (see
        :class:`~nascompress.latency.predictor.LatencyPrefilter`). With
        ``latency.predictor: layer-table`` (the default) it times each distinct layer once
        through this search's latency service (``backend``: where its gate lives), so on
        the pinned target and under the gate like any trial's measurement; the ``torch``
        runtime has no layer table and uses the regression.
        """
        if self._prefilter_ready:
            return self._prefilter
        self._prefilter_ready = True
        cfg = self.experiment.config
        bounds = [c.bound for c in self.experiment.constraints
                  if c.metric == "latency_ms" and c.op == "<="]
        if cfg.latency.predictor_filter and bounds:
            from nascompress.latency.predictor import LatencyPrefilter

            dataset = self.experiment.dataset
            settings = self.experiment.evaluator.settings()
            runtime = settings.get("latency_runtime", cfg.latency.runtime)
            table = cfg.latency.predictor == "layer-table" and runtime == "onnxruntime"
            self._prefilter = LatencyPrefilter(
                bound=min(bounds), space=self.experiment.space,
                input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                runtime=runtime,
                method="layer-table" if table else "regression",
                # Two numbers per runtime kind to calibrate, against nine features.
                min_records=5 if table else 20,
                time_kernel=self._kernel_timer(backend, settings) if table else None,
            )
            for record in self.records:  # a resumed search starts calibrated
                self._prefilter.observe(record)
        return self._prefilter

    def _kernel_timer(self, backend: str, settings: Mapping[str, Any]):
        """``time_kernel(kernel, kind) -> ms`` through this search's latency service."""
        from nascompress.latency.client import TrialLatency
        from nascompress.latency.connection import connect
        from nascompress.latency.layer_table import measure_kernel
        from nascompress.latency.measure import LatencySetup

        config = self.latency_service_config(backend=backend)
        setup = (LatencySetup(**settings["latency"]) if settings.get("latency")
                 else self.experiment.config.latency.setup())
        clients: list[TrialLatency] = []

        def time_kernel(kernel, kind: str) -> float:
            if not clients:  # connect on first use: Ray may not be up when this is built
                gate, service = connect(config)
                clients.append(TrialLatency(config, backend=gate, service=service,
                                            trial_id="latency-table"))
            return measure_kernel(kernel, kind, setup, measure_onnx=clients[0].measure_onnx)

        return time_kernel

    def trial_runner(
        self, *, device: str = "cpu", backend: str = "local", in_process_rules: bool = True
    ) -> TrialRunner:
        """A picklable callable that evaluates one candidate in any process.

        Args:
            device: what each trial is given.
            backend: ``"local"`` or ``"ray"``: where the latency gate lives.
            in_process_rules: give the runner the early-stopping rule and the latency
                pre-filter (the local runner); under Ray Tune the controller applies
                them on the driver instead.
        """
        cfg = self.experiment.config
        return TrialRunner(
            space=self.experiment.space, evaluator=self.experiment.evaluator,
            objectives=self.experiment.objectives, dataset_name=cfg.dataset.name,
            dataset_options=cfg.dataset.options,
            search_seed=cfg.seed, shared=self.shared, device=device,
            timeout_s=cfg.trial_timeout_s,
            latency_service=self.latency_service_config(backend=backend),
            early_stopping=self.early_stopping_rule() if in_process_rules else None,
            prefilter=self.prefilter(backend=backend) if in_process_rules else None,
        )

    def note_pruned(self, trial_id: str, reason: str, metrics: Mapping[str, Any]) -> None:
        """Remember that the early-stopping scheduler stopped ``trial_id`` (and why)."""
        with self._lock:
            self._pruned[trial_id] = (reason, dict(metrics))

    def pruned(self, trial_id: str) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._pruned.get(trial_id)

    def record(
        self, trial_id: str, params: Mapping[str, Any], outcome: TrialOutcome
    ) -> TrialRecord | None:
        """Append a finished trial, checkpoint the strategy, refresh the Pareto files.

        The strategy must already have been told this trial. The record is written
        before the checkpoint: a crash between the two is repaired on resume by telling
        the strategy the recorded outcome again. Duplicate trial ids are ignored.
        """
        with self._lock:  # Tune callbacks may arrive from more than one thread
            if trial_id in self._seen_ids:
                return None
            self._seen_ids.add(trial_id)
            record = TrialRecord(
                number=len(self.records), trial_id=trial_id, state=outcome.state,
                params=dict(params), objectives=outcome.objectives, metrics=outcome.metrics,
                error=outcome.error, started_at=outcome.started_at,
                finished_at=outcome.finished_at, duration_s=outcome.duration_s,
            )
            run_dir = self.experiment.run_dir
            # Files first: a record must never point at an artifact that is not there.
            for name, data in outcome.file_bytes().items():
                run_dir.models_dir.mkdir(parents=True, exist_ok=True)
                (run_dir.models_dir / Path(name).name).write_bytes(data)
            run_dir.append_trial(record)
            self.records.append(record.to_dict())
            self._told_ids.add(trial_id)
            self._asked_ids.add(trial_id)
            self.save_strategy()
            front, volume = run_dir.write_pareto(self.records, self.experiment.objectives,
                                                 self.experiment.constraints)
            self._print_progress(record, front, volume)
            if self._prefilter is not None:
                self._prefilter.observe(self.records[-1])
            return record

    def finish(self, *, status: str = "finished") -> list[Mapping[str, Any]]:
        """Mark the run finished in ``run.json``; return the final front."""
        run_dir = self.experiment.run_dir
        run = run_dir.read_run()
        run.update(status=status, finished_at=time.time(),
                   elapsed_s=time.time() - self.started_at)
        run_dir.write_run(run)
        drop_local_state(self.latency_search_key)
        return pareto_front(self.records, self.experiment.objectives,
                            self.experiment.constraints)

    def _print_progress(self, record: TrialRecord, front, volume: float) -> None:
        if not self.stream:
            return
        budget = self.experiment.config.trials
        failed = sum(1 for r in self.records if r["state"] not in ("COMPLETE", "PRUNED"))
        pruned = sum(1 for r in self.records if r["state"] == "PRUNED")
        if record.state == "COMPLETE":
            o = record.objectives
            what = (f"acc={o.get('accuracy', float('nan')):.4f} "
                    f"size={o.get('size_bytes', float('nan')):.0f}B "
                    f"lat={o.get('latency_ms', float('nan')):.3f}ms")
            what = what if "accuracy" in o else " ".join(f"{k}={v:.4g}" for k, v in o.items())
        else:
            what = f"{record.state}: {record.error}"
        stopped = f" | pruned {pruned}" if pruned else ""
        running = len(self._asked_ids - self._told_ids)
        elapsed = time.time() - self.started_at
        # Trials finished by this process (a resumed run started with some on disk).
        done_here = len(self.records) - self._records_at_start
        remaining = max(0, budget - len(self.records))
        eta = f" | eta {elapsed / done_here * remaining:.0f}s" if done_here and remaining else ""
        print(f"[{len(self.records)}/{budget}] trial {record.number} {what} | front "
              f"{len(front)} hv {volume:.4g} | running {running} | failed "
              f"{failed}{stopped} | {elapsed:.0f}s{eta}",
              file=self.stream, flush=True)


def outcome_from_record(record: Mapping[str, Any]) -> Outcome:
    """The strategy-side view of a recorded trial."""
    return Outcome(record["state"], record.get("objectives") or {}, record.get("error"))
