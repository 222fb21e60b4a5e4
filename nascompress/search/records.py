"""Records on disk: ``run.json``, the append-only ``trials.jsonl``, and derived Pareto files.

``trials.jsonl`` is the source of truth: one JSON object per finished trial, appended,
flushed and fsynced. Everything else (``pareto.json``, ``pareto.csv``) is derived from it
and rewritten atomically (temporary file + rename), so a crash never leaves a half file.
"""

from __future__ import annotations

import csv
import io
import json
import numbers
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nascompress.objectives import Objective
from nascompress.pareto import (
    RECORDED_STATES,
    Constraint,
    TrialState,
    front_hypervolume,
    is_finite_number,
    is_number,
    pareto_front,
    reference_point,
)
from nascompress.tables import front_rows

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
TRIALS_FILE = "trials.jsonl"
PARETO_JSON = "pareto.json"
PARETO_CSV = "pareto.csv"
MODELS_DIR = "models"
STATES = RECORDED_STATES


@dataclass
class TrialRecord:
    """One finished trial, as written to ``trials.jsonl``."""

    number: int
    trial_id: str
    state: str
    params: dict[str, Any]
    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    #: ``"search"``, or ``"final"`` for a finishing-stage trial (see
    #: :func:`nascompress.pareto.front_pool`); older records have no field: ``"search"``.
    stage: str = "search"

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, but got {self.state!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json_safe(value: Any) -> Any:
    """Replace non-finite numbers by None (JSON has no NaN, and readers must not choke),
    and numpy scalars by the Python int or float they stand for (json cannot write them).
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # always finite, and exact however large
    if is_number(value):
        return float(value) if is_finite_number(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDirectory:
    """A run's folder ``<output_dir>/<name>/`` and the files in it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def models_dir(self) -> Path:
        return self.path / MODELS_DIR

    def exists(self) -> bool:
        return (self.path / RUN_FILE).exists()

    def write_run(self, run: Mapping[str, Any]) -> None:
        """Write ``run.json`` (atomically)."""
        data = {"schema_version": SCHEMA_VERSION, **run}
        write_atomic(self.path / RUN_FILE, json.dumps(_json_safe(data), indent=2) + "\n")

    def read_run(self) -> dict[str, Any]:
        path = self.path / RUN_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{self.path} is not a nascompress run: {RUN_FILE} is missing"
            )
        return json.loads(path.read_text(encoding="utf-8"))

    def objectives(self) -> list[Objective]:
        return [Objective.from_dict(o) for o in self.read_run()["objectives"]]

    def constraints(self) -> list[Constraint]:
        return [Constraint.parse(c) for c in self.read_run().get("constraints", [])]

    def append_trial(self, record: TrialRecord) -> None:
        """Append one record and force it to disk before returning."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_json_safe(record.to_dict()), sort_keys=False)
        with open(self.path / TRIALS_FILE, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def load_trials(self) -> list[dict[str, Any]]:
        """All trial records; a torn (truncated) last line is skipped with a warning."""
        path = self.path / TRIALS_FILE
        if not path.exists():
            return []
        records = []
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if index == len(lines) - 1:
                    warnings.warn(f"{path}: ignoring a truncated last line", stacklevel=2)
                    continue
                raise ValueError(f"{path}: line {index + 1} is not valid JSON") from None
        return records

    def repair_trials(self) -> int:
        """Drop a torn (truncated) last line of ``trials.jsonl``; returns lines dropped.

        Needed before appending again: a torn line followed by new records would turn a
        recoverable tail into corruption in the middle of the log.
        """
        path = self.path / TRIALS_FILE
        if not path.exists():
            return 0
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if not lines:
            return 0
        try:
            json.loads(lines[-1])
            if text.endswith("\n"):
                return 0
            kept = lines  # complete JSON but no newline: only the newline is missing
            dropped = 0
        except json.JSONDecodeError:
            kept, dropped = lines[:-1], 1
        write_atomic(path, "".join(line + "\n" for line in kept))
        return dropped

    def write_pareto(
        self,
        trials: Sequence[Mapping[str, Any]],
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        reference: Mapping[str, float] | None = None,
    ) -> tuple[list[Mapping[str, Any]], float]:
        """Recompute the front from ``trials`` and rewrite ``pareto.json`` / ``pareto.csv``.

        Returns the front and its hypervolume (as recorded in ``pareto.json``).
        """
        front = pareto_front(trials, objectives, constraints)
        ref = dict(reference) if reference else reference_point(trials, objectives)
        volume = front_hypervolume(front, objectives, ref) if front and ref else 0.0
        payload = {
            "objectives": [o.to_dict() for o in objectives],
            "constraints": [f"{c.metric} {c.op} {c.bound}" for c in constraints],
            "hypervolume": {"value": volume, "reference": ref,
                            "rule": "given" if reference else "default reference_point()"},
            "n_trials": len(trials),
            "n_complete": sum(1 for t in trials if t.get("state") == TrialState.COMPLETE),
            "front": [dict(t) for t in front],
        }
        write_atomic(self.path / PARETO_JSON, json.dumps(_json_safe(payload), indent=2) + "\n")
        rows = front_rows(front, objectives)
        write_atomic(self.path / PARETO_CSV, rows_to_csv(rows))
        return front, volume


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text with the union of keys as header, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return buffer.getvalue()
