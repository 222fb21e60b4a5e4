"""Plain-text tables and flat rows of trial records, for the CLI and ``pareto.csv``.

Presentation, kept apart from the multi-objective maths in :mod:`nascompress.pareto`;
pure Python like it, so the CLI and the records can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nascompress.objectives import Objective
from nascompress.pareto import is_number, score_source

__all__ = ["format_table", "front_rows", "front_table"]


def front_rows(
    front: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[dict[str, Any]]:
    """Flat rows for tables and CSV: ``number``, ``trial_id``, objectives, then params.

    When any trial records where its score comes from (weight sharing: see
    :func:`~nascompress.pareto.score_source`) a ``score_source`` column follows the
    objectives.

    Params keep their flat names (``arch/depth``). A param whose name collides with one of
    the leading columns is written as ``param:<name>`` instead of overwriting it.

    Args:
        front: trial records.
        objectives: the objectives, in column order.

    Returns:
        One dict per trial, keys in column order; rows may differ in their param keys.
    """
    rows = []
    sourced = any(score_source(trial) for trial in front)
    for trial in front:
        values = trial.get("objectives") or {}
        row: dict[str, Any] = {"number": trial.get("number"), "trial_id": trial.get("trial_id")}
        for objective in objectives:
            row[objective.name] = values.get(objective.name)
        if sourced:
            row["score_source"] = score_source(trial)
        for key, value in (trial.get("params") or {}).items():
            row[f"param:{key}" if key in row else key] = value
        rows.append(row)
    return rows


def format_cell(value: Any) -> str:
    """How a value reads in a table, a report or a pick's explanation: 4 significant
    digits, whole numbers (byte counts) whole (12203, not 1.22e+04), ``""`` for None."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return str(value)
    if is_number(value):  # floats and NumPy scalars
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
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
    cells = [[format_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [
        any(is_number(row.get(c)) for row in rows)
        and all(row.get(c) is None or is_number(row.get(c)) for row in rows)
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


def _params_key(trial: Mapping[str, Any]) -> str:
    import json

    return json.dumps(trial.get("params") or {}, sort_keys=True, default=str)


def front_table(
    front: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    *,
    wide: bool = False,
    width: int = 100,
) -> str:
    """The front as a terminal table: ``trial``, the objectives, then the parameters.

    Trials with identical params (the same candidate proposed twice) are shown once, the
    first of them, with how many there were in column ``n``. Column ``source`` says
    where each score comes from when the trials record it (``inherited`` from a
    supernet, or ``fine-tuned``). By default only the
    parameters whose values differ across the front are shown and columns that would
    go beyond ``width`` characters are left out (a last line says which); ``wide=True``
    shows every parameter and the trial ids, whatever the width.

    Args:
        front: the front's trial records, in the order to show.
        objectives: the objectives, in column order.
        wide: every column.
        width: the widest line allowed when not ``wide``.

    Returns:
        The table (no trailing newline); ``""`` for an empty front.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    sourced = any(score_source(trial) for trial in front)
    for trial in front:
        groups.setdefault(_params_key(trial), []).append(trial)
    rows, param_names = [], []
    for trials in groups.values():
        first = trials[0]
        row: dict[str, Any] = {"trial": first.get("number")}
        if wide:
            row["trial_id"] = first.get("trial_id")
        if len(trials) > 1 or any(len(g) > 1 for g in groups.values()):
            row["n"] = len(trials)
        values = first.get("objectives") or {}
        for objective in objectives:
            row[objective.name] = values.get(objective.name)
        if sourced:
            row["source"] = score_source(first)
        params = first.get("params") or {}
        for key in params:
            if key not in param_names:
                param_names.append(key)
        rows.append((row, params))
    if not rows:
        return ""
    shown = [name for name in param_names
             if wide or len({repr((p or {}).get(name)) for _, p in rows}) > 1]
    table_rows = []
    for row, params in rows:
        for name in shown:
            row[f"param:{name}" if name in row else name] = params.get(name)
        table_rows.append(row)
    columns = list(dict.fromkeys(key for row in table_rows for key in row))
    if wide:
        return format_table(table_rows, columns)
    lead = 1 + ("n" in columns) + len(objectives) + sourced
    left_out: list[str] = []
    while len(columns) > lead:
        table = format_table(table_rows, columns)
        if max(len(line) for line in table.splitlines()) <= width:
            break
        left_out.insert(0, columns.pop())
    table = format_table(table_rows, columns)
    same = len(param_names) - len(shown)
    notes = []
    if same:
        notes.append(f"{same} params equal across the front")
    if left_out:
        notes.append(f"{len(left_out)} more columns ({left_out[0]}, ...)")
    if notes:
        table += f"\nnot shown: {'; '.join(notes)} (--wide shows all)"
    return table
