"""Python access to a finished (or running) search: ``load_run(path)``.

>>> run = load_run("results/my-run")                      # doctest: +SKIP
>>> run.front                                             # pandas DataFrame  # doctest: +SKIP
>>> choice = run.pick(max_latency_ms=0.2, min_accuracy=0.97)        # doctest: +SKIP
>>> print(choice.explanation)                             # doctest: +SKIP
>>> run.export(choice, format="onnx", out="model.onnx")   # doctest: +SKIP

Everything is recomputed from ``trials.jsonl`` (the source of truth), like the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascompress.objectives import Objective
from nascompress.pareto import Constraint, TrialState, is_feasible, pareto_front
from nascompress.picking import PickResult, pick
from nascompress.search.records import RunDirectory
from nascompress.tables import front_rows

if TYPE_CHECKING:
    import pandas

    from nascompress.export import Manifest

__all__ = ["RunResult", "constraints_from_kwargs", "load_run"]


def constraints_from_kwargs(bounds: Mapping[str, Any]) -> list[Constraint]:
    """``max_latency_ms=2`` -> ``latency_ms <= 2``; ``min_accuracy=0.9`` -> ``accuracy >= 0.9``.

    Any metric works the same way (``max_macs=...``); ``None`` values are skipped.

    Raises:
        ValueError: a key does not start with ``max_`` / ``min_``, or a bound is not a
            finite number.
    """
    constraints = []
    for key, bound in bounds.items():
        if bound is None:
            continue
        prefix, _, metric = key.partition("_")
        if prefix not in ("max", "min") or not metric:
            raise ValueError(
                f"{key}: constraints are given as max_<metric>=bound or min_<metric>=bound, "
                f"e.g. max_latency_ms=2.0, but got {key}={bound!r}"
            )
        try:
            constraints.append(Constraint(metric, "<=" if prefix == "max" else ">=", bound))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return constraints


@dataclass
class RunResult:
    """A run folder, read: trials, front, config, and ways to pick and export.

    Attributes:
        path: the run folder.
        run: the content of ``run.json``.
        records: the trial records of ``trials.jsonl``, by trial number.
        objectives: the run's objectives, with their directions.
        constraints: the run's constraints.
    """

    path: Path
    run: dict[str, Any]
    records: list[dict[str, Any]]
    objectives: list[Objective]
    constraints: list[Constraint]

    @property
    def name(self) -> str:
        return self.run.get("name") or self.path.name

    @property
    def config(self) -> dict[str, Any]:
        """The resolved experiment config recorded in ``run.json``."""
        return dict(self.run.get("config") or {})

    @property
    def front_records(self) -> list[dict[str, Any]]:
        """The Pareto front's trial records (recomputed, run constraints applied)."""
        return list(pareto_front(self.records, self.objectives, self.constraints))

    @property
    def front(self) -> pandas.DataFrame:
        """The Pareto front: columns ``number``, ``trial_id``, objectives, then params."""
        import pandas as pd

        rows = front_rows(self.front_records, self.objectives)
        return pd.DataFrame(rows, columns=self._columns(rows))

    @property
    def trials(self) -> pandas.DataFrame:
        """Every trial: ``number``, ``trial_id``, ``state``, objectives, params, then
        ``on_front``, ``feasible`` (meets the run's constraints), ``duration_s``, ``error``."""
        import pandas as pd

        on_front = {t.get("number") for t in self.front_records}
        rows = []
        for record, row in zip(self.records, front_rows(self.records, self.objectives),
                               strict=True):
            row = {"number": row.pop("number"), "trial_id": row.pop("trial_id"),
                   "state": record.get("state"), **row}
            row["on_front"] = record.get("number") in on_front
            row["feasible"] = record.get("state") == TrialState.COMPLETE and is_feasible(
                record, self.constraints)
            row["duration_s"] = record.get("duration_s")
            row["error"] = record.get("error")
            rows.append(row)
        return pd.DataFrame(rows, columns=self._columns(rows))

    def _columns(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        # Fixed leading columns even for an empty front, so code indexing them never breaks.
        columns = ["number", "trial_id", *[o.name for o in self.objectives]]
        for row in rows:
            columns += [k for k in row if k not in columns]
        return columns

    def record(self, trial: int | str) -> dict[str, Any]:
        """The record of a trial number or trial id.

        Raises:
            KeyError: no such trial.
        """
        for record in self.records:
            if record.get("number") == trial or record.get("trial_id") == trial:
                return record
        raise KeyError(f"trial: no trial {trial!r} in {self.path}")

    def pick(
        self, *, knee: bool = False, constraints: Sequence[str | Constraint] = (),
        **bounds: float | None,
    ) -> PickResult:
        """Choose a Pareto point (see :mod:`nascompress.picking` for the rules).

        Args:
            knee: choose the knee point instead of the most accurate one.
            constraints: extra constraints as text (``"macs <= 5e4"``) or objects.
            **bounds: ``max_<metric>=value`` / ``min_<metric>=value``, e.g.
                ``max_latency_ms=0.2, max_size_bytes=20_000, min_accuracy=0.97``.

        Returns:
            The choice and its explanation.

        Raises:
            NoQualifyingPointError: nothing meets the constraints (``.closest`` has the
                nearest points).
            ValueError: a malformed bound or constraint, or a metric no trial records.
        """
        parsed = [c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints]
        parsed += constraints_from_kwargs(bounds)
        return pick(self.records, self.objectives, constraints=parsed,
                    run_constraints=self.constraints, knee=knee)

    def export(
        self,
        trial: PickResult | Mapping[str, Any] | int | str | None = None,
        *,
        format: str = "onnx",
        out: str | os.PathLike,
    ) -> Manifest:
        """Export a trial's compressed model, re-checked on the test split.

        Args:
            trial: a :class:`PickResult`, a record, a trial number or id; default: the
                default :meth:`pick` without constraints.
            format: ``"onnx"``, ``"torchscript"`` or ``"state_dict"``.
            out: the file to write (its manifest goes to ``<out>.manifest.json``).

        Returns:
            The manifest.
        """
        from nascompress.export import export_pick

        if trial is None:
            record = self.pick().chosen
        elif isinstance(trial, PickResult):
            record = trial.chosen
        elif isinstance(trial, Mapping):
            record = trial
        else:
            record = self.record(trial)
        return export_pick(self.path, record, format=format, out=out)

    def report(self, *, out: str | os.PathLike | None = None) -> Path:
        """Write the HTML report (needs the ``report`` extra); returns its path."""
        from nascompress.report import build_report

        return build_report(self.path, out=out)


def load_run(path: str | os.PathLike) -> RunResult:
    """Read a run folder (``results/<run>``).

    Args:
        path: the folder holding ``run.json`` and ``trials.jsonl``.

    Returns:
        The run; its front is recomputed from ``trials.jsonl``.

    Raises:
        FileNotFoundError: ``path`` has no ``run.json``.
    """
    run_dir = RunDirectory(path)
    run = run_dir.read_run()
    records = sorted(run_dir.load_trials(), key=lambda t: t.get("number", 0))
    return RunResult(path=run_dir.path, run=run, records=records,
                     objectives=run_dir.objectives(), constraints=run_dir.constraints())
