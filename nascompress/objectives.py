"""Objectives: what a search optimises, with direction and unit.

Comparing trials on them (dominance, fronts, the finite-number check) is
:mod:`nascompress.pareto`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MODES = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """One optimisation target.

    Args:
        name: metric key in trial records, with its unit in the name (``latency_ms``).
        mode: ``"max"`` or ``"min"``.
        unit: human-readable unit for tables and reports.
    """

    name: str
    mode: str
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"objective name must be a non-empty string, but got {self.name!r}")
        if self.mode not in MODES:
            raise ValueError(
                f"objective {self.name!r}: mode must be 'max' or 'min', but got {self.mode!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        return cls(name=data["name"], mode=data["mode"], unit=data.get("unit", ""))

    def as_minimised(self, value: float) -> float:
        """``value`` mapped so that smaller is better (negated for ``max``)."""
        return -value if self.mode == "max" else value

