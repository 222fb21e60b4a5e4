"""Driver-side bookkeeping shared by every runner: run.json, numbering, records, the front."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from nascompress.search.experiment import Experiment
from nascompress.search.pareto import front_hypervolume, pareto_front, reference_point
from nascompress.search.records import TrialRecord
from nascompress.search.trial import TrialOutcome, TrialRunner


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

    @classmethod
    def start(cls, experiment: Experiment, *, stream: TextIO | None = sys.stdout) -> SearchSession:
        """Write ``run.json`` and run the evaluator's once-per-search preparation."""
        run_dir = experiment.run_dir
        run_dir.path.mkdir(parents=True, exist_ok=True)
        metadata = experiment.run_metadata()
        run_dir.write_run({**metadata, "status": "preparing"})
        if stream:
            print(f"run {experiment.run_name}: preparing in {run_dir.path}", file=stream,
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
        return cls(experiment, shared, records=run_dir.load_trials(), stream=stream)

    def trial_runner(self, *, device: str = "cpu") -> TrialRunner:
        """A picklable callable that evaluates one candidate in any process."""
        cfg = self.experiment.config
        return TrialRunner(
            space=self.experiment.space, evaluator=self.experiment.evaluator,
            objectives=self.experiment.objectives, dataset_name=cfg.dataset.name,
            dataset_options=cfg.dataset.options,
            artifact_dir=self.experiment.run_dir.models_dir.resolve(),
            search_seed=cfg.seed, shared=self.shared, device=device,
        )

    def record(
        self, trial_id: str, params: Mapping[str, Any], outcome: TrialOutcome
    ) -> TrialRecord | None:
        """Append a finished trial and refresh the Pareto files; duplicates are ignored."""
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
            run_dir.append_trial(record)
            self.records.append(record.to_dict())
            front = run_dir.write_pareto(self.records, self.experiment.objectives,
                                         self.experiment.constraints)
            self._print_progress(record, front)
            return record

    def hypervolume(self) -> float:
        objectives = self.experiment.objectives
        front = pareto_front(self.records, objectives, self.experiment.constraints)
        ref = reference_point(self.records, objectives)
        return front_hypervolume(front, objectives, ref) if front and ref else 0.0

    def finish(self, *, status: str = "finished") -> list[Mapping[str, Any]]:
        """Mark the run finished in ``run.json``; return the final front."""
        run_dir = self.experiment.run_dir
        run = run_dir.read_run()
        run.update(status=status, finished_at=time.time(),
                   elapsed_s=time.time() - self.started_at)
        run_dir.write_run(run)
        return pareto_front(self.records, self.experiment.objectives,
                            self.experiment.constraints)

    def _print_progress(self, record: TrialRecord, front) -> None:
        if not self.stream:
            return
        budget = self.experiment.config.trials
        failed = sum(1 for r in self.records if r["state"] != "COMPLETE")
        if record.state == "COMPLETE":
            o = record.objectives
            what = (f"acc={o.get('accuracy', float('nan')):.4f} "
                    f"size={o.get('size_bytes', float('nan')):.0f}B "
                    f"lat={o.get('latency_ms', float('nan')):.3f}ms")
            what = what if "accuracy" in o else " ".join(f"{k}={v:.4g}" for k, v in o.items())
        else:
            what = f"{record.state}: {record.error}"
        print(f"[{len(self.records)}/{budget}] trial {record.number} {what} | front "
              f"{len(front)} | failed {failed} | {time.time() - self.started_at:.0f}s",
              file=self.stream, flush=True)
