"""Optional experiment trackers fed with every trial record: MLflow and TensorBoard.

Configured by the ``tracking:`` section; nothing is imported, written or sent unless a
tracker is enabled there. Each tracker is a session listener (``tracker(record)``) with
``close(status)``; the session reports a failing tracker once and goes on: the trial log
is written before any tracker sees a record.

* **MLflow** (the ``mlflow`` extra, ``mlflow-skinny`` is enough): one run per search with
  its resolved config as params, one child run per trial with its params, objectives and
  numeric metrics, its state as a tag and its artifact; works with a local file store
  (``tracking_uri: file:/path/mlruns``; MLflow 3 keeps it in maintenance and wants
  ``MLFLOW_ALLOW_FILE_STORE=true``, which naming one sets) or a tracking server
  (``http://host:5000``), or any store MLflow accepts (``sqlite:///path/mlflow.db``).
  A resumed search continues the same run (its id is kept in ``<run>/tracking.json``)
  and adds only the trials MLflow does not have yet.
* **TensorBoard** (``tensorboardX``, the ``tensorboard`` extra): scalars per trial
  number: each objective of a COMPLETE trial, and the front's size and hypervolume.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

#: Where a run keeps what its trackers need to continue after a resume.
STATE_FILE = "tracking.json"
TRIAL_TAG = "nascompress.trial_id"


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value, default=str) if not isinstance(value, str) else value
    return out


def _read_state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(run_dir: Path, **updates: Any) -> None:
    from nascompress.search.records import write_atomic

    write_atomic(run_dir / STATE_FILE, json.dumps({**_read_state(run_dir), **updates}))


class MlflowTracker:
    """One MLflow run per search, one child run per trial (through ``MlflowClient``,
    so no process-wide active run is touched)."""

    name = "mlflow tracking"

    def __init__(self, experiment, *, records: Iterable[Mapping[str, Any]] = ()) -> None:
        from mlflow.tracking import MlflowClient

        settings = experiment.config.tracking.mlflow
        uri = settings.tracking_uri or ""
        if uri.startswith("file:") or (uri and "://" not in uri):
            # MLflow 3 refuses its file store unless this is set; naming one in the config
            # is that choice (MLflow advises sqlite:///path/mlflow.db, full mlflow only).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.run_dir = experiment.run_dir.path
        self.models_dir = experiment.run_dir.models_dir
        self.artifacts = settings.artifacts
        self.objectives = [o.name for o in experiment.objectives]
        self.client = MlflowClient(tracking_uri=settings.tracking_uri)
        found = self.client.get_experiment_by_name(settings.experiment)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(settings.experiment))
        run_id = _read_state(self.run_dir).get("mlflow_run_id")
        if run_id:  # a resumed search continues its run
            self.client.update_run(run_id, status="RUNNING")
            children = self.client.search_runs(
                [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                max_results=50000)
            self._logged = {r.data.tags.get(TRIAL_TAG) for r in children}
        else:
            run = self.client.create_run(experiment_id, run_name=experiment.run_name, tags={
                "nascompress.run_dir": str(self.run_dir.resolve()),
                "nascompress.objectives": ",".join(self.objectives)})
            run_id = run.info.run_id
            _write_state(self.run_dir, mlflow_run_id=run_id,
                         mlflow_tracking_uri=self.client.tracking_uri)
            self._log_params(run_id, _flatten(experiment.config.model_dump()))
            self._logged = set()
        self.experiment_id, self.run_id = experiment_id, run_id
        self.client.set_tag(run_id, "nascompress.budget", str(experiment.config.trials))
        for record in records:
            self(record)

    def _log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])

    def __call__(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        trial_id = record["trial_id"]
        if trial_id in self._logged:
            return
        state = record.get("state", "FAILED")
        child = self.client.create_run(self.experiment_id, run_name=f"trial-{record['number']}",
                                       tags={"mlflow.parentRunId": self.run_id,
                                             TRIAL_TAG: trial_id, "nascompress.state": state,
                                             "nascompress.number": str(record["number"])})
        child_id = child.info.run_id
        self._log_params(child_id, {k: json.dumps(v) if not isinstance(v, str) else v
                                    for k, v in (record.get("params") or {}).items()})
        now = int(1000 * (record.get("finished_at") or 0)) or None
        values = {**{f"metrics.{k}": v for k, v in (record.get("metrics") or {}).items()},
                  **(record.get("objectives") or {})}
        metrics = [Metric(k, float(v), now or 0, 0) for k, v in values.items() if _finite(v)]
        for start in range(0, len(metrics), 500):
            self.client.log_batch(child_id, metrics=metrics[start:start + 500])
        if record.get("error"):
            self.client.set_tag(child_id, "nascompress.error", str(record["error"])[:5000])
        artifact = (record.get("metrics") or {}).get("artifact")
        if self.artifacts and isinstance(artifact, str):
            path = self.models_dir / Path(artifact).name
            if path.is_file():
                self.client.log_artifact(child_id, str(path), artifact_path="model")
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(child_id, status=status)
        self._logged.add(trial_id)

    def close(self, status: str) -> None:
        for name in ("pareto.json", "run.json"):
            path = self.run_dir / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        volume = _hypervolume(_read_json(self.run_dir / "pareto.json"))
        if _finite(volume):
            self.client.log_metric(self.run_id, "hypervolume", float(volume))
        self.client.set_terminated(self.run_id,
                                   status="FINISHED" if status == "finished" else "FAILED")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _hypervolume(pareto: Mapping[str, Any]) -> Any:
    volume = pareto.get("hypervolume")
    return volume.get("value") if isinstance(volume, Mapping) else volume


class TensorBoardTracker:
    """Scalars per trial number: ``objectives/<name>``, ``front/size``, ``front/hypervolume``."""

    name = "tensorboard tracking"

    def __init__(self, experiment) -> None:
        from tensorboardX import SummaryWriter

        settings = experiment.config.tracking.tensorboard
        self.run_dir = experiment.run_dir.path
        self.log_dir = Path(settings.log_dir) if settings.log_dir else self.run_dir / "tensorboard"
        self.writer = SummaryWriter(logdir=str(self.log_dir))
        self.objectives = [o.name for o in experiment.objectives]

    def __call__(self, record: Mapping[str, Any]) -> None:
        step = int(record["number"])
        if record.get("state") == "COMPLETE":
            for name in self.objectives:
                value = (record.get("objectives") or {}).get(name)
                if _finite(value):
                    self.writer.add_scalar(f"objectives/{name}", float(value), step)
        pareto = _read_json(self.run_dir / "pareto.json")
        if isinstance(pareto.get("front"), list):
            self.writer.add_scalar("front/size", len(pareto["front"]), step)
        volume = _hypervolume(pareto)
        if _finite(volume):
            self.writer.add_scalar("front/hypervolume", float(volume), step)
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


def start_trackers(
    experiment,
    *,
    records: Iterable[Mapping[str, Any]] = (),
    resume: bool = False,
    warn: Callable[[str, BaseException], None],
) -> list[Any]:
    """The trackers the config enables, started; one that cannot start is reported
    through ``warn`` and left out. ``records``: those already on disk (resume), which
    MLflow catches up with."""
    settings = getattr(experiment.config, "tracking", None)
    trackers: list[Any] = []
    if settings is None:
        return trackers
    records = list(records)
    if settings.mlflow.enabled:
        try:
            trackers.append(MlflowTracker(experiment, records=records))
        except ImportError as exc:
            warn(MlflowTracker.name, ImportError(
                f"{exc}; install the 'mlflow' extra (pip install 'nascompress[mlflow]')"))
        except Exception as exc:  # noqa: BLE001 - a tracker never stops the search
            warn(MlflowTracker.name, exc)
    if settings.tensorboard.enabled:
        try:
            trackers.append(TensorBoardTracker(experiment))
        except ImportError as exc:
            warn(TensorBoardTracker.name, ImportError(
                f"{exc}; install the 'tensorboard' extra (pip install 'nascompress[tensorboard]')"))
        except Exception as exc:  # noqa: BLE001
            warn(TensorBoardTracker.name, exc)
    return trackers
