"""Test helpers shared across test packages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Float, Int, SearchSpace

#: The objectives of :func:`fg_objectives`.
FG_OBJECTIVES = (Objective("f", "min"), Objective("g", "max"))


class FGSpace(SearchSpace):
    """Three namespaced dims and a joint constraint (``arch/x <= 8``), like the real spaces.

    Subclasses may change the dimensions, keeping ``arch/x``, ``prune/y`` and ``quant/c``
    for :func:`fg_objectives`.
    """

    name = "toy"

    def default_dimensions(self):
        return {
            "arch/x": Int(0, 10),
            "prune/y": Float(0.0, 1.0, step=0.1),
            "quant/c": Categorical(["a", "b"]),
        }

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        if params["arch/x"] > 8:
            return "arch/x must be <= 8"
        return None

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


def fg_objectives(params: Mapping[str, Any]) -> dict[str, float]:
    """``f`` (minimised) is smallest at ``arch/x=3``; ``g`` (maximised) grows with ``prune/y``."""
    bonus = 2.0 if params["quant/c"] == "a" else 1.0
    return {"f": (params["arch/x"] - 3) ** 2 + params["prune/y"], "g": params["prune/y"] * bonus}
