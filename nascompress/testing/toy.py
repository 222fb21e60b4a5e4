"""A toy search space and problem with a known optimum, for testing strategies.

Pure Python: no torch, no ray, no optuna. The problem has two objectives to minimise:

* ``error``: 0 at :data:`TOY_OPTIMUM` (``arch/kind="b"``, ``arch/depth=5``,
  ``prune/ratio=0.1``) and growing away from it (a wrong kind costs 0.5, depth and the
  log of the ratio cost quadratically), so "how close did the search get" is one number;
* ``size``: grows with depth and ratio, so the two objectives conflict and the Pareto
  front is a real trade-off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Dimension, Float, Int, SearchSpace

__all__ = ["TOY_OBJECTIVES", "TOY_OPTIMUM", "ToySpace", "toy_objectives"]

#: The toy problem's objectives, both minimised.
TOY_OBJECTIVES = (Objective("error", "min"), Objective("size", "min", unit="units"))

#: Where ``error`` is 0 (in both the continuous and the gridded space).
TOY_OPTIMUM: dict[str, Any] = {"arch/kind": "b", "arch/depth": 5, "prune/ratio": 0.1}

_KIND_SIZE = {"a": 0.8, "b": 1.0, "c": 1.2}


class ToySpace(SearchSpace):
    """Three dimensions, one of each type, and one joint constraint.

    * ``arch/kind``: Categorical ``["a", "b", "c"]``;
    * ``arch/depth``: Int 1..8;
    * ``prune/ratio``: Float 0.01..1.0, log-scaled; with ``gridded=True`` instead
      0.05..1.0 in steps of 0.05, so that every dimension is finite (480 points).

    :meth:`check` rejects ``arch/kind="c"`` with ``arch/depth=8`` (1 point in 24), so
    strategies meet an ``INVALID`` now and then. :meth:`build_model` is not available:
    the space is for strategy tests, which never build models.

    Args:
        gridded: make every dimension finite (for the grid strategy).
        dimensions: overrides, as for every space.
    """

    name = "toy"

    def __init__(
        self, *, gridded: bool = False,
        dimensions: Mapping[str, Dimension | Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(gridded, bool):
            raise TypeError(f"space.gridded must be true or false, but got {gridded!r}")
        self.gridded = gridded
        super().__init__(dimensions=dimensions)

    def default_dimensions(self) -> dict[str, Dimension]:
        ratio = Float(0.05, 1.0, step=0.05) if self.gridded else Float(0.01, 1.0, log=True)
        return {
            "arch/kind": Categorical(["a", "b", "c"]),
            "arch/depth": Int(1, 8),
            "prune/ratio": ratio,
        }

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        if params["arch/kind"] == "c" and params["arch/depth"] == 8:
            return "arch/kind='c' allows arch/depth <= 7"
        return None

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError("ToySpace is for strategy tests and builds no models")


def toy_objectives(params: Mapping[str, Any]) -> dict[str, float]:
    """The toy problem's objective values at ``params`` (see the module docstring)."""
    kind, depth, ratio = params["arch/kind"], params["arch/depth"], params["prune/ratio"]
    error = (
        (0.0 if kind == "b" else 0.5)
        + ((depth - 5) / 7) ** 2
        + (math.log10(ratio) + 1.0) ** 2 / 4
    )
    return {"error": error, "size": depth * (1.0 + ratio) * _KIND_SIZE[kind]}
