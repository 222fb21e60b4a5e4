"""Tests for nascompress.tables: flat rows of trial records and plain-text tables."""

from __future__ import annotations

from nascompress.objectives import Objective
from nascompress.tables import format_table, front_rows, front_table
from tests._helpers import trial_record

ACC = Objective("accuracy", "max")
LAT = Objective("latency_ms", "min", "ms")


trial = trial_record


def test_front_rows_columns_and_params():
    front = [
        trial(3, accuracy=0.9, latency_ms=1.25, params={"arch/depth": 4, "number": 7}),
        trial(5, accuracy=0.8, latency_ms=0.5, params={"arch/depth": 2, "prune/ratio": 0.5}),
    ]
    rows = front_rows(front, (ACC, LAT))
    assert list(rows[0]) == [
        "number",
        "trial_id",
        "accuracy",
        "latency_ms",
        "arch/depth",
        "param:number",
    ]
    assert rows[0]["number"] == 3 and rows[0]["param:number"] == 7
    assert rows[1] == {
        "number": 5,
        "trial_id": "t005",
        "accuracy": 0.8,
        "latency_ms": 0.5,
        "arch/depth": 2,
        "prune/ratio": 0.5,
    }


def test_format_table_headers_alignment_and_numbers():
    rows = [
        {"number": 3, "trial_id": "t003", "accuracy": 0.912345, "size_bytes": 123456},
        {"number": 12, "trial_id": "t012", "accuracy": 0.5, "size_bytes": 7, "extra": "x"},
    ]
    table = format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4
    for name in ("number", "trial_id", "accuracy", "size_bytes", "extra"):
        assert name in lines[0]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert "0.9123" in lines[2] and "123456" in lines[2] and "0.912345" not in lines[2]
    # Numeric columns are right-aligned: the cells end where the header ends.
    for name, cells in (("size_bytes", ("123456", "7")), ("number", ("3", "12"))):
        end = lines[0].index(name) + len(name)
        for line, cell in zip(lines[2:], cells, strict=True):
            assert line[end - len(cell) : end] == cell
    # Text columns are left-aligned: the cells start where the header starts.
    start = lines[0].index("trial_id")
    assert lines[2][start:].startswith("t003") and lines[3][start:].startswith("t012")
    assert lines[2] == lines[2].rstrip()  # the blank "extra" cell leaves no trailing spaces


def test_format_table_columns_and_empty():
    rows = [{"a": 1.0, "b": 2}, {"a": None, "b": 3}]
    table = format_table(rows, columns=["b", "a"])
    assert table.splitlines()[0].split() == ["b", "a"]
    assert table.splitlines()[2].split() == ["2", "1"]  # 1.0 printed compactly
    assert format_table([]) == ""
    assert format_table([], columns=["a"]).splitlines() == ["a", "-"]


def _wide_front(n=19, dims=20):
    """A front like the default search's: many params, most of them differing."""
    front = []
    for i in range(n):
        params = {f"group{d % 5}/knob_{d}": round(0.123456 * (i + 1) * (d + 1), 5)
                  for d in range(dims - 1)}
        params["quant/scheme"] = "symmetric"  # the same everywhere
        front.append(trial(i, accuracy=0.9 + i / 1000, latency_ms=1.0 / (i + 1),
                           params=params))
    return front


def test_front_table_fits_100_columns_and_wide_shows_everything():
    front = _wide_front()
    table = front_table(front, (ACC, LAT))
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split()[:3] == ["trial", "accuracy", "latency_ms"]
    assert "quant/scheme" not in lines[0]  # equal across the front
    assert "--wide" in lines[-1] and "1 params equal" in lines[-1]
    assert len(lines) == 2 + 19 + 1
    wide = front_table(front, (ACC, LAT), wide=True)
    header = wide.splitlines()[0]
    assert "trial_id" in header and "quant/scheme" in header
    assert all(f"knob_{d}" in header for d in range(19))
    assert "--wide" not in wide


def test_front_table_shows_identical_trials_once_with_a_count():
    same = {"arch/depth": 2, "prune/ratio": 0.5}
    front = [trial(4, accuracy=0.9, latency_ms=0.5, params=same),
             trial(9, accuracy=0.9, latency_ms=0.52, params=dict(same)),
             trial(7, accuracy=0.95, latency_ms=0.8, params={"arch/depth": 3,
                                                              "prune/ratio": 0.5})]
    lines = front_table(front, (ACC, LAT)).splitlines()
    assert lines[0].split() == ["trial", "n", "accuracy", "latency_ms", "arch/depth"]
    assert [line.split()[:2] for line in lines[2:4]] == [["4", "2"], ["7", "1"]]
    assert len(lines) == 5 and "1 params equal" in lines[-1]
    assert front_table([], (ACC,)) == ""
