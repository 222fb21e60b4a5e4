"""What the report shows, computed from a run folder: no plotting here, no optional imports."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from nascompress.objectives import Objective
from nascompress.pareto import (
    Constraint,
    TrialState,
    dominates,
    front_hypervolume,
    is_candidate,
    objective_values_are_finite,
    pareto_front,
    reference_point,
)
from nascompress.search.records import PARETO_JSON, RunDirectory
from nascompress.tables import format_cell


@dataclass
class ReportData:
    """A run, read and digested for the report.

    Attributes:
        path: the run folder.
        run: ``run.json``.
        trials: every record of ``trials.jsonl``, by trial number.
        objectives: the run's objectives.
        constraints: the run's constraints.
        front: the Pareto front, recomputed from ``trials``.
        reference: the hypervolume reference point (see :func:`run_reference`).
        reference_rule: where the reference comes from, in words.
        history: ``(trial number, hypervolume of the front after that trial)``.
    """

    path: Path
    run: dict[str, Any]
    trials: list[dict[str, Any]]
    objectives: list[Objective]
    constraints: list[Constraint]
    front: list[Mapping[str, Any]]
    reference: dict[str, float]
    reference_rule: str
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def front_numbers(self) -> set[int]:
        return {t.get("number") for t in self.front}

    @property
    def complete(self) -> list[dict[str, Any]]:
        """COMPLETE trials with a finite value for every objective (the plottable ones)."""
        return [t for t in self.trials if t.get("state") == TrialState.COMPLETE
                and objective_values_are_finite(self.objectives, t.get("objectives"))]

    def pairs(self) -> list[tuple[Objective, Objective]]:
        """Every pair of objectives, in the run's order."""
        return list(combinations(self.objectives, 2))


def run_reference(
    run_dir: RunDirectory, trials: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> tuple[dict[str, float], str]:
    """The run's final hypervolume reference point and how it was chosen.

    A reference the run was *given* (recorded in ``pareto.json`` with rule ``given``) is
    kept; otherwise it is :func:`~nascompress.pareto.reference_point` over all
    trials, i.e. the reference the run ends with. One fixed reference for the whole
    history keeps the curve monotone: a reference recomputed per step would move with the
    worst trial seen so far.
    """
    path = run_dir.path / PARETO_JSON
    if path.exists():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8")).get("hypervolume") or {}
        except (OSError, json.JSONDecodeError):
            recorded = {}
        ref = recorded.get("reference") or {}
        if recorded.get("rule") == "given" and all(o.name in ref for o in objectives):
            return {o.name: float(ref[o.name]) for o in objectives}, "given to the run"
    return reference_point(trials, objectives), "reference_point() over all trials (final)"


def hypervolume_history(
    trials: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    reference: Mapping[str, float],
) -> list[tuple[int, float]]:
    """Hypervolume of the front after each trial, in trial-number order.

    The front is kept incrementally (a new point either is dominated and changes nothing,
    or evicts what it dominates), so the cost is one hypervolume per front change.

    Returns:
        ``(number, hypervolume)`` for every trial; ``[]`` without a reference point.
    """
    if not reference or not objectives:
        return []
    history: list[tuple[int, float]] = []
    front: list[Mapping[str, Any]] = []
    volume = 0.0
    for trial in sorted(trials, key=lambda t: t.get("number", 0)):
        if is_candidate(trial, objectives, constraints):
            values = trial["objectives"]
            if not any(dominates(other["objectives"], values, objectives) for other in front):
                front = [other for other in front
                         if not dominates(values, other["objectives"], objectives)]
                front.append(trial)
                volume = front_hypervolume(front, objectives, reference)
        history.append((trial.get("number", len(history)), volume))
    return history


def load_report_data(path: str | Path) -> ReportData:
    """Read a run folder for the report.

    Raises:
        FileNotFoundError: ``path`` has no ``run.json``.
    """
    run_dir = RunDirectory(path)
    run = run_dir.read_run()
    objectives = run_dir.objectives()
    constraints = run_dir.constraints()
    trials = sorted(run_dir.load_trials(), key=lambda t: t.get("number", 0))
    front = pareto_front(trials, objectives, constraints)
    reference, rule = run_reference(run_dir, trials, objectives)
    history = hypervolume_history(trials, objectives, constraints, reference)
    return ReportData(path=run_dir.path, run=run, trials=trials, objectives=objectives,
                      constraints=constraints, front=front, reference=reference,
                      reference_rule=rule, history=history)


def format_value(value: Any) -> str:
    """Cell text: :func:`~nascompress.tables.format_cell`, with mappings and lists as JSON."""
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return format_cell(value)


def param_names(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """The union of parameter names, in first-seen order."""
    return list(dict.fromkeys(k for t in trials for k in (t.get("params") or {})))
