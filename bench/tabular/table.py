"""A tabular benchmark: the objectives of a proposed point looked up in a measured table.

A table (built by ``build.py``) holds every point of a reduced ``image-cnn`` or
``mobilenet`` space with its measured validation accuracy (trained, or inherited from a
supernet: :meth:`TabularBenchmark.describe` says which), artifact size and latency.
:class:`TabularBenchmark` gives a strategy that reduced space (the free dimensions as
categoricals, the rest pinned to one value), answers each proposal with the measured
objectives of that point (no noise is added: the table's accuracy is one measurement,
noise included), and knows the exact Pareto front of the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAMES = ("accuracy", "size_bytes", "latency_ms")


class TabularBenchmark:
    """Lookups into one measured table (``<name>.jsonl`` next to this file)."""

    def __init__(self, name: str) -> None:
        import build

        self.name = name
        self.spec = build.TABLES[name]
        self.space = build.table_space(name)
        self._free = list(self.spec["free"])
        rows = build.load_rows(name)
        expected = len(build.grid(name))
        if len(rows) < expected:
            raise FileNotFoundError(
                f"table {name!r} has {len(rows)} of its {expected} points; build it with "
                f"`python bench/tabular/build.py {name}`"
            )
        self._table: dict[tuple, dict[str, Any]] = {}
        for row in rows:
            self._table[self._key(row["params"])] = row
        self.points = [r for r in self._table.values() if r["state"] == "COMPLETE"]
        self.build_seconds = sum(r.get("seconds", 0.0) for r in self.points)

    def _key(self, params: Mapping[str, Any]) -> tuple:
        return tuple(params[k] for k in self._free)

    def __len__(self) -> int:
        return len(self.points)

    def evaluate(self, params: Mapping[str, Any]) -> dict[str, float] | None:
        """The measured objectives of ``params`` (``None`` for a point the space rejects)."""
        row = self._table[self._key(params)]
        if row["state"] != "COMPLETE":
            return None
        return {k: float(row[k]) for k in NAMES}

    true_objectives = evaluate

    def worst(self) -> dict[str, float]:
        return {"accuracy": min(p["accuracy"] for p in self.points),
                "size_bytes": max(p["size_bytes"] for p in self.points),
                "latency_ms": max(p["latency_ms"] for p in self.points)}

    @cached_property
    def front(self) -> list[dict[str, float]]:
        """The non-dominated points of the whole table."""
        values = [{k: float(p[k]) for k in NAMES} for p in self.points]

        def dominates(a: dict[str, float], b: dict[str, float]) -> bool:
            no_worse = (a["accuracy"] >= b["accuracy"] and a["size_bytes"] <= b["size_bytes"]
                        and a["latency_ms"] <= b["latency_ms"])
            return no_worse and a != b

        return [v for v in values if not any(dominates(o, v) for o in values)]

    def describe(self) -> str:
        accs = sorted(p["accuracy"] for p in self.points)
        at_max = sum(a >= accs[-1] - 1e-9 for a in accs)
        free = ", ".join(f"{k} {v}" for k, v in self.spec["free"].items())
        return (f"{len(self.points)} points ({free}); {self.spec['dataset']}, "
                f"{json.dumps(self.spec['evaluator'])}; accuracy {accs[0]:.3f}-{accs[-1]:.3f} "
                f"(median {accs[len(accs) // 2]:.3f}, {at_max} points at the maximum); "
                f"{len(self.front)} front points; built in {self.build_seconds / 60:.1f} min; "
                + ("every objective **measured**, accuracy **inherited** from one supernet "
                   "(what a weight-sharing search sees)"
                   if self.spec.get("evaluator_name") == "supernet"
                   else "every objective **measured**"))
