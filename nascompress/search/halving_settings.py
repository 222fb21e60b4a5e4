"""The successive-halving rule's settings, declared once.

:class:`~nascompress.search.early_stopping.MultiObjectiveHalving` validates its
arguments with :class:`HalvingSettings`, and the ``early_stopping`` config section
(:class:`~nascompress.config.EarlyStoppingConfig`) is these fields plus its own.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from nascompress.settings import ConstraintError, Settings


class HalvingSettings(Settings):
    """Rungs, ``eta`` and the relative margin of multi-objective successive halving."""

    section: ClassVar[str] = "early_stopping"

    #: steps at which trials are compared, strictly increasing.
    rungs: list[int] = Field(default_factory=lambda: [3, 6, 12])
    #: keep the best ``1/eta`` at each rung (plus every non-dominated trial).
    eta: int = Field(2, ge=2)
    #: margin of the metrics without an absolute one, as a fraction of the value.
    relative_margin: float = Field(0.05, ge=0)

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if not value or any(r < 1 for r in value) or sorted(set(value)) != value:
            raise ConstraintError("a non-empty, strictly increasing list of steps >= 1")
        return value
