"""The :class:`Evaluator` contract: how a candidate is built, trained, compressed and scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nascompress.objectives import Objective

if TYPE_CHECKING:
    from nascompress.data import DatasetSplits
    from nascompress.spaces import SearchSpace

#: ``report(step, metrics)``: intermediate results (Ray's report under Tune, a no-op locally).
ReportFn = Callable[[int, Mapping[str, float]], None]


def no_report(step: int, metrics: Mapping[str, float]) -> None:
    """The ``report`` used outside Ray Tune: intermediate results are dropped."""


@dataclass
class TrialContext:
    """What a trial knows about where and how it runs.

    Attributes:
        trial_id: the runner's id for this trial.
        seed: per-trial seed derived from the search seed.
        artifact_dir: folder for files the evaluator writes (the compressed artifact).
        shared: the result of :meth:`Evaluator.prepare`, identical for every trial.
        device: ``"cpu"`` or ``"cuda"``: what this trial was given.
    """

    trial_id: str
    seed: int
    artifact_dir: Path
    shared: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"


class Evaluator(ABC):
    """Scores one candidate of a search space.

    Contract:

    * The constructor only stores keyword options (scikit-learn style);
      :meth:`validate` checks them before any compute is spent and raises
      ``ValueError`` naming the option and the value.
    * :meth:`objectives` declares what :meth:`evaluate` returns, each with a mode and unit.
    * :meth:`prepare` runs **once per search on the driver** (for example to train a
      distillation teacher); what it returns must be picklable and is handed unchanged
      to every trial as ``context.shared``. It is not re-run per trial.
    * :meth:`evaluate` runs in a worker process. It returns a flat dict: a finite number
      for every declared objective, plus any other keys, which are recorded as the
      trial's ``metrics``. It raises on failure (the trial is recorded as FAILED with
      the error). It never imports ray: intermediate results go through ``report``.

    Args are evaluator-specific keyword options.
    """

    name: ClassVar[str] = ""

    def validate(self) -> None:
        """Raise ``ValueError`` for unusable options; the default accepts everything."""
        return None

    @abstractmethod
    def objectives(self) -> Sequence[Objective]:
        """The objectives this evaluator measures, in a stable order."""

    def prepare(
        self, *, space: SearchSpace, dataset: DatasetSplits, seed: int, workdir: Path
    ) -> Mapping[str, Any]:
        """Once-per-search work on the driver; the result becomes ``context.shared``."""
        return {}

    @abstractmethod
    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        space: SearchSpace,
        dataset: DatasetSplits,
        context: TrialContext,
        report: ReportFn = no_report,
    ) -> dict[str, Any]:
        """Build, train, compress and measure the candidate ``params``."""

    def settings(self) -> dict[str, Any]:
        """JSON-able options recorded in ``run.json``."""
        return {}
