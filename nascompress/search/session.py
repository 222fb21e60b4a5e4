"""Driver-side bookkeeping shared by every runner: run.json, numbering, records, the front.

The session records; it builds nothing. What runs the trials (the trial runner, the
early-stopping rule, the latency service and pre-filter) comes from the
:class:`~nascompress.search.experiment.Experiment`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nascompress.evaluators import Prepared
from nascompress.objectives import Objective
from nascompress.pareto import is_finite_number, pareto_front
from nascompress.search.experiment import Experiment
from nascompress.search.records import TrialRecord, write_atomic
from nascompress.search.trial import TrialOutcome
from nascompress.strategies import Outcome

STRATEGY_FILE = "strategy.json"


@dataclass
class SearchSession:
    """One search in progress on the driver.

    Numbers trials in the order they finish, appends each to ``trials.jsonl`` at once,
    and rewrites the Pareto files after every record, so the files on disk are always
    a consistent view of what has finished. ``listeners`` are called with each new
    record (the latency pre-filter calibrates on them).
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
    #: trial id -> (reason, metrics) for trials the early-stopping scheduler stopped.
    _pruned: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    listeners: list[Callable[[Mapping[str, Any]], None]] = field(default_factory=list)
    _closers: list[Callable[[str], None]] = field(default_factory=list)
    _warned: set[str] = field(default_factory=set)

    @classmethod
    def start(
        cls, experiment: Experiment, *, stream: TextIO | None = sys.stdout, resume: bool = False
    ) -> SearchSession:
        """Write ``run.json``, run the evaluator's preparation, and (on resume) reload.

        The preparation's ``record`` joins ``run.json`` and its ``summary`` is printed;
        its ``shared`` part becomes :attr:`shared`. On resume the trial log is repaired
        (a torn last line dropped) and numbering continues after the recorded trials;
        the runner then calls :meth:`restore_strategy`.
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
        prepared = Prepared.of(experiment.evaluator.prepare(
            space=experiment.space, dataset=experiment.dataset, seed=experiment.config.seed,
            workdir=run_dir.path,
        ))
        metadata.update(prepared.record)
        if stream and prepared.summary:
            print(prepared.summary, file=stream, flush=True)
        run_dir.write_run({**metadata, "status": "running"})
        session = cls(experiment, prepared.shared, records=run_dir.load_trials(),
                      stream=stream)
        session._seen_ids = {r["trial_id"] for r in session.records}
        session._records_at_start = len(session.records)
        session._start_views(resume=resume)
        return session

    # -- views of the records: the optuna journal, trackers --------------------------

    def _start_views(self, *, resume: bool) -> None:
        """Attach the optuna journal and the configured trackers as listeners.

        They are views: one that cannot start is reported once and left out, and the
        search goes on (the trial log stays complete).
        """
        experiment = self.experiment
        try:
            from nascompress.search.journal import JournalWriter

            self.listeners.append(JournalWriter(
                experiment.run_dir.path, study_name=experiment.run_name,
                objectives=experiment.objectives, dimensions=experiment.space.dimensions(),
                constraints=experiment.constraints, records=self.records,
            ))
        except Exception as exc:  # noqa: BLE001 - a view must never stop the search
            self._warn("optuna journal", exc)
        from nascompress.tracking import start_trackers

        for tracker in start_trackers(experiment, records=self.records, resume=resume,
                                      warn=self._warn):
            self.listeners.append(tracker)
            self._closers.append(tracker.close)

    def _warn(self, what: str, exc: BaseException) -> None:
        if what in self._warned:
            return
        self._warned.add(what)
        message = f"warning: {what}: {type(exc).__name__}: {exc}"
        print(message.splitlines()[0][:300] + " (records are still written; warned once)",
              file=sys.stderr, flush=True)

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

        The strategy must be set up already (:func:`build_experiment` does it, once);
        ``strategy.setup`` resets a strategy, so it must not run again afterwards.
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
            if record.get("stage", "search") != "search":
                continue  # finalists were never the strategy's to hear about
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
        """Trials still to run to reach the budget (finalists do not count)."""
        searched = sum(1 for r in self.records if r.get("stage", "search") == "search")
        return max(0, self.experiment.config.trials - searched)

    def note_pruned(self, trial_id: str, reason: str, metrics: Mapping[str, Any]) -> None:
        """Remember that the early-stopping scheduler stopped ``trial_id`` (and why)."""
        with self._lock:
            self._pruned[trial_id] = (reason, dict(metrics))

    def pruned(self, trial_id: str) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._pruned.get(trial_id)

    def record(
        self, trial_id: str, params: Mapping[str, Any], outcome: TrialOutcome, *,
        stage: str = "search",
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
                stage=stage,
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
            for listener in self.listeners:
                try:
                    listener(self.records[-1])
                except Exception as exc:  # noqa: BLE001 - the record is on disk already
                    self._warn(getattr(listener, "name", None) or _name_of(listener), exc)
            return record

    def finish(self, *, status: str = "finished") -> list[Mapping[str, Any]]:
        """Mark the run finished in ``run.json``; return the final front."""
        run_dir = self.experiment.run_dir
        run = run_dir.read_run()
        run.update(status=status, finished_at=time.time(),
                   elapsed_s=time.time() - self.started_at)
        run_dir.write_run(run)
        for close in self._closers:
            try:
                close(status)
            except Exception as exc:  # noqa: BLE001
                self._warn("closing a tracker", exc)
        self._closers.clear()
        return pareto_front(self.records, self.experiment.objectives,
                            self.experiment.constraints)

    def _print_progress(self, record: TrialRecord, front, volume: float) -> None:
        if not self.stream:
            return
        budget = self.experiment.config.trials
        if record.stage != "search":
            print(f"[final] trial {record.number} (finalist of trial "
                  f"{record.metrics.get('finalist_of')}) "
                  + (format_objectives(self.experiment.objectives, record.objectives)
                     if record.state == "COMPLETE" else f"{record.state}: {record.error}")
                  + f" | front {len(front)} hv {volume:.4g}", file=self.stream, flush=True)
            return
        failed = sum(1 for r in self.records if r["state"] not in ("COMPLETE", "PRUNED"))
        pruned = sum(1 for r in self.records if r["state"] == "PRUNED")
        if record.state == "COMPLETE":
            what = format_objectives(self.experiment.objectives, record.objectives)
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


#: How many decimals a value of a unit deserves on the progress line.
_UNIT_FORMATS = {"fraction": ".4f", "bytes": ".0f", "ms": ".3f"}


def format_objectives(objectives: Sequence[Objective], values: Mapping[str, Any]) -> str:
    """``name=value`` for each declared objective, precision and suffix from its unit.

    The unit is appended unless the name already says it (``size_bytes``, ``latency_ms``)
    or it is a bare fraction: ``accuracy=0.9312 size_bytes=10240 latency_ms=0.412``.
    """
    parts = []
    for objective in objectives:
        value = values.get(objective.name)
        if not is_finite_number(value):
            parts.append(f"{objective.name}={value!r}")
            continue
        text = format(float(value), _UNIT_FORMATS.get(objective.unit, ".4g"))
        unit = objective.unit
        if unit and unit != "fraction" and not objective.name.lower().endswith(f"_{unit.lower()}"):
            text += unit
        parts.append(f"{objective.name}={text}")
    return " ".join(parts)


def _name_of(listener: Any) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__name__


def outcome_from_record(record: Mapping[str, Any]) -> Outcome:
    """The strategy-side view of a recorded trial."""
    return Outcome(record["state"], record.get("objectives") or {}, record.get("error"))
