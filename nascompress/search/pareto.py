"""Pareto fronts, constraints and hypervolume over trial records.

Trial records are the dicts of ``trials.jsonl`` (see DESIGN.md section 5): ``state``,
``objectives`` (name -> value), ``metrics``, ``params`` (flat), ``number``, ``trial_id``.

This module is pure Python on purpose: the controller, the CLI and the report all call it,
and it must stay cheap to import and easy to test (no numpy, torch, ray or pandas).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nascompress.objectives import Objective, objective_values_are_finite

__all__ = [
    "CONSTRAINT_OPS",
    "Constraint",
    "describe_reference_rule",
    "dominates",
    "format_table",
    "front_hypervolume",
    "front_rows",
    "hypervolume",
    "is_feasible",
    "pareto_front",
    "reference_point",
]

CONSTRAINT_OPS = ("<=", ">=")

# The metric is any run of characters without whitespace or comparison symbols, so flat
# names like ``latency_ms`` or ``arch/depth`` parse; the bound is checked by float() below.
_CONSTRAINT_RE = re.compile(r"^\s*(?P<metric>[^\s<>=!]+)\s*(?P<op><=|>=)\s*(?P<bound>\S+)\s*$")


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True as a latency is a bug upstream, not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- dominance


def dominates(
    a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[Objective]
) -> bool:
    """Whether objective values ``a`` Pareto-dominate ``b``.

    ``a`` dominates ``b`` when it is no worse in every objective and strictly better in at
    least one, each objective read in its own direction (``max`` or ``min``). Equal vectors
    do not dominate each other.

    Args:
        a: objective name -> value.
        b: objective name -> value.
        objectives: the objectives to compare on; other keys are ignored.

    Returns:
        True when ``a`` dominates ``b``.

    Raises:
        KeyError: an objective is missing from ``a`` or ``b``.
    """
    strictly_better = False
    for objective in objectives:
        va = objective.as_minimised(a[objective.name])
        vb = objective.as_minimised(b[objective.name])
        # Written as "not (va <= vb)" so that a NaN never counts as "no worse".
        if not va <= vb:
            return False
        if va < vb:
            strictly_better = True
    return strictly_better


def _dominates_vector(a: Sequence[float], b: Sequence[float]) -> bool:
    """Dominance on already-minimised vectors of equal length."""
    strictly_better = False
    for va, vb in zip(a, b, strict=True):
        if va > vb:
            return False
        if va < vb:
            strictly_better = True
    return strictly_better


# --------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Constraint:
    """A bound on one metric, e.g. ``Constraint("latency_ms", "<=", 2.0)``.

    Args:
        metric: key looked up in a trial's ``objectives`` first, then in its ``metrics``.
        op: ``"<="`` or ``">="``.
        bound: a finite number; stored as ``float``.
    """

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise ValueError(
                f"constraint metric must be a non-empty string, but got {self.metric!r}"
            )
        if self.op not in CONSTRAINT_OPS:
            raise ValueError(
                f"constraint on {self.metric!r}: op must be '<=' or '>=', but got {self.op!r}"
            )
        if not _is_number(self.bound) or not math.isfinite(self.bound):
            raise ValueError(
                f"constraint on {self.metric!r}: bound must be a finite number, "
                f"but got {self.bound!r}"
            )
        # Normalise so that parse("x <= 2") == Constraint("x", "<=", 2) serialises identically.
        object.__setattr__(self, "bound", float(self.bound))

    def satisfied(self, value: Any) -> bool:
        """Whether ``value`` meets the bound; missing, non-numeric or NaN values do not."""
        if not _is_number(value) or math.isnan(value):
            return False
        return value <= self.bound if self.op == "<=" else value >= self.bound

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse ``"metric <= bound"`` or ``"metric >= bound"`` (spaces optional).

        Args:
            text: e.g. ``"latency_ms <= 2"`` or ``"accuracy>=0.9"``.

        Returns:
            The constraint.

        Raises:
            ValueError: ``text`` does not have that form; the message quotes ``text``.
        """
        if not isinstance(text, str):
            raise ValueError(
                f"constraint must be a string like 'latency_ms <= 2', but got {text!r}"
            )
        match = _CONSTRAINT_RE.match(text)
        if match is None:
            raise ValueError(
                "constraint must look like 'metric <= bound' or 'metric >= bound', "
                f"but got {text!r}"
            )
        try:
            bound = float(match["bound"])
        except ValueError:
            raise ValueError(
                f"constraint bound must be a number, but got {match['bound']!r} in {text!r}"
            ) from None
        if not math.isfinite(bound):
            raise ValueError(f"constraint bound must be finite, but got {text!r}")
        return cls(match["metric"], match["op"], bound)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as recorded in ``run.json``."""
        return {"metric": self.metric, "op": self.op, "bound": self.bound}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Constraint:
        """Inverse of :meth:`to_dict`."""
        return cls(data["metric"], data["op"], data["bound"])

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def _lookup_metric(trial: Mapping[str, Any], metric: str) -> Any:
    objectives = trial.get("objectives") or {}
    if metric in objectives:
        return objectives[metric]
    return (trial.get("metrics") or {}).get(metric)


def is_feasible(trial: Mapping[str, Any], constraints: Sequence[Constraint]) -> bool:
    """Whether ``trial`` meets every constraint.

    Each metric is looked up in ``trial["objectives"]`` first, then ``trial["metrics"]``. A
    metric that is missing or not a number makes the trial infeasible: a trial whose
    feasibility cannot be shown must not reach the front. Constraint names should therefore
    be validated against the known metrics when a run is configured, since a typo here
    silently empties the front.

    Args:
        trial: a trial record.
        constraints: the constraints; an empty sequence accepts every trial.

    Returns:
        True when every constraint is satisfied.
    """
    return all(c.satisfied(_lookup_metric(trial, c.metric)) for c in constraints)


# --------------------------------------------------------------------------- front


def _minimised_vector(trial: Mapping[str, Any], objectives: Sequence[Objective]) -> list[float]:
    values = trial["objectives"]
    return [o.as_minimised(values[o.name]) for o in objectives]


def _is_candidate(
    trial: Mapping[str, Any],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
) -> bool:
    return (
        trial.get("state") == "COMPLETE"
        and objective_values_are_finite(objectives, trial.get("objectives"))
        and is_feasible(trial, constraints)
    )


def pareto_front(
    trials: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
) -> list[Mapping[str, Any]]:
    """The non-dominated COMPLETE feasible trials.

    Candidates are trials with ``state == "COMPLETE"``, a finite number for every objective
    and every constraint satisfied (see :func:`is_feasible`). A candidate is on the front
    when no other candidate dominates it; trials with identical objective vectors are all
    kept, since neither dominates the other. O(n^2) in the number of candidates.

    Args:
        trials: trial records.
        objectives: the objectives, with their directions.
        constraints: feasibility constraints.

    Returns:
        The front's trial records (the same objects), in input order.

    Raises:
        ValueError: ``objectives`` is empty.
    """
    if not objectives:
        raise ValueError("pareto_front needs at least one objective, but got none")
    candidates = [t for t in trials if _is_candidate(t, objectives, constraints)]
    vectors = [_minimised_vector(t, objectives) for t in candidates]
    return [
        trial
        for trial, vector in zip(candidates, vectors, strict=True)
        if not any(_dominates_vector(other, vector) for other in vectors)
    ]


# --------------------------------------------------------------------------- hypervolume


def _hv2d(points: list[tuple[float, ...]], ref: Sequence[float]) -> float:
    # Sweep by the first coordinate: each point that lowers the best second coordinate so
    # far adds the strip between its own and the previous best, reaching out to ref[0].
    volume = 0.0
    best_y = ref[1]
    for x, y in sorted(points):
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


def _insert_nondominated(front: list[tuple[float, ...]], point: tuple[float, ...]) -> None:
    """Add ``point`` to a mutually non-dominated ``front`` in place, weakly filtered."""
    for other in front:
        if all(o <= p for o, p in zip(other, point, strict=True)):
            return  # weakly dominated (or equal): adds no volume
    front[:] = [o for o in front if not all(p <= q for p, q in zip(point, o, strict=True))]
    front.append(point)


def _hv(points: list[tuple[float, ...]], ref: Sequence[float]) -> float:
    """Hypervolume by slicing (HSO) on points strictly inside ``ref``."""
    dim = len(ref)
    if not points:
        return 0.0
    if dim == 1:
        return ref[0] - min(p[0] for p in points)
    if dim == 2:
        return _hv2d(points, ref)
    # Sweep the last coordinate upwards. Between consecutive levels the covered region is
    # constant: the (d-1)-dimensional union of the points seen so far. Keeping only the
    # non-dominated projections keeps each lower-dimensional call small.
    ordered = sorted(points, key=lambda p: p[-1])
    sub_ref = ref[:-1]
    projected: list[tuple[float, ...]] = []
    volume = 0.0
    for i, point in enumerate(ordered):
        _insert_nondominated(projected, point[:-1])
        upper = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        depth = upper - point[-1]
        if depth > 0.0:  # ties in the last coordinate share one slice
            volume += depth * _hv(projected, sub_ref)
    return volume


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by minimisation ``points`` up to ``reference``.

    The volume of the union of the boxes ``[p, reference]``. Points that are not strictly
    better than the reference in every coordinate contribute nothing. Uses hypervolume by
    slicing objectives (dimension sweep, with an O(n log n) sweep in 2-D); 3 objectives and
    a few hundred points take milliseconds.

    Args:
        points: minimisation vectors, all of the reference's length.
        reference: the reference point, finite, at least one coordinate.

    Returns:
        The hypervolume (0.0 for no contributing points).

    Raises:
        ValueError: the reference is empty or not finite, a point has a different length,
            or a point has a non-finite coordinate.
    """
    ref = tuple(float(r) for r in reference)
    if not ref:
        raise ValueError("hypervolume reference must have at least one coordinate, but got ()")
    if not all(math.isfinite(r) for r in ref):
        raise ValueError(f"hypervolume reference must be finite, but got {tuple(reference)!r}")
    inside: list[tuple[float, ...]] = []
    for point in points:
        vector = tuple(float(v) for v in point)
        if len(vector) != len(ref):
            raise ValueError(
                f"hypervolume point must have {len(ref)} coordinates like the reference, "
                f"but got {tuple(point)!r}"
            )
        if not all(math.isfinite(v) for v in vector):
            raise ValueError(f"hypervolume point must be finite, but got {tuple(point)!r}")
        if all(v < r for v, r in zip(vector, ref, strict=True)):
            inside.append(vector)
    if not inside:
        return 0.0
    front: list[tuple[float, ...]] = []
    for vector in inside:
        _insert_nondominated(front, vector)
    return _hv(front, ref)


def front_hypervolume(
    front: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    reference: Mapping[str, float],
) -> float:
    """Hypervolume of trial records in the objectives' own units.

    Values and the reference are mapped with :meth:`Objective.as_minimised`, so for a
    ``max`` objective the reference is a lower bound (e.g. accuracy 0.0).

    Args:
        front: trial records (usually :func:`pareto_front`'s result); other trials are
            allowed, dominated ones add nothing.
        objectives: the objectives, with their directions.
        reference: objective name -> reference value (see :func:`reference_point`).

    Returns:
        The hypervolume.

    Raises:
        ValueError: ``objectives`` is empty, or ``reference`` lacks one of them.
    """
    if not objectives:
        raise ValueError("front_hypervolume needs at least one objective, but got none")
    missing = [o.name for o in objectives if o.name not in reference]
    if missing:
        raise ValueError(
            f"reference point must give every objective, but {missing!r} are missing "
            f"from {dict(reference)!r}"
        )
    ref = [o.as_minimised(reference[o.name]) for o in objectives]
    return hypervolume([_minimised_vector(t, objectives) for t in front], ref)


def describe_reference_rule(*, margin: float = 0.1) -> str:
    """The rule of :func:`reference_point` in words, for recording next to its value."""
    return (
        "COMPLETE trials with finite objectives; 'max' objectives whose values all lie in "
        f"[0, 1] -> 0.0; otherwise the worst value w moved by {margin:g}*|w| in the worse "
        f"direction (by {margin:g} when w == 0)"
    )


def reference_point(
    trials: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    *,
    margin: float = 0.1,
) -> dict[str, float]:
    """A default hypervolume reference point derived from the observed trials.

    Rule, per objective, over trials with ``state == "COMPLETE"`` and a finite value for
    every objective (constraints are deliberately ignored, so that the reference does not
    move when constraints change):

    * a ``max`` objective whose values all lie in ``[0, 1]`` (a fraction such as accuracy)
      gets ``0.0``, the natural worst value;
    * otherwise take the worst observed value ``w`` (largest for ``min``, smallest for
      ``max``) and move it further in the worse direction by ``margin * |w|``, or by
      ``margin`` itself when ``w == 0``. For ``min`` with ``w > 0`` this is ``w * (1 +
      margin)``.

    With ``margin > 0`` every candidate is strictly better than the reference, so every
    front point contributes. :func:`describe_reference_rule` gives the rule as text.

    Args:
        trials: trial records.
        objectives: the objectives, with their directions.
        margin: relative push past the worst value; finite and ``>= 0``.

    Returns:
        Objective name -> reference value; ``{}`` when no trial qualifies.

    Raises:
        ValueError: ``margin`` is negative or not finite.
    """
    if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, but got {margin!r}")
    candidates = [
        t
        for t in trials
        if t.get("state") == "COMPLETE"
        and objective_values_are_finite(objectives, t.get("objectives"))
    ]
    if not candidates:
        return {}
    reference: dict[str, float] = {}
    for objective in objectives:
        values = [float(t["objectives"][objective.name]) for t in candidates]
        if objective.mode == "max" and all(0.0 <= v <= 1.0 for v in values):
            reference[objective.name] = 0.0
            continue
        worst = max(values) if objective.mode == "min" else min(values)
        push = margin * abs(worst) if worst != 0 else margin
        reference[objective.name] = worst + push if objective.mode == "min" else worst - push
    return reference


# --------------------------------------------------------------------------- tables


def front_rows(
    front: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[dict[str, Any]]:
    """Flat rows for tables and CSV: ``number``, ``trial_id``, objectives, then params.

    Params keep their flat names (``arch/depth``). A param whose name collides with one of
    the leading columns is written as ``param:<name>`` instead of overwriting it.

    Args:
        front: trial records.
        objectives: the objectives, in column order.

    Returns:
        One dict per trial, keys in column order; rows may differ in their param keys.
    """
    rows = []
    for trial in front:
        values = trial.get("objectives") or {}
        row: dict[str, Any] = {"number": trial.get("number"), "trial_id": trial.get("trial_id")}
        for objective in objectives:
            row[objective.name] = values.get(objective.name)
        for key, value in (trial.get("params") or {}).items():
            row[f"param:{key}" if key in row else key] = value
        rows.append(row)
    return rows


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Whole numbers (byte counts) print whole: 12203, not 1.22e+04.
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table with aligned columns.

    Numbers are right-aligned, everything else left-aligned; floats get 4 significant
    digits, ints and whole floats are printed whole, missing cells are blank.

    Args:
        rows: one mapping per row.
        columns: the columns to show, in order; default: every key, in first-seen order.

    Returns:
        Header, a dashed rule and one line per row, joined by newlines (no trailing
        newline); ``""`` when there are neither rows nor columns.
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    columns = list(columns)
    if not columns:
        return ""
    cells = [[_format_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [
        any(_is_number(row.get(c)) for row in rows)
        and all(row.get(c) is None or _is_number(row.get(c)) for row in rows)
        for c in columns
    ]
    widths = [max([len(str(c))] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]

    def render(line: Sequence[str]) -> str:
        parts = [
            text.rjust(width) if is_num else text.ljust(width)
            for text, width, is_num in zip(line, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [render([str(c) for c in columns]), render(["-" * w for w in widths])]
    lines.extend(render(line) for line in cells)
    return "\n".join(lines)
