"""Picking a Pareto point: rules, explanations, nothing-qualifies, and ``nascompress pick``."""

import math

import pytest

from nascompress import cli
from nascompress.objectives import Objective
from nascompress.pareto import Constraint, pareto_front
from nascompress.picking import NoQualifyingPointError, closest_points, pick
from nascompress.search.records import RunDirectory

OBJECTIVES = [Objective("accuracy", "max"), Objective("size_bytes", "min"),
              Objective("latency_ms", "min")]


def record(number, accuracy, size, latency, state="COMPLETE", **metrics):
    return {"number": number, "trial_id": f"t{number}", "state": state,
            "params": {"arch/width": 8 * (number + 1)},
            "objectives": {"accuracy": accuracy, "size_bytes": size, "latency_ms": latency},
            "metrics": metrics}


TRIALS = [
    record(0, 0.99, 30000.0, 0.30),
    record(1, 0.98, 3000.0, 0.10),
    record(2, 0.50, 1000.0, 0.05),
    record(3, 0.97, 20000.0, 0.40),  # dominated by #1
    record(4, 0.99, 25000.0, 0.35),  # ties #0 on accuracy, smaller
    record(5, 0.999, 1.0, 0.01, state="FAILED"),
]


def test_default_picks_most_accurate_with_size_tie_break():
    result = pick(TRIALS, OBJECTIVES)
    assert result.chosen["number"] == 4  # ties #0 on accuracy, smaller size
    assert result.runner_up["number"] == 0
    assert result.rule == "most-accurate"
    assert {r["number"] for r in result.qualifying} == {0, 1, 2, 4}
    assert "ties on accuracy" in result.explanation and "lower size_bytes" in result.explanation
    assert "Runner-up: #0" in result.explanation


def test_latency_breaks_a_tie_on_accuracy_and_size():
    trials = [record(0, 0.9, 100.0, 0.2), record(1, 0.9, 100.0, 0.1), record(2, 0.8, 50.0, 0.3)]
    assert pick(trials, OBJECTIVES).chosen["number"] == 1


def test_constraints_filter_the_front_and_are_explained():
    constraints = [Constraint("latency_ms", "<=", 0.2), Constraint("accuracy", ">=", 0.9)]
    result = pick(TRIALS, OBJECTIVES, constraints=constraints)
    assert result.chosen["number"] == 1
    assert [r["number"] for r in result.qualifying] == [1]
    assert result.runner_up is None
    assert "latency_ms <= 0.2, accuracy >= 0.9" in result.explanation
    assert "1 non-dominated point(s)" in result.explanation
    assert "the run's front has 4" in result.explanation


def test_run_constraints_define_the_front():
    result = pick(TRIALS, OBJECTIVES, run_constraints=[Constraint("size_bytes", "<=", 26000)])
    assert result.front_size == 3  # #0 is outside the run's constraints
    assert result.chosen["number"] == 4
    assert "Run constraints: size_bytes <= 26000" in result.explanation


def test_constraint_on_a_metric_that_is_not_an_objective():
    trials = [record(0, 0.9, 100.0, 0.2, macs=500), record(1, 0.95, 200.0, 0.3, macs=2000)]
    assert pick(trials, OBJECTIVES, constraints=[Constraint("macs", "<=", 1000)]).chosen[
        "number"] == 0


def test_knee_is_the_smallest_normalized_chebyshev_distance():
    trials = [record(0, 0.99, 1000.0, 0.1), record(1, 0.98, 100.0, 0.1),
              record(2, 0.50, 10.0, 0.1)]
    result = pick(trials, OBJECTIVES, knee=True)
    assert result.rule == "knee"
    assert result.chosen["number"] == 1
    # accuracy gap 0.01/0.49, size gap 90/990: the larger one is the score.
    assert result.scores[1] == pytest.approx(90 / 990)
    assert result.scores[0] == pytest.approx(1.0) and result.scores[2] == pytest.approx(1.0)
    assert "Chebyshev" in result.explanation and "knee score" in result.explanation


def test_knee_with_one_qualifying_point_is_that_point():
    result = pick(TRIALS, OBJECTIVES, knee=True, constraints=[Constraint("size_bytes", "<=",
                                                                         1500)])
    assert result.chosen["number"] == 2
    assert "only qualifying point" in result.explanation


def test_nothing_qualifies_lists_closest_points():
    constraints = [Constraint("latency_ms", "<=", 0.04), Constraint("accuracy", ">=", 0.95)]
    with pytest.raises(NoQualifyingPointError) as info:
        pick(TRIALS, OBJECTIVES, constraints=constraints)
    closest = info.value.closest
    assert [p.record["number"] for p in closest][0] == 1
    assert all(p.violation > 0 for p in closest)
    assert [p.violation for p in closest] == sorted(p.violation for p in closest)
    lines = info.value.explanation.splitlines()
    assert sum(1 for line in lines if line.startswith("  #")) == len(closest) == 4
    assert "misses latency_ms <= 0.04" in info.value.explanation


def test_closest_points_scale_by_the_front_range():
    constraints = [Constraint("accuracy", ">=", 1.0)]
    points = closest_points(TRIALS, OBJECTIVES, constraints=constraints, limit=2)
    assert [p.record["number"] for p in points] == [4, 0]  # tie on accuracy: smaller first
    assert points[0].violation == pytest.approx(0.01 / (0.99 - 0.50))
    with pytest.raises(ValueError, match="limit"):
        closest_points(TRIALS, OBJECTIVES, constraints=constraints, limit=0)


def test_missing_metric_is_an_infinite_violation():
    trials = [record(0, 0.9, 100.0, 0.2), record(1, 0.8, 50.0, 0.1, macs=10)]
    points = closest_points(trials, OBJECTIVES, constraints=[Constraint("macs", "<=", 1)])
    assert math.isinf(points[-1].violation) and points[-1].record["number"] == 0
    assert "not recorded" in points[-1].describe(OBJECTIVES)


def test_unknown_metric_names_the_constraint():
    with pytest.raises(ValueError, match="latency_s"):
        pick(TRIALS, OBJECTIVES, constraints=[Constraint("latency_s", "<=", 1)])


def test_empty_run_raises_no_qualifying_point():
    with pytest.raises(NoQualifyingPointError, match="no Pareto front"):
        pick([record(0, 0.9, 1.0, 1.0, state="FAILED")], OBJECTIVES)


# --------------------------------------------------------------------------- real run + CLI

@pytest.fixture
def run_dir(tiny_run_dir):
    return tiny_run_dir


def _front(run_dir):
    run = RunDirectory(run_dir)
    return pareto_front(run.load_trials(), run.objectives(), run.constraints())


def test_cli_pick_without_constraints(run_dir, capsys):
    assert cli.main(["pick", str(run_dir)]) == 0
    out = capsys.readouterr().out
    best = max(_front(run_dir), key=lambda t: (t["objectives"]["accuracy"],
                                               -t["objectives"]["size_bytes"]))
    assert f"Chosen: #{best['number']} {best['trial_id']}" in out
    assert "Your constraints: none" in out


def test_cli_pick_with_a_latency_budget(run_dir, capsys):
    front = _front(run_dir)
    latencies = sorted(t["objectives"]["latency_ms"] for t in front)
    budget = latencies[0]  # only the fastest front point meets it
    assert cli.main(["pick", str(run_dir), "--max-latency-ms", repr(budget)]) == 0
    out = capsys.readouterr().out
    fastest = min(front, key=lambda t: t["objectives"]["latency_ms"])
    assert f"Chosen: #{fastest['number']} " in out
    assert f"latency_ms <= {budget:g}" in out


def test_cli_pick_knee(run_dir, capsys):
    assert cli.main(["pick", str(run_dir), "--knee"]) == 0
    out = capsys.readouterr().out
    assert "Rule: knee" in out and "Chosen: #" in out


def test_cli_nothing_qualifies_exits_2_with_closest_points(run_dir, capsys):
    code = cli.main(["pick", str(run_dir), "--max-size-bytes", "1", "--min-accuracy", "1"])
    out = capsys.readouterr().out
    assert code == 2
    assert "no point qualifies" in out
    point_lines = [line for line in out.splitlines() if line.startswith("  #")]
    assert 1 <= len(point_lines) <= min(5, len(_front(run_dir)))
    assert all("misses size_bytes <= 1" in line for line in point_lines)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--min-accuracy", "95"], "--min-accuracy must be a fraction in [0, 1]"),
        (["--max-latency-ms", "-1"], "--max-latency-ms must be a finite number >= 0"),
        (["--max-size-bytes", "nan"], "--max-size-bytes must be a finite number"),
        (["--export", "onnx"], "--export and --out go together"),
        (["--out", "model.onnx"], "--export and --out go together"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_flag(run_dir, capsys, argv, expected):
    assert cli.main(["pick", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_cli_pick_not_a_run_folder(tmp_path, capsys):
    assert cli.main(["pick", str(tmp_path)]) == 2
    assert "run_dir:" in capsys.readouterr().err
