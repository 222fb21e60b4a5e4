"""The multi-objective core: trial states, numbers, dominance, fronts, constraints, volume.

Everything that compares trials on several objectives lives here, once: the strategies,
early stopping, the records, picking, the report and the CLI all import it. Trial records
are the dicts of ``trials.jsonl`` (see DESIGN.md section 5): ``state``, ``objectives``
(name -> value), ``metrics``, ``params`` (flat), ``number``, ``trial_id``.

Two shapes of input, one implementation:

* **records and mappings** carry objective values by name in their own direction
  (``max`` or ``min``); the functions taking :class:`~nascompress.objectives.Objective`
  convert them with :meth:`~nascompress.objectives.Objective.as_minimised` and call
* **minimisation vectors**: sequences of floats, smaller is better in every coordinate,
  on which dominance, non-dominated ranks, crowding distance and hypervolume are defined.

This module is pure Python on purpose, at the bottom of the import graph (it imports
nothing from nascompress but :mod:`nascompress.objectives`): it must stay cheap to import
and easy to test (no numpy, torch, ray or pandas). Numbers from numpy are still accepted
wherever a number is (:func:`is_number` goes by :class:`numbers.Real`, which numpy's
scalar types register with).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from nascompress.objectives import Objective

__all__ = [
    "CONSTRAINT_OPS",
    "RECORDED_STATES",
    "TRIAL_STATES",
    "Constraint",
    "TrialState",
    "constraint_violation",
    "crowding_distances",
    "describe_reference_rule",
    "dominates",
    "dominates_vector",
    "front_hypervolume",
    "hypervolume",
    "is_candidate",
    "is_feasible",
    "is_finite_number",
    "is_number",
    "metric_value",
    "minimised_vector",
    "nondominated_ranks",
    "objective_values_are_finite",
    "pareto_front",
    "front_pool",
    "score_source",
    "FINAL_STAGE",
    "rank_and_crowding",
    "reference_point",
]


# --------------------------------------------------------------------------- trial states


class TrialState:
    """How a trial ended: the one definition of the state names.

    The values are plain strings, so that records, JSON and messages read exactly as
    before (``trials.jsonl`` holds ``"state": "COMPLETE"``) and a state read back from
    disk compares equal to the constant.

    Attributes:
        COMPLETE: the trial ran to the end and reported its objectives.
        FAILED: the trial raised, timed out, or reported a missing or non-finite objective.
        PRUNED: the trial was stopped early (early stopping, a prefilter); never on a front.
        INVALID: the search space's joint constraints rejected the proposal before any
            compute was spent. Strategies are told it; it is never recorded.
    """

    COMPLETE: Final = "COMPLETE"
    FAILED: Final = "FAILED"
    PRUNED: Final = "PRUNED"
    INVALID: Final = "INVALID"


#: Every state a strategy can be told.
TRIAL_STATES: Final = (
    TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED, TrialState.INVALID,
)

#: The states a record in ``trials.jsonl`` can have (INVALID proposals never run).
RECORDED_STATES: Final = (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)


# --------------------------------------------------------------------------- numbers


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number: ``int``, ``float`` or a numpy scalar, not ``bool``.

    ``bool`` is an ``int`` subclass, but ``True`` as a latency is a bug upstream, not a
    number. Strings are never numbers, even when ``float()`` would parse them. NaN and
    infinities are numbers here (see :func:`is_finite_number`).
    """
    # numbers.Real admits numpy.float32 / numpy.int64 (they register with it) without
    # importing numpy; numpy.bool_ does not register, so it is rejected like bool.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a real number (see :func:`is_number`) with a finite float value.

    The one check of "usable as an objective or metric value" in the package. An ``int``
    too large for a float is not finite here: it could not be compared or recorded.

    Args:
        value: anything.

    Returns:
        True for e.g. ``1``, ``0.5``, ``numpy.float32(0.5)``, ``numpy.int64(3)``; False for
        ``True``, ``"1.0"``, ``None``, NaN and infinities.
    """
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def objective_values_are_finite(
    objectives: Sequence[Objective], values: Mapping[str, Any] | None
) -> bool:
    """True when ``values`` holds a finite number (:func:`is_finite_number`) for every objective."""
    if not values:
        return False
    return all(is_finite_number(values.get(o.name)) for o in objectives)


# --------------------------------------------------------------------------- dominance


def dominates_vector(
    a: Sequence[float], b: Sequence[float], margins: Sequence[float] | None = None
) -> bool:
    """Whether minimisation vector ``a`` Pareto-dominates ``b``.

    ``a`` dominates ``b`` when it is no worse in every coordinate and better in at least
    one; with ``margins``, better by more than ``margins[k]`` in that coordinate (early
    stopping uses this to tell noise from progress). Equal vectors do not dominate each
    other. A NaN coordinate on either side is never "no worse", so a vector holding NaN
    neither dominates nor is dominated.

    Args:
        a: smaller is better in every coordinate.
        b: of the same length as ``a``.
        margins: per coordinate, how much better ``a`` must be somewhere; default 0.

    Returns:
        True when ``a`` dominates ``b``.

    Raises:
        ValueError: the lengths differ.
    """
    margins = margins if margins is not None else [0.0] * len(a)
    better = False
    for x, y, m in zip(a, b, margins, strict=True):
        # "not x <= y" rather than "x > y", so that NaN fails the test.
        if not x <= y:
            return False
        if x < y - m:
            better = True
    return better


def dominates(
    a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[Objective]
) -> bool:
    """Whether objective values ``a`` Pareto-dominate ``b``.

    ``a`` dominates ``b`` when it is no worse in every objective and strictly better in at
    least one, each objective read in its own direction (``max`` or ``min``). Equal vectors
    do not dominate each other, and a NaN never counts as "no worse" (see
    :func:`dominates_vector`, which this calls on the minimised values).

    Args:
        a: objective name -> value.
        b: objective name -> value.
        objectives: the objectives to compare on; other keys are ignored.

    Returns:
        True when ``a`` dominates ``b``.

    Raises:
        KeyError: an objective is missing from ``a`` or ``b``.
    """
    return dominates_vector(
        [o.as_minimised(a[o.name]) for o in objectives],
        [o.as_minimised(b[o.name]) for o in objectives],
    )


def nondominated_ranks(
    vectors: Sequence[Sequence[float]],
    margins: Sequence[Sequence[float] | None] | None = None,
) -> list[int]:
    """Front index of every minimisation vector: 0 for the non-dominated, and so on.

    Fast non-dominated sorting (Deb et al., 2002): O(m n^2) comparisons for n vectors of
    m coordinates. Rank ``r + 1`` holds the vectors that only rank-``r`` (or lower)
    vectors dominate.

    Args:
        vectors: minimisation vectors of equal length.
        margins: optional, per vector and coordinate: how much better than vector ``j``
            another must be, in at least one coordinate, to dominate it (``None`` for a
            vector: no margin). See :func:`dominates_vector`.

    Returns:
        One rank per vector, in input order.
    """
    n = len(vectors)
    per_vector = margins if margins is not None else [None] * n
    dominated_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates_vector(vectors[i], vectors[j], per_vector[j]):
                beats[i].append(j)
                dominated_by[j] += 1
            elif dominates_vector(vectors[j], vectors[i], per_vector[i]):
                beats[j].append(i)
                dominated_by[i] += 1
    ranks = [0] * n
    current = [i for i in range(n) if dominated_by[i] == 0]
    rank = 0
    while current:
        following = []
        for i in current:
            ranks[i] = rank
            for j in beats[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current = following
        rank += 1
    return ranks


def crowding_distances(vectors: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each vector within the set ``vectors``.

    Larger means lonelier, so preferring it keeps a front spread out. Per coordinate, the
    vectors are sorted by it (ties keep input order); the first and the last get
    ``inf``, and every other one adds the gap between its two neighbours divided by the
    coordinate's range over the set. The distance is the sum over coordinates.

    Edge cases, decided here once:

    * a set of one or two vectors: every vector gets ``inf``. Each is an extreme point
      with nothing beside it to measure, and NSGA-II keeps extremes first.
    * a coordinate with zero range (every vector ties there) adds nothing, not even
      ``inf`` at the ends: which of the tied vectors is "the boundary" would only be an
      accident of input order. If every coordinate has zero range, every distance is 0.

    Args:
        vectors: minimisation vectors of equal length (usually one front).

    Returns:
        One distance per vector, in input order.
    """
    n = len(vectors)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for k in range(len(vectors[0])):
        order = sorted(range(n), key=lambda i: vectors[i][k])
        low, high = vectors[order[0]][k], vectors[order[-1]][k]
        if high == low:
            continue
        distance[order[0]] = distance[order[-1]] = math.inf
        for before, member, after in zip(order, order[1:], order[2:], strict=False):
            distance[member] += (vectors[after][k] - vectors[before][k]) / (high - low)
    return distance


def rank_and_crowding(
    vectors: Sequence[Sequence[float]],
    margins: Sequence[Sequence[float] | None] | None = None,
) -> list[tuple[int, float]]:
    """(front rank, crowding distance within that front) of every minimisation vector.

    NSGA-II's order is then: smaller rank first, within a rank larger crowding first,
    e.g. ``sorted(range(n), key=lambda i: (scores[i][0], -scores[i][1], i))``.

    Args:
        vectors: minimisation vectors of equal length.
        margins: as for :func:`nondominated_ranks`.

    Returns:
        One ``(rank, distance)`` per vector, in input order; see
        :func:`nondominated_ranks` and :func:`crowding_distances`.
    """
    ranks = nondominated_ranks(vectors, margins)
    result: list[tuple[int, float]] = [(r, 0.0) for r in ranks]
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        distances = crowding_distances([vectors[i] for i in members])
        for i, d in zip(members, distances, strict=True):
            result[i] = (rank, d)
    return result


# --------------------------------------------------------------------------- constraints

CONSTRAINT_OPS = ("<=", ">=")

# The metric is any run of characters without whitespace or comparison symbols, so flat
# names like ``latency_ms`` or ``arch/depth`` parse; the bound is checked by float() below.
_CONSTRAINT_RE = re.compile(r"^\s*(?P<metric>[^\s<>=!]+)\s*(?P<op><=|>=)\s*(?P<bound>\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """A bound on one metric, e.g. ``Constraint("latency_ms", "<=", 2.0)``.

    A value that is missing, not a number or not finite never meets a constraint: a
    trial whose feasibility cannot be shown must not reach the front.

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
        if not is_finite_number(self.bound):
            raise ValueError(
                f"constraint on {self.metric!r}: bound must be a finite number, "
                f"but got {self.bound!r}"
            )
        # Normalise so that parse("x <= 2") == Constraint("x", "<=", 2) serialises identically.
        object.__setattr__(self, "bound", float(self.bound))

    def gap(self, value: Any) -> float:
        """Signed distance of ``value`` past the bound, in the metric's unit.

        ``<= 0`` means the constraint holds: ``value - bound`` for ``<=``, ``bound -
        value`` for ``>=``; ``inf`` when ``value`` is not a finite number.
        """
        if not is_finite_number(value):
            return math.inf
        gap = float(value) - self.bound
        return -gap if self.op == ">=" else gap

    def excess(self, value: Any) -> float:
        """Signed relative distance past the bound: ``<= 0`` means the constraint holds.

        :meth:`gap` divided by ``|bound|`` (by 1 for a zero bound), so that excesses of
        constraints in different units (bytes and milliseconds) can be summed; ``inf``
        when ``value`` is not a finite number. The sign convention of optuna's
        constraint values.
        """
        return self.gap(value) / (abs(self.bound) or 1.0)

    def violation(self, value: Any) -> float:
        """How far ``value`` is from meeting the bound: ``max(0, excess(value))``.

        0.0 exactly when :meth:`satisfied`; positive otherwise; ``inf`` when ``value`` is
        missing, not a number or not finite.
        """
        # For finite values a positive gap stays positive after the division: gap is at
        # least one ulp of the bound, so gap / |bound| is at least about 1e-16.
        return max(0.0, self.excess(value))

    def satisfied(self, value: Any) -> bool:
        """Whether ``value`` meets the bound; missing, non-numeric or non-finite values do not."""
        return self.gap(value) <= 0.0

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


def metric_value(trial: Mapping[str, Any], metric: str) -> Any:
    """``metric`` of a trial record: its objective of that name, else its metric, else None."""
    objectives = trial.get("objectives") or {}
    if metric in objectives:
        return objectives[metric]
    return (trial.get("metrics") or {}).get(metric)


def is_feasible(trial: Mapping[str, Any], constraints: Sequence[Constraint]) -> bool:
    """Whether ``trial`` meets every constraint.

    Each metric is looked up in ``trial["objectives"]`` first, then ``trial["metrics"]``. A
    metric that is missing or not a finite number makes the trial infeasible: a trial
    whose feasibility cannot be shown must not reach the front. Constraint names should
    therefore be validated against the known metrics when a run is configured, since a
    typo here silently empties the front.

    Args:
        trial: a trial record.
        constraints: the constraints; an empty sequence accepts every trial.

    Returns:
        True when every constraint is satisfied, i.e. when
        :func:`constraint_violation` is 0.
    """
    return all(c.satisfied(metric_value(trial, c.metric)) for c in constraints)


def constraint_violation(trial: Mapping[str, Any], constraints: Sequence[Constraint]) -> float:
    """How far ``trial`` is from feasibility: the sum of its relative violations.

    Metrics are looked up as in :func:`is_feasible`; each constraint adds
    :meth:`Constraint.violation` (relative to its bound, so that constraints in
    different units add up).

    Args:
        trial: a trial record, or any mapping with ``objectives`` (and ``metrics``); a
            strategy passes ``{"objectives": outcome.objectives}``.
        constraints: the constraints; an empty sequence gives 0.0.

    Returns:
        0.0 when feasible, positive otherwise, ``inf`` when a constrained metric is
        missing or not a finite number.
    """
    return sum((c.violation(metric_value(trial, c.metric)) for c in constraints), 0.0)


# --------------------------------------------------------------------------- front


def minimised_vector(trial: Mapping[str, Any], objectives: Sequence[Objective]) -> list[float]:
    """A trial's objective values in ``objectives``' order, each mapped so smaller is better."""
    values = trial["objectives"]
    return [o.as_minimised(values[o.name]) for o in objectives]


def is_candidate(
    trial: Mapping[str, Any],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
) -> bool:
    """Whether a trial may be on a front: COMPLETE, finite objectives, every constraint met."""
    return (
        trial.get("state") == TrialState.COMPLETE
        and objective_values_are_finite(objectives, trial.get("objectives"))
        and is_feasible(trial, constraints)
    )


#: ``stage`` of the trial records that finish a search (weight sharing's finalists).
FINAL_STAGE = "final"


def score_source(trial: Mapping[str, Any]) -> str | None:
    """Where a trial's score (accuracy or the user's metric) comes from, when its
    evaluator says: ``"inherited"`` (weights shared with a supernet, never trained as
    this model) or ``"fine-tuned"`` (a finalist trained as itself); ``None`` for
    trials trained on their own (multi-trial search)."""
    source = (trial.get("metrics") or {}).get("accuracy_source")
    return source if isinstance(source, str) else None


def front_pool(trials: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The trials a front is taken from: the finishing stage's, once one has completed.

    A search with a finishing stage (weight sharing: the best points of the search,
    fine-tuned and measured again as trials of ``stage == "final"``) reports those;
    before it ran, and in searches without one, every trial counts.
    """
    finals = [t for t in trials if t.get("stage") == FINAL_STAGE
              and t.get("state") == TrialState.COMPLETE]
    return finals if finals else trials


def pareto_front(
    trials: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
) -> list[Mapping[str, Any]]:
    """The non-dominated COMPLETE feasible trials (of the finishing stage, when a search
    has one: see :func:`front_pool`).

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
    candidates = [t for t in front_pool(trials) if is_candidate(t, objectives, constraints)]
    vectors = [minimised_vector(t, objectives) for t in candidates]
    return [
        trial
        for trial, vector in zip(candidates, vectors, strict=True)
        if not any(dominates_vector(other, vector) for other in vectors)
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
    return hypervolume([minimised_vector(t, objectives) for t in front], ref)


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
    if not is_finite_number(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, but got {margin!r}")
    candidates = [
        t
        for t in trials
        if t.get("state") == TrialState.COMPLETE
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
