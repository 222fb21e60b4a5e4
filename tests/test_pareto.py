"""Tests for nascompress.pareto: dominance, constraints, fronts, hypervolume."""

from __future__ import annotations

import itertools
import math
import operator
import random
import subprocess
import sys

import pytest

from nascompress.objectives import Objective
from nascompress.pareto import (
    RECORDED_STATES,
    TRIAL_STATES,
    Constraint,
    TrialState,
    constraint_violation,
    crowding_distances,
    describe_reference_rule,
    dominates,
    dominates_vector,
    front_hypervolume,
    hypervolume,
    is_feasible,
    is_finite_number,
    is_number,
    nondominated_ranks,
    objective_values_are_finite,
    pareto_front,
    rank_and_crowding,
    reference_point,
)
from tests._helpers import trial_record

ACC = Objective("accuracy", "max")
LAT = Objective("latency_ms", "min", "ms")
SIZE = Objective("size_bytes", "min", "B")
OBJECTIVES = (ACC, LAT, SIZE)


trial = trial_record


# --------------------------------------------------------------------------- states, numbers


def test_trial_states_are_the_recorded_strings():
    assert (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED, TrialState.INVALID) == (
        "COMPLETE", "FAILED", "PRUNED", "INVALID")
    assert set(TRIAL_STATES) == {"COMPLETE", "FAILED", "PRUNED", "INVALID"}
    assert RECORDED_STATES == ("COMPLETE", "FAILED", "PRUNED")  # INVALID never runs


@pytest.mark.parametrize("value", [0, 1, -3, 0.5, -1e300, 10**20])
def test_is_finite_number_accepts_finite_reals(value):
    assert is_number(value) and is_finite_number(value)


@pytest.mark.parametrize(
    "value", [True, False, None, "1.0", "nan", b"1", [1.0], math.nan, math.inf, -math.inf,
              10**400, complex(1, 0)],
)
def test_is_finite_number_rejects_bools_strings_and_non_finite(value):
    assert not is_finite_number(value)


def test_is_number_keeps_nan_and_inf_but_not_bool_or_str():
    assert is_number(math.nan) and is_number(math.inf)
    assert not is_number(True) and not is_number("1") and not is_number(None)


def test_is_finite_number_accepts_numpy_scalars():
    np = pytest.importorskip("numpy")
    for value in (np.float32(0.5), np.float64(2.0), np.int64(3), np.int8(-1), np.float16(1)):
        assert is_finite_number(value), value
    for value in (np.float32("nan"), np.float64("inf"), np.bool_(True), np.array([1.0])):
        assert not is_finite_number(value), value
    values = {"accuracy": np.float32(0.9), "latency_ms": np.int64(2), "size_bytes": 1.0}
    assert objective_values_are_finite(OBJECTIVES, values)
    assert not objective_values_are_finite(OBJECTIVES, {**values, "accuracy": True})
    assert not objective_values_are_finite(OBJECTIVES, {**values, "accuracy": "0.9"})
    assert not objective_values_are_finite(OBJECTIVES, {})
    assert not objective_values_are_finite(OBJECTIVES, None)


# --------------------------------------------------------------------------- dominance


def test_dominates_min_objectives():
    objs = (LAT, SIZE)
    assert dominates({"latency_ms": 1, "size_bytes": 1}, {"latency_ms": 2, "size_bytes": 1}, objs)
    assert not dominates(
        {"latency_ms": 2, "size_bytes": 1}, {"latency_ms": 1, "size_bytes": 1}, objs
    )
    # Trade-off: neither dominates.
    a, b = {"latency_ms": 1, "size_bytes": 3}, {"latency_ms": 2, "size_bytes": 1}
    assert not dominates(a, b, objs)
    assert not dominates(b, a, objs)


def test_dominates_mixed_modes():
    objs = (ACC, LAT)
    better = {"accuracy": 0.9, "latency_ms": 1.0}
    worse = {"accuracy": 0.8, "latency_ms": 1.0}
    assert dominates(better, worse, objs)
    assert not dominates(worse, better, objs)
    # Higher accuracy but slower: a trade-off for a max/min pair.
    assert not dominates({"accuracy": 0.95, "latency_ms": 2.0}, better, objs)
    assert not dominates(better, {"accuracy": 0.95, "latency_ms": 2.0}, objs)


def test_equal_vectors_do_not_dominate():
    values = {"accuracy": 0.9, "latency_ms": 1.0, "size_bytes": 10}
    assert not dominates(values, dict(values), OBJECTIVES)


def test_dominates_ignores_other_keys_and_needs_objectives():
    a = {"accuracy": 0.9, "extra": 100}
    b = {"accuracy": 0.8, "extra": 0}
    assert dominates(a, b, (ACC,))
    with pytest.raises(KeyError):
        dominates({"accuracy": 0.9}, {"accuracy": 0.8}, (ACC, LAT))


def test_dominates_nan_is_never_no_worse():
    assert not dominates({"latency_ms": math.nan}, {"latency_ms": 1.0}, (LAT,))
    assert not dominates({"latency_ms": 1.0}, {"latency_ms": math.nan}, (LAT,))


def test_dominates_vector_nan_is_never_no_worse_on_either_side():
    assert dominates_vector([0.0, 0.0], [1.0, 1.0])
    assert not dominates_vector([0.0, math.nan], [1.0, 1.0])
    assert not dominates_vector([1.0, 1.0], [0.0, math.nan])
    assert not dominates_vector([2.0, 2.0], [1.0, math.nan])
    assert not dominates_vector([math.nan], [math.nan])


def test_dominates_vector_margins_need_a_clear_win():
    assert not dominates_vector([0.95, 1.0], [1.0, 1.0], margins=[0.1, 0.1])
    assert dominates_vector([0.85, 1.0], [1.0, 1.0], margins=[0.1, 0.1])
    assert not dominates_vector([0.5, 1.01], [1.0, 1.0], margins=[0.1, 0.1])  # worse somewhere
    with pytest.raises(ValueError):
        dominates_vector([0.0, 1.0], [1.0])


def test_dominates_on_mappings_agrees_with_vectors():
    rng = random.Random(3)
    for _ in range(200):
        a = {o.name: rng.choice([0.0, 0.5, 1.0]) for o in OBJECTIVES}
        b = {o.name: rng.choice([0.0, 0.5, 1.0]) for o in OBJECTIVES}
        vector = [[o.as_minimised(v[o.name]) for o in OBJECTIVES] for v in (a, b)]
        assert dominates(a, b, OBJECTIVES) == dominates_vector(*vector)


# --------------------------------------------------------------------------- ranks, crowding


def test_nondominated_ranks_and_crowding():
    vectors = [[0, 3], [1, 1], [3, 0], [2, 2], [3, 3]]
    assert nondominated_ranks(vectors) == [0, 0, 0, 1, 2]
    distances = crowding_distances([[0, 3], [1, 1], [3, 0]])
    assert distances[0] == distances[2] == math.inf and 0 < distances[1] < math.inf
    assert rank_and_crowding(vectors)[3] == (1, math.inf)  # alone in its front


def test_nondominated_ranks_match_repeated_front_peeling():
    rng = random.Random(7)
    for _ in range(50):
        vectors = [[rng.randint(0, 4) for _ in range(3)] for _ in range(rng.randint(0, 15))]
        expected, remaining, rank = [None] * len(vectors), set(range(len(vectors))), 0
        while remaining:
            front = {i for i in remaining
                     if not any(dominates_vector(vectors[j], vectors[i]) for j in remaining)}
            for i in front:
                expected[i] = rank
            remaining -= front
            rank += 1
        assert nondominated_ranks(vectors) == expected


def test_nondominated_ranks_margins_are_per_dominated_vector():
    vectors = [[0.0, 0.0], [0.05, 0.05]]
    assert nondominated_ranks(vectors) == [0, 1]
    assert nondominated_ranks(vectors, margins=[None, [0.1, 0.1]]) == [0, 0]
    assert nondominated_ranks(vectors, margins=[[0.1, 0.1], None]) == [0, 1]


def test_crowding_distance_values_and_edges():
    assert crowding_distances([]) == []
    assert crowding_distances([[1.0, 2.0]]) == [math.inf]  # one point: an extreme
    assert crowding_distances([[1.0, 1.0], [1.0, 1.0]]) == [math.inf, math.inf]  # two: both
    # Interior points add the neighbours' gap over the range, per objective.
    distances = crowding_distances([[0.0, 4.0], [1.0, 3.0], [4.0, 0.0], [2.0, 2.0]])
    assert distances[0] == distances[2] == math.inf
    assert distances[1] == pytest.approx(2 / 4 + 2 / 4)
    assert distances[3] == pytest.approx(3 / 4 + 3 / 4)
    # A zero-range objective adds nothing, not even inf at the ends of its sort order.
    tied = crowding_distances([[1.0, 5.0], [0.0, 5.0], [2.0, 5.0]])
    assert tied == [pytest.approx(1.0), math.inf, math.inf]
    assert crowding_distances([[1.0, 1.0]] * 3) == [0.0, 0.0, 0.0]


def test_rank_and_crowding_is_crowding_within_each_front():
    vectors = [[0, 4], [1, 3], [4, 0], [2, 2], [3, 3], [4, 4], [5, 5], [2, 5]]
    scores = rank_and_crowding(vectors)
    ranks = nondominated_ranks(vectors)
    assert [r for r, _ in scores] == ranks
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        expected = crowding_distances([vectors[i] for i in members])
        assert [scores[i][1] for i in members] == expected


# --------------------------------------------------------------------------- constraints


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latency_ms <= 2", Constraint("latency_ms", "<=", 2.0)),
        ("accuracy>=0.9", Constraint("accuracy", ">=", 0.9)),
        ("  size_bytes <=  1e6 ", Constraint("size_bytes", "<=", 1_000_000)),
        ("delta >= -1.5", Constraint("delta", ">=", -1.5)),
        ("arch/depth<=4", Constraint("arch/depth", "<=", 4)),
    ],
)
def test_constraint_parse_good(text, expected):
    parsed = Constraint.parse(text)
    assert parsed == expected
    assert isinstance(parsed.bound, float)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "latency_ms",
        "latency_ms < 2",
        "latency_ms == 2",
        "latency_ms => 2",
        "<= 2",
        "latency_ms <=",
        "latency_ms <= fast",
        "latency_ms <= 2 3",
        "latency ms <= 2",
        "latency_ms <= nan",
        "latency_ms <= inf",
    ],
)
def test_constraint_parse_bad_names_the_text(text):
    with pytest.raises(ValueError) as info:
        Constraint.parse(text)
    assert repr(text) in str(info.value)


def test_constraint_parse_rejects_non_string():
    with pytest.raises(ValueError, match="None"):
        Constraint.parse(None)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metric": "", "op": "<=", "bound": 1.0}, "metric"),
        ({"metric": "x", "op": "<", "bound": 1.0}, "'<'"),
        ({"metric": "x", "op": "<=", "bound": math.nan}, "nan"),
        ({"metric": "x", "op": "<=", "bound": "2"}, "'2'"),
        ({"metric": "x", "op": "<=", "bound": True}, "True"),
    ],
)
def test_constraint_validation_names_field_and_value(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        Constraint(**kwargs)
    assert fragment in str(info.value)


def test_constraint_satisfied_and_roundtrip():
    le = Constraint("latency_ms", "<=", 2)
    ge = Constraint("accuracy", ">=", 0.9)
    assert le.satisfied(2.0) and le.satisfied(1) and not le.satisfied(2.01)
    assert ge.satisfied(0.9) and not ge.satisfied(0.89)
    for bad in (None, math.nan, "1", True):
        assert not le.satisfied(bad)
    assert Constraint.from_dict(le.to_dict()) == le
    assert str(le) == "latency_ms <= 2"
    assert Constraint.parse(str(ge)) == ge


def test_is_feasible_looks_in_objectives_then_metrics():
    t = trial(0, accuracy=0.9, latency_ms=3.0, metrics={"params_count": 1000, "latency_ms": 1.0})
    # The objective value wins over a metric of the same name.
    assert not is_feasible(t, [Constraint("latency_ms", "<=", 2)])
    assert is_feasible(t, [Constraint("params_count", "<=", 1000)])
    assert not is_feasible(t, [Constraint("params_count", "<=", 999)])
    # Unknown metrics cannot be shown to hold.
    assert not is_feasible(t, [Constraint("macs", "<=", 1e9)])
    assert is_feasible(t, [])
    assert is_feasible({"objectives": None, "metrics": {"m": 1}}, [Constraint("m", ">=", 1)])


def test_constraint_gap_excess_and_violation():
    le = Constraint("latency_ms", "<=", 2.0)
    ge = Constraint("accuracy", ">=", 0.8)
    zero = Constraint("delta", "<=", 0.0)
    assert le.gap(3.0) == 1.0 and le.excess(3.0) == 0.5 and le.violation(3.0) == 0.5
    assert le.gap(1.0) == -1.0 and le.excess(1.0) == -0.5 and le.violation(1.0) == 0.0
    assert le.violation(2.0) == 0.0  # on the bound is feasible
    assert ge.violation(0.6) == pytest.approx(0.25) and ge.violation(0.9) == 0.0
    assert zero.violation(0.5) == 0.5  # a zero bound: absolute
    for bad in (None, math.nan, math.inf, -math.inf, "1", True):
        assert le.gap(bad) == le.excess(bad) == le.violation(bad) == math.inf
        assert not le.satisfied(bad)
    # The smallest possible misses are still misses, however large or small the bound.
    for bound in (1e300, 1.0, 1e-300, 5e-324, -1e300):
        c = Constraint("x", "<=", bound)
        above = math.nextafter(bound, math.inf)
        assert c.violation(above) > 0.0 and not c.satisfied(above)
        assert c.violation(bound) == 0.0 and c.satisfied(bound)


def test_constraint_violation_of_a_trial_sums_and_agrees_with_is_feasible():
    constraints = [Constraint("latency_ms", "<=", 2), Constraint("accuracy", ">=", 0.8),
                   Constraint("params_count", "<=", 1000)]
    ok = trial(0, accuracy=0.9, latency_ms=2.0, metrics={"params_count": 1000})
    assert constraint_violation(ok, constraints) == 0.0 and is_feasible(ok, constraints)
    off = trial(1, accuracy=0.6, latency_ms=3.0, metrics={"params_count": 500})
    assert constraint_violation(off, constraints) == pytest.approx(0.5 + 0.25)
    assert not is_feasible(off, constraints)
    missing = trial(2, accuracy=0.9, latency_ms=1.0)
    assert constraint_violation(missing, constraints) == math.inf
    nan = trial(3, accuracy=math.nan, latency_ms=1.0, metrics={"params_count": 1})
    assert constraint_violation(nan, constraints) == math.inf
    assert constraint_violation(off, []) == 0.0
    rng = random.Random(5)
    for number in range(100):
        t = trial(number, accuracy=rng.choice([0.7, 0.8, 0.9, math.nan]),
                  latency_ms=rng.choice([1.0, 2.0, 3.0]),
                  metrics={"params_count": rng.choice([900, 1000, 1100])})
        assert is_feasible(t, constraints) == (constraint_violation(t, constraints) == 0.0)


def test_constraint_accepts_numpy_values_and_bounds():
    np = pytest.importorskip("numpy")
    le = Constraint("latency_ms", "<=", np.float32(2.0))
    assert type(le.bound) is float and le.bound == 2.0
    assert le.satisfied(np.float32(1.5)) and le.violation(np.float64(3.0)) == 0.5


# --------------------------------------------------------------------------- pareto front


def test_pareto_front_small_example():
    trials = [
        trial(0, accuracy=0.90, latency_ms=2.0, size_bytes=100),
        trial(1, accuracy=0.85, latency_ms=1.0, size_bytes=100),
        trial(2, accuracy=0.80, latency_ms=2.0, size_bytes=100),  # dominated by 0 and 1
        trial(3, accuracy=0.95, latency_ms=3.0, size_bytes=50),
        trial(4, accuracy=0.85, latency_ms=1.0, size_bytes=100),  # duplicate of 1: kept
        trial(5, state="FAILED", accuracy=0.99, latency_ms=0.1, size_bytes=1),
        trial(6, accuracy=math.nan, latency_ms=0.1, size_bytes=1),
        trial(7, accuracy=0.99, latency_ms=0.1),  # missing an objective
    ]
    front = pareto_front(trials, OBJECTIVES)
    assert [t["number"] for t in front] == [0, 1, 3, 4]
    assert front[0] is trials[0]
    constrained = pareto_front(trials, OBJECTIVES, [Constraint("latency_ms", "<=", 2.5)])
    assert [t["number"] for t in constrained] == [0, 1, 4]


def test_pareto_front_edge_cases():
    assert pareto_front([], OBJECTIVES) == []
    assert (
        pareto_front([trial(0, state="PRUNED", accuracy=1, latency_ms=1, size_bytes=1)], OBJECTIVES)
        == []
    )
    with pytest.raises(ValueError, match="objective"):
        pareto_front([trial(0, accuracy=1.0)], [])


def _brute_force_front(trials, objectives, constraints):
    """Independent reference: filter by hand, then test every ordered pair for dominance."""
    ops = {"<=": operator.le, ">=": operator.ge}

    def usable(t):
        if t["state"] != "COMPLETE":
            return False
        for o in objectives:
            v = t["objectives"].get(o.name)
            if not isinstance(v, float | int) or not math.isfinite(v):
                return False
        for c in constraints:
            source = t["objectives"] if c.metric in t["objectives"] else t["metrics"]
            v = source.get(c.metric)
            if v is None or not math.isfinite(v) or not ops[c.op](v, c.bound):
                return False
        return True

    def better_or_equal(o, x, y):
        return x >= y if o.mode == "max" else x <= y

    kept = [i for i, t in enumerate(trials) if usable(t)]
    dominated = set()
    for i, j in itertools.permutations(kept, 2):
        a, b = trials[i]["objectives"], trials[j]["objectives"]
        no_worse = all(better_or_equal(o, a[o.name], b[o.name]) for o in objectives)
        if no_worse and any(a[o.name] != b[o.name] for o in objectives):
            dominated.add(j)
    return [trials[i]["number"] for i in kept if i not in dominated]


def _random_trials(rng, count):
    trials = []
    for number in range(count):
        # Coarse grids make ties and exact duplicate vectors common.
        values = {
            "accuracy": rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]),
            "latency_ms": rng.choice([0.5, 1.0, 1.5, 2.0, 3.0]),
            "size_bytes": rng.choice([1000, 2000, 4000, 8000]),
        }
        roll = rng.random()
        if roll < 0.05:
            values[rng.choice(list(values))] = math.nan
        elif roll < 0.08:
            values[rng.choice(list(values))] = math.inf
        elif roll < 0.10:
            del values[rng.choice(list(values))]
        state = rng.choices(["COMPLETE", "FAILED", "PRUNED"], weights=[8, 1, 1])[0]
        metrics = {"params_count": rng.randrange(100, 1000)}
        if rng.random() < 0.05:
            del metrics["params_count"]
        trials.append(trial(number, state=state, metrics=metrics, **values))
    # Copy a few vectors verbatim so duplicates also appear among the best trials.
    for _ in range(3):
        src, dst = rng.sample(range(count), 2)
        trials[dst]["objectives"] = dict(trials[src]["objectives"])
    return trials


def test_pareto_front_matches_brute_force_on_random_sets():
    rng = random.Random(1234)
    objective_sets = [
        (ACC, LAT, SIZE),
        (Objective("accuracy", "min"), LAT, Objective("size_bytes", "max")),
        (ACC, Objective("latency_ms", "max"), SIZE),
    ]
    constraint_pool = [
        Constraint("latency_ms", "<=", 2.0),
        Constraint("accuracy", ">=", 0.6),
        Constraint("params_count", "<=", 700),
        Constraint("size_bytes", "<=", 4000),
    ]
    nonempty = 0
    for case in range(50):
        trials = _random_trials(rng, 30)
        objectives = objective_sets[case % len(objective_sets)]
        constraints = rng.sample(constraint_pool, rng.randrange(0, 3))
        front = pareto_front(trials, objectives, constraints)
        assert [t["number"] for t in front] == _brute_force_front(trials, objectives, constraints)
        nonempty += bool(front)
    assert nonempty > 40  # the generator must actually exercise non-trivial fronts


# --------------------------------------------------------------------------- hypervolume


def test_hypervolume_two_points_2d():
    assert hypervolume([(1, 2), (2, 1)], (3, 3)) == pytest.approx(3.0)


def test_hypervolume_single_point_is_box():
    assert hypervolume([(1.0, 0.5, 2.0)], (2.0, 2.0, 4.0)) == pytest.approx(1.0 * 1.5 * 2.0)
    assert hypervolume([(1.0,)], (3.5,)) == pytest.approx(2.5)
    assert hypervolume([(0, 0, 0, 0)], (1, 2, 3, 4)) == pytest.approx(24.0)


def test_hypervolume_3d_by_hand():
    # Boxes [1,3]x[1,3]x[2,3] (4) and [2,3]x[2,3]x[1,3] (2) overlap in [2,3]^3 (1).
    assert hypervolume([(1, 1, 2), (2, 2, 1)], (3, 3, 3)) == pytest.approx(5.0)


def test_hypervolume_points_outside_reference_contribute_nothing():
    assert hypervolume([(4, 1)], (3, 3)) == 0.0
    assert hypervolume([(3, 1)], (3, 3)) == 0.0  # on the boundary: zero width
    assert hypervolume([(1, 1), (5, 0), (0, 3)], (3, 3)) == pytest.approx(4.0)
    assert hypervolume([], (1, 1, 1)) == 0.0


def test_hypervolume_dominated_points_add_nothing():
    base = [(1, 2, 3), (2, 1, 3), (3, 3, 1)]
    ref = (4, 4, 4)
    expected = hypervolume(base, ref)
    assert hypervolume(base + [(2, 2, 3), (3, 3, 3), (1, 2, 3)], ref) == pytest.approx(expected)


def test_hypervolume_validation():
    with pytest.raises(ValueError, match="at least one"):
        hypervolume([], ())
    with pytest.raises(ValueError, match="2 coordinates"):
        hypervolume([(1, 2, 3)], (3, 3))
    with pytest.raises(ValueError, match="nan"):
        hypervolume([(1, math.nan)], (3, 3))
    with pytest.raises(ValueError, match="inf"):
        hypervolume([(1, 1)], (3, math.inf))


def _inclusion_exclusion(points, ref):
    """Union of boxes by inclusion-exclusion over all subsets (exponential; tiny sets only)."""
    inside = [p for p in points if all(v < r for v, r in zip(p, ref, strict=True))]
    total = 0.0
    for size in range(1, len(inside) + 1):
        for subset in itertools.combinations(inside, size):
            corner = [max(coords) for coords in zip(*subset, strict=True)]
            total += (-1) ** (size + 1) * math.prod(r - c for r, c in zip(ref, corner, strict=True))
    return total


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(dim):
    rng = random.Random(dim)
    for _ in range(40):
        count = rng.randrange(1, 9)
        # Some coordinates exceed the reference, some are rounded to create ties.
        points = [
            tuple(round(rng.uniform(0, 1.2), rng.choice([1, 3])) for _ in range(dim))
            for _ in range(count)
        ]
        ref = (1.0,) * dim
        assert hypervolume(points, ref) == pytest.approx(_inclusion_exclusion(points, ref))


def test_hypervolume_200_points_3d_matches_grid_count():
    # Integer points on a band near the plane x + y + z = 30 give a large mutually
    # non-dominated set; the volume is then exact on a unit grid: for every (x, y) cell the
    # covered height is ref_z minus the lowest z among points whose corner covers the cell.
    rng = random.Random(7)
    side = 20
    points = []
    while len(points) < 200:
        x, y = rng.randrange(side), rng.randrange(side)
        z = 30 - x - y + rng.randrange(-2, 3)
        if 0 <= z < side:
            points.append((x, y, z))
    ref = (side, side, side)
    expected = 0
    for cx in range(side):
        for cy in range(side):
            heights = [z for x, y, z in points if x <= cx and y <= cy]
            if heights:
                expected += side - min(heights)
    assert hypervolume(points, ref) == pytest.approx(expected)


def test_front_hypervolume_mixed_modes():
    front = [
        trial(0, accuracy=0.9, latency_ms=2.0),
        trial(1, accuracy=0.8, latency_ms=1.0),
    ]
    reference = {"accuracy": 0.0, "latency_ms": 3.0}
    # accuracy [0, 0.9] x latency [2, 3] plus accuracy [0, 0.8] x latency [1, 2].
    assert front_hypervolume(front, (ACC, LAT), reference) == pytest.approx(0.9 + 0.8)
    assert front_hypervolume([], (ACC, LAT), reference) == 0.0
    with pytest.raises(ValueError, match="latency_ms"):
        front_hypervolume(front, (ACC, LAT), {"accuracy": 0.0})


# --------------------------------------------------------------------------- reference point


def test_reference_point_rules():
    trials = [
        trial(0, accuracy=0.9, latency_ms=1.0, size_bytes=1000, score=-4.0, gain=1.5, zero=0.0),
        trial(1, accuracy=0.7, latency_ms=2.0, size_bytes=4000, score=-1.0, gain=3.0, zero=-2.0),
        # Ignored: not COMPLETE, or not finite, even though they would be worse.
        trial(
            2,
            state="FAILED",
            accuracy=0.1,
            latency_ms=99.0,
            size_bytes=1e9,
            score=-99,
            gain=-9,
            zero=9,
        ),
        trial(3, accuracy=math.nan, latency_ms=99.0, size_bytes=1e9, score=-99, gain=-9, zero=9),
    ]
    objectives = (
        ACC,
        LAT,
        SIZE,
        Objective("score", "max"),  # negative worst: -4 pushed down by 0.4
        Objective("gain", "max"),  # outside [0, 1]: 1.5 pushed down by 0.15
        Objective("zero", "min"),  # worst is 0: pushed by the margin itself
    )
    ref = reference_point(trials, objectives)
    assert ref == pytest.approx(
        {
            "accuracy": 0.0,
            "latency_ms": 2.2,
            "size_bytes": 4400.0,
            "score": -4.4,
            "gain": 1.35,
            "zero": 0.1,
        }
    )
    # Every front point is strictly inside the reference, so every one contributes.
    front = pareto_front(trials, objectives)
    assert front_hypervolume(front, objectives, ref) > 0


def test_reference_point_negative_min_and_margin():
    trials = [trial(0, cost=-5.0), trial(1, cost=-2.0)]
    cost = Objective("cost", "min")
    assert reference_point(trials, [cost]) == pytest.approx({"cost": -1.8})
    assert reference_point(trials, [cost], margin=0.5) == pytest.approx({"cost": -1.0})
    assert reference_point(trials, [cost], margin=0) == {"cost": -2.0}
    with pytest.raises(ValueError, match="-1"):
        reference_point(trials, [cost], margin=-1)


def test_reference_point_empty():
    assert reference_point([], OBJECTIVES) == {}
    failed = [trial(0, state="FAILED", accuracy=0.5, latency_ms=1.0, size_bytes=10)]
    assert reference_point(failed, OBJECTIVES) == {}
    assert "0.1" in describe_reference_rule()
    assert "0.25" in describe_reference_rule(margin=0.25)


def test_pareto_module_imports_no_heavy_dependencies():
    code = (
        "import sys, nascompress.pareto, nascompress.tables; "
        "heavy = [m for m in ('numpy', 'torch', 'ray', 'pandas') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
