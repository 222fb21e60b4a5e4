"""Choosing one model from a run's Pareto front.

Two rules, both over the non-dominated COMPLETE trials that meet every constraint (the
run's own constraints from ``run.json`` and the user's):

* **default** — the best value of the *primary* objective (``accuracy`` when the run has
  it, else its first objective); ties go to the smaller ``size_bytes``, then the lower
  ``latency_ms``, then the remaining objectives in the run's order, then the lower trial
  number, so the choice is deterministic.
* **knee** — the point with the smallest *normalized Chebyshev distance to the ideal
  point*. Every objective is mapped onto ``[0, 1]`` over the qualifying points (0 = the
  best value among them, the *ideal*; 1 = the worst, the *nadir*; an objective on which
  all points agree maps to 0), and a point's score is its largest normalized value, i.e.
  how far it is behind the best on its weakest objective. The knee is the point that
  gives up least on any objective; ties go to the smaller sum of normalized values, then
  the default order. The normalization is linear and taken over the qualifying points
  only: with one point the knee is that point; with two, both usually score 1 and the
  tie-breaks decide.

Constraints on objectives that point the same way as the objective (``accuracy >= x``,
``latency_ms <= y``) never exclude a point while keeping one that dominates it, so the
qualifying points are exactly the run's Pareto points that meet them. For other
constraints (a metric that is not an objective, or a bound in the other direction) the
front is recomputed among the trials that meet them, so the pick is still non-dominated
among those.

This module is pure Python like :mod:`nascompress.pareto`: no torch, no pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nascompress.objectives import Objective
from nascompress.pareto import (
    Constraint,
    TrialState,
    is_number,
    metric_value,
    objective_values_are_finite,
    pareto_front,
    score_source,
)
from nascompress.tables import format_cell

__all__ = [
    "ClosePoint",
    "NoQualifyingPointError",
    "PickResult",
    "closest_points",
    "constraint_violation",
    "describe_point",
    "known_metrics",
    "pick",
    "primary_objective",
]

#: Objectives used to break ties after the primary one, in this order, when present.
TIE_BREAKERS = ("size_bytes", "latency_ms")


@dataclass
class PickResult:
    """What :func:`pick` chose and why.

    Attributes:
        chosen: the chosen trial record (a dict of ``trials.jsonl``).
        qualifying: the non-dominated trials meeting every constraint, best first under
            the rule that was used.
        runner_up: the second of ``qualifying`` (``None`` when only one qualified).
        rule: ``"most-accurate"`` (the default rule; named after its usual primary
            objective) or ``"knee"``.
        constraints: the user's constraints.
        run_constraints: the run's own constraints (from ``run.json``).
        front_size: the number of points on the run's Pareto front (run constraints
            only), for "N of M qualified".
        scores: trial number -> knee score (only for the knee rule).
        explanation: the choice in words, several lines, ready to print.
    """

    chosen: Mapping[str, Any]
    qualifying: list[Mapping[str, Any]]
    runner_up: Mapping[str, Any] | None
    rule: str
    constraints: list[Constraint]
    run_constraints: list[Constraint]
    front_size: int
    scores: dict[int, float] = field(default_factory=dict)
    explanation: str = ""


@dataclass
class ClosePoint:
    """A front point that misses the constraints, with how far it misses them.

    Attributes:
        record: the trial record.
        violation: the sum over constraints of the normalized violation (see
            :func:`closest_points`); ``inf`` when a constrained metric is missing.
        misses: one ``(constraint, value, relative violation)`` per violated constraint.
    """

    record: Mapping[str, Any]
    violation: float
    misses: list[tuple[Constraint, Any, float]]

    def describe(self, objectives: Sequence[Objective]) -> str:
        """One line: the point's objectives and what it misses by how much."""
        parts = []
        for constraint, value, rel in self.misses:
            if is_number(value):
                gap = value - constraint.bound
                parts.append(f"{constraint.metric}={_fmt(value)} misses {constraint} by "
                             f"{_fmt(abs(gap))} ({rel:.0%} of the front's range)")
            else:
                parts.append(f"{constraint.metric} is not recorded")
        return f"{describe_point(self.record, objectives)}  -> {'; '.join(parts)}"


class NoQualifyingPointError(ValueError):
    """No Pareto point meets the constraints.

    Attributes:
        closest: the front points ranked by smallest normalized violation.
        explanation: the message plus one line per close point.
    """

    def __init__(self, message: str, *, closest: list[ClosePoint], explanation: str) -> None:
        super().__init__(message)
        self.closest = closest
        self.explanation = explanation


# --------------------------------------------------------------------------- helpers


def _fmt(value: Any) -> str:
    # As in the tables, but a missing value is named, not left blank, in a sentence.
    return "None" if value is None else format_cell(value)


def primary_objective(objectives: Sequence[Objective]) -> Objective:
    """``accuracy`` when it is an objective, else the first objective.

    Raises:
        ValueError: ``objectives`` is empty.
    """
    if not objectives:
        raise ValueError("objectives must name at least one objective, but got none")
    for objective in objectives:
        if objective.name == "accuracy":
            return objective
    return objectives[0]


def _default_order(objectives: Sequence[Objective]) -> list[Objective]:
    primary = primary_objective(objectives)
    by_name = {o.name: o for o in objectives}
    order = [primary] + [by_name[n] for n in TIE_BREAKERS if n in by_name and n != primary.name]
    return order + [o for o in objectives if o not in order]


def _default_key(record: Mapping[str, Any], order: Sequence[Objective]) -> tuple:
    values = record["objectives"]
    return (*(o.as_minimised(float(values[o.name])) for o in order), record.get("number", 0))


def known_metrics(trials: Sequence[Mapping[str, Any]]) -> set[str]:
    """Every objective and metric name that some COMPLETE trial records as a number."""
    names: set[str] = set()
    for trial in trials:
        if trial.get("state") != TrialState.COMPLETE:
            continue
        for part in ("objectives", "metrics"):
            names.update(k for k, v in (trial.get(part) or {}).items() if is_number(v))
    return names


def describe_point(record: Mapping[str, Any], objectives: Sequence[Objective]) -> str:
    """``#6 local_89274787  accuracy=0.9963 size_bytes=30650 latency_ms=0.2423``, with
    ``(score inherited)`` or ``(score fine-tuned)`` when the trial records its source."""
    values = record.get("objectives") or {}
    shown = " ".join(f"{o.name}={_fmt(values.get(o.name))}" for o in objectives)
    source = score_source(record)
    return (f"#{record.get('number')} {record.get('trial_id')}  {shown}"
            + (f" (score {source})" if source else ""))


def constraint_violation(constraint: Constraint, value: Any, *, scale: float) -> float:
    """How far ``value`` misses ``constraint``, relative to ``scale`` (0.0 when it meets it).

    Args:
        constraint: the bound.
        value: the trial's value of the constrained metric.
        scale: positive divisor making violations of different metrics comparable (see
            :func:`closest_points`).

    Returns:
        ``max(0, value - bound) / scale`` for ``<=``, ``max(0, bound - value) / scale``
        for ``>=``; ``inf`` when ``value`` is missing or not a finite number.
    """
    return max(0.0, constraint.gap(value)) / scale


def _violation_scale(constraint: Constraint, values: Sequence[float]) -> float:
    # Relative to the spread of the metric over the front, like the knee's normalization:
    # "accuracy 0.985 < 0.99" is then a small miss and "0.89 < 0.99" a large one, whatever
    # the units. Without a spread (one point, or all equal) the bound sets the scale.
    spread = (max(values) - min(values)) if values else 0.0
    if spread > 0:
        return spread
    return abs(constraint.bound) if constraint.bound != 0 else 1.0


def _check_constraints(
    trials: Sequence[Mapping[str, Any]], constraints: Sequence[Constraint], what: str
) -> None:
    for index, constraint in enumerate(constraints):
        if not isinstance(constraint, Constraint):
            raise TypeError(
                f"{what}[{index}] must be a Constraint, but got {type(constraint).__name__} "
                f"{constraint!r}"
            )
    known = known_metrics(trials)
    if not known:
        return  # nothing completed: the caller reports that, not a metric name
    for index, constraint in enumerate(constraints):
        if constraint.metric not in known:
            raise ValueError(
                f"{what}[{index}]: {str(constraint)!r} names {constraint.metric!r}, which no "
                f"COMPLETE trial records; known: {', '.join(sorted(known))}"
            )


# --------------------------------------------------------------------------- rules


def _knee_scores(
    points: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[tuple[float, float]]:
    """``(Chebyshev score, sum of normalized values)`` per point (see the module doc)."""
    columns = [[o.as_minimised(float(p["objectives"][o.name])) for p in points]
               for o in objectives]
    normalized_rows = [[0.0] * len(objectives) for _ in points]
    for j, column in enumerate(columns):
        ideal, nadir = min(column), max(column)
        span = nadir - ideal
        for i, value in enumerate(column):
            normalized_rows[i][j] = (value - ideal) / span if span > 0 else 0.0
    return [(max(row), sum(row)) for row in normalized_rows]


def _comparison(
    chosen: Mapping[str, Any], other: Mapping[str, Any], objectives: Sequence[Objective]
) -> str:
    """``accuracy 0.9963 vs 0.9926 (+0.0037, better); ...`` for every objective."""
    parts = []
    for o in objectives:
        a = float(chosen["objectives"][o.name])
        b = float(other["objectives"][o.name])
        if a == b:
            verdict = "tie"
        else:
            better = o.as_minimised(a) < o.as_minimised(b)
            verdict = "better" if better else "worse"
        parts.append(f"{o.name} {_fmt(a)} vs {_fmt(b)} ({verdict})")
    return "; ".join(parts)


def _default_reason(
    chosen: Mapping[str, Any], runner_up: Mapping[str, Any], order: Sequence[Objective]
) -> str:
    for o in order:
        a = float(chosen["objectives"][o.name])
        b = float(runner_up["objectives"][o.name])
        if a != b:
            word = "higher" if o.mode == "max" else "lower"
            tied = [p.name for p in order[: order.index(o)]]
            lead = f"ties on {', '.join(tied)} and " if tied else ""
            return f"it {lead}has the {word} {o.name}"
    return "all objectives tie, and it has the lower trial number"


def _constraint_text(constraints: Sequence[Constraint]) -> str:
    return ", ".join(str(c) for c in constraints) if constraints else "none"


def pick(
    trials: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    *,
    constraints: Sequence[Constraint] = (),
    run_constraints: Sequence[Constraint] = (),
    knee: bool = False,
) -> PickResult:
    """Choose one Pareto point of a run (rules in the module docstring).

    Args:
        trials: the run's trial records (``trials.jsonl``).
        objectives: the run's objectives, with their directions.
        constraints: the user's constraints, e.g. ``Constraint("latency_ms", "<=", 0.1)``.
        run_constraints: the run's own constraints (``RunDirectory.constraints()``); they
            define its Pareto front.
        knee: use the knee rule instead of the default (most accurate) rule.

    Returns:
        The choice, the qualifying points and an explanation.

    Raises:
        NoQualifyingPointError: no point meets every constraint; ``.closest`` ranks the
            run's front points by how little they miss (see :func:`closest_points`).
        ValueError: ``objectives`` is empty, or a constraint names a metric that no
            COMPLETE trial records (a typo would otherwise silently reject everything).
        TypeError: a constraint is not a :class:`Constraint`.
    """
    objectives = list(objectives)
    constraints, run_constraints = list(constraints), list(run_constraints)
    primary_objective(objectives)  # raises on an empty list, with a clear message
    _check_constraints(trials, constraints, "constraints")
    front = pareto_front(trials, objectives, run_constraints)
    qualifying = list(pareto_front(trials, objectives, run_constraints + constraints))
    header = [
        f"Run constraints: {_constraint_text(run_constraints)}",
        f"Your constraints: {_constraint_text(constraints)}",
    ]
    if not qualifying:
        complete = sum(1 for t in trials if t.get("state") == TrialState.COMPLETE)
        if not front:
            message = (f"no point qualifies: the run has no Pareto front ({complete} COMPLETE "
                       f"of {len(trials)} trials meet the run's constraints and objectives)")
            raise NoQualifyingPointError(
                message, closest=[], explanation="\n".join([*header, message])
            )
        closest = closest_points(trials, objectives, constraints=constraints,
                                 run_constraints=run_constraints)
        message = (f"no point qualifies: none of the {len(front)} Pareto points meets "
                   f"{_constraint_text(constraints)}")
        lines = [*header, message,
                 "Closest points (smallest constraint violation, normalized by the front's "
                 "range of each metric):"]
        lines += [f"  {point.describe(objectives)}" for point in closest]
        raise NoQualifyingPointError(message, closest=closest, explanation="\n".join(lines))

    order = _default_order(objectives)
    scores: dict[int, float] = {}
    if knee:
        knee_scores = _knee_scores(qualifying, objectives)
        ranked = sorted(
            zip(qualifying, knee_scores, strict=True),
            key=lambda pair: (*pair[1], _default_key(pair[0], order)),
        )
        qualifying = [record for record, _ in ranked]
        knee_by_number = {record.get("number"): score for record, score in ranked}
        scores = {number: score[0] for number, score in knee_by_number.items()}
        rule = "knee"
    else:
        qualifying.sort(key=lambda record: _default_key(record, order))
        rule = "most-accurate"
    chosen = qualifying[0]
    runner_up = qualifying[1] if len(qualifying) > 1 else None

    lines = [*header, f"Qualifying: {len(qualifying)} non-dominated point(s) meet them "
                      f"(the run's front has {len(front)})."]
    if knee:
        lines.append(
            "Rule: knee = smallest normalized Chebyshev distance to the ideal point (each "
            "objective scaled to [0, 1] between the best and worst qualifying values; the "
            "score is the largest scaled gap)."
        )
    else:
        tie = ", then ".join(o.name for o in order[1:])
        lines.append(f"Rule: best {order[0].name}" + (f"; ties: {tie}." if tie else "."))
    lines.append(f"Chosen: {describe_point(chosen, objectives)}")
    if knee:
        lines[-1] += f"  knee score {scores[chosen.get('number')]:.3f}"
    if runner_up is None:
        lines.append("It is the only qualifying point.")
    else:
        lines.append(f"Runner-up: {describe_point(runner_up, objectives)}"
                     + (f"  knee score {scores[runner_up.get('number')]:.3f}" if knee else ""))
        lines.append(f"Versus the runner-up: {_comparison(chosen, runner_up, objectives)}")
        if knee:
            a, b = knee_by_number[chosen.get("number")], knee_by_number[runner_up.get("number")]
            if a[0] < b[0]:
                why = (f"its weakest objective is closer to the best value "
                       f"({a[0]:.3f} vs {b[0]:.3f})")
            elif a[1] < b[1]:
                why = (f"the scores tie at {a[0]:.3f}, and its scaled gaps sum to less "
                       f"({a[1]:.3f} vs {b[1]:.3f})")
            else:
                why = (f"it ties on the score and the sum of gaps, and "
                       f"{_default_reason(chosen, runner_up, order)}")
            lines.append(f"Why: {why}.")
        else:
            lines.append(f"Why: {_default_reason(chosen, runner_up, order)}.")
    return PickResult(
        chosen=chosen, qualifying=qualifying, runner_up=runner_up, rule=rule,
        constraints=constraints, run_constraints=run_constraints, front_size=len(front),
        scores=scores, explanation="\n".join(lines),
    )


def closest_points(
    trials: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    *,
    constraints: Sequence[Constraint],
    run_constraints: Sequence[Constraint] = (),
    limit: int = 5,
) -> list[ClosePoint]:
    """The run's Pareto points ranked by how little they miss ``constraints``.

    A point's violation is the sum over constraints of ``gap / spread``, where ``gap`` is
    how far the value lies on the wrong side of the bound and ``spread`` the range of that
    metric over the front (``|bound|`` when the front has no spread, 1 when the bound is 0
    too): 0.1 means "a tenth of the front's range past the bound", comparable across
    units like the knee's normalization. Points that meet every constraint have violation
    0 and come first. Ties go to the default pick order.

    Args:
        trials: the run's trial records.
        objectives: the run's objectives.
        constraints: the user's constraints.
        run_constraints: the run's own constraints (they define the front).
        limit: at most this many points; an integer >= 1.

    Returns:
        Up to ``limit`` points, smallest violation first.

    Raises:
        ValueError: ``limit`` is not an integer >= 1.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, but got {limit!r}")
    front = [t for t in pareto_front(trials, objectives, run_constraints)
             if objective_values_are_finite(objectives, t.get("objectives"))]
    scales = {}
    for constraint in constraints:
        values = [float(v) for t in front if is_number(v := metric_value(t, constraint.metric))]
        scales[constraint] = _violation_scale(constraint, values)
    order = _default_order(objectives)
    points = []
    for record in front:
        misses = []
        total = 0.0
        for constraint in constraints:
            value = metric_value(record, constraint.metric)
            rel = constraint_violation(constraint, value, scale=scales[constraint])
            if rel > 0:
                misses.append((constraint, value, rel))
                total += rel
        points.append(ClosePoint(record=record, violation=total, misses=misses))
    points.sort(key=lambda p: (p.violation, _default_key(p.record, order)))
    return points[:limit]
