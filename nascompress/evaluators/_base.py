"""The :class:`Evaluator` contract: how a candidate is built, trained, compressed and scored."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nascompress.objectives import Objective

if TYPE_CHECKING:
    from nascompress.data import Dataset
    from nascompress.latency.measure import LatencySetup
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
        shared: :attr:`Prepared.shared` from :meth:`Evaluator.prepare`, identical for
            every trial.
        device: ``"cpu"`` or ``"cuda"``: what this trial was given.
        stage: ``"search"``, or ``"final"`` when the trial finishes a point the
            evaluator chose in :meth:`Evaluator.finalists`.
    """

    trial_id: str
    seed: int
    artifact_dir: Path
    shared: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    stage: str = "search"


@dataclass(frozen=True)
class Prepared:
    """What :meth:`Evaluator.prepare` hands back: state for the trials, facts for the records.

    Attributes:
        shared: picklable state handed unchanged to every trial as ``context.shared``.
        record: JSON-able sections added to ``run.json`` (e.g. ``{"teacher": {...}}``);
            each key becomes a top-level field, so it must not be one the runner writes
            itself (see :data:`RESERVED_RUN_FIELDS`).
        summary: one line printed when the preparation is done, or ``None``.
    """

    shared: Mapping[str, Any] = field(default_factory=dict)
    record: Mapping[str, Any] = field(default_factory=dict)
    summary: str | None = None

    @classmethod
    def of(cls, value: Prepared | Mapping[str, Any] | None) -> Prepared:
        """``value`` as a checked :class:`Prepared`.

        A plain mapping (what ``prepare`` returned before it could say more) is the
        shared state alone: nothing is recorded or printed.

        Raises:
            TypeError: ``value`` is neither, or ``record`` is not JSON-able.
            ValueError: ``record`` would overwrite a field of ``run.json``, or ``summary``
                is not one line.
        """
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            return cls(shared=value)
        if not isinstance(value, Prepared):
            raise TypeError(
                f"prepare() must return a Prepared or a mapping, but got "
                f"{type(value).__name__}"
            )
        if not isinstance(value.shared, Mapping) or not isinstance(value.record, Mapping):
            raise TypeError(
                f"Prepared.shared and Prepared.record must be mappings, but got "
                f"{type(value.shared).__name__} and {type(value.record).__name__}"
            )
        clash = sorted(set(value.record) & RESERVED_RUN_FIELDS)
        if clash:
            raise ValueError(
                f"Prepared.record keys must not be fields the runner writes to run.json, "
                f"but got {clash}"
            )
        try:
            json.dumps(dict(value.record), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Prepared.record must be JSON-able, but got: {exc}") from None
        if value.summary is not None and (
            not isinstance(value.summary, str) or "\n" in value.summary.strip()
        ):
            raise ValueError(f"Prepared.summary must be one line of text, but got "
                             f"{value.summary!r}")
        return value


#: ``run.json`` fields the runner owns; a :attr:`Prepared.record` may not replace them.
RESERVED_RUN_FIELDS = frozenset({
    "name", "created_at", "versions", "seed", "objectives", "constraints", "space",
    "strategy", "dataset", "evaluator", "latency", "config", "host", "status", "resumed",
    "finished_at", "elapsed_s", "schema_version",
})


@dataclass(frozen=True)
class LatencyUse:
    """How an evaluator measures latency: what ``run.json`` records, what the predictor
    filter's layer table times.

    Attributes:
        setup: threads, batch size, repeats, ...
            (:class:`~nascompress.latency.measure.LatencySetup`).
        runtime: ``"onnxruntime"`` or ``"torch"``.
    """

    setup: LatencySetup
    runtime: str


class Evaluator(ABC):
    """Scores one candidate of a search space.

    The runner (local or Ray Tune) relies on this contract and on nothing else; an
    evaluator it has never heard of gets every feature the built-in one gets.

    * The constructor only stores keyword options (scikit-learn style);
      :meth:`validate` checks them before any compute is spent and raises
      ``ValueError`` naming the option and the value; :meth:`check_space` says why it
      cannot search a given space (weight sharing needs a space with a supernet).
    * :meth:`objectives` declares what :meth:`evaluate` returns, each with a mode and a
      unit; the progress line prints them as ``name=value`` formatted by unit.
    * :meth:`classification` says whether candidates are classifiers: models mapping a
      batch to ``(batch, num_classes)`` logits, scored against integer labels in
      ``[0, num_classes)``; the runner then checks both before any compute. An
      evaluator scoring another task (a user metric on segmentation, detection or text
      outputs) returns False: the runner then checks only the inputs, and that a model
      runs on a batch.
    * :meth:`intermediate_metrics` declares what ``report`` emits during a trial that
      early stopping may compare (name -> ``"max"`` / ``"min"``), and
      :meth:`intermediate_margins` how much better one trial must be on a metric to
      count as better (absolute; metrics left out get the rule's relative margin). With
      none declared (the default) early stopping is unavailable: asking for it is a
      ``ConfigError`` before any compute. ``report`` may carry other numbers too: they
      are kept with a stopped trial's record, never compared.
    * :meth:`prepare` runs **once per search on the driver** (for example to train a
      distillation teacher) and returns a :class:`Prepared`: ``shared`` (picklable,
      handed unchanged to every trial as ``context.shared``; not re-run per trial),
      ``record`` (JSON sections added to ``run.json``, such as ``teacher``) and an
      optional one-line ``summary`` printed for the user. A plain mapping is accepted
      as ``shared`` alone.
    * The search's latency service: an evaluator that measures latency sets
      :attr:`uses_latency_service`. The runner then calls :meth:`configure_latency`
      with the search's ``latency:`` settings, before :meth:`validate`, and reads back
      what the evaluator will actually use with :meth:`latency_use` (recorded in
      ``run.json``; the latency predictor filter times layers the same way and applies
      to a ``latency_ms <= bound`` constraint, so a latency objective should be named
      ``latency_ms``). In :meth:`evaluate` it measures through
      ``nascompress.latency.current().measure_onnx(...)`` / ``.measure_torch(...)``,
      which share the node's gate, cache and pinned target with the other trials, and
      records ``result.as_metrics()`` in its result.
    * :meth:`evaluate` runs in a worker process. It returns a flat dict: a finite real
      number (``float``, ``int`` or a NumPy scalar) for every declared objective, plus
      any other keys, which are recorded as the trial's ``metrics``. It raises on
      failure (the trial is recorded as FAILED with the error). It never imports ray:
      intermediate results go through ``report(step, metrics)``, where ``step`` counts
      up (epochs, say) and is what ``early_stopping.rungs`` refer to.
    * :meth:`finalists` (optional) lets an evaluator finish the search: after the
      budget, the runner asks it which recorded trials to evaluate again and runs each
      one's params as a new trial with ``context.stage == "final"`` (same runner,
      latency service and retries; never told to the strategy). Their records carry
      ``stage: "final"`` and ``metrics["finalist_of"]`` (the chosen trial's number);
      once one completes, the front, pick, export and report are taken from the final
      trials alone (:func:`nascompress.pareto.front_pool`). A resumed search runs only
      the finalists not recorded yet. The default chooses none.
    * :meth:`settings` returns the JSON options recorded in ``run.json``; the runner
      reads nothing from it.

    :mod:`nascompress.testing.evaluator_conformance` checks a plug-in against this
    contract.

    Args are evaluator-specific keyword options.
    """

    name: ClassVar[str] = ""
    #: True when :meth:`evaluate` measures latency through the search's latency service
    #: (see :meth:`configure_latency`).
    uses_latency_service: ClassVar[bool] = False

    def validate(self) -> None:
        """Raise ``ValueError`` for unusable options; the default accepts everything."""
        return None

    def check_space(self, space: SearchSpace) -> str | None:
        """Why this evaluator cannot search ``space`` (a ``ConfigError`` before any
        compute), or ``None``; the default accepts every space."""
        return None

    def check_environment(self) -> str | None:
        """Why this machine, the driver, cannot run :meth:`prepare` as configured (a
        ``ConfigError`` before any compute: e.g. a GPU asked for where there is none),
        or ``None``; the default has nothing to check. Runs on the driver only, unlike
        :meth:`validate`, which trials run too on machines that may differ."""
        return None

    def classification(self) -> bool:
        """Whether candidates are classifiers scored against class labels (see above)."""
        return True

    @abstractmethod
    def objectives(self) -> Sequence[Objective]:
        """The objectives this evaluator measures, in a stable order."""

    def intermediate_metrics(self) -> Mapping[str, str]:
        """Metrics ``report`` emits that early stopping compares: name -> mode.

        The default declares none, which makes early stopping unavailable.
        """
        return {}

    def intermediate_margins(self) -> Mapping[str, float]:
        """Absolute margins for some :meth:`intermediate_metrics` (name -> margin >= 0)."""
        return {}

    def configure_latency(self, *, setup: LatencySetup, runtime: str) -> None:
        """Take the search's latency settings; called once, before :meth:`validate`.

        Only called when :attr:`uses_latency_service` is set. The default keeps them for
        :meth:`latency_use`. An evaluator whose own options can also say how to measure
        keeps those where the user gave them (the evaluator's options are the more
        specific ones).
        """
        self._search_latency = LatencyUse(setup, runtime)

    def latency_use(self) -> LatencyUse | None:
        """How :meth:`evaluate` measures latency; ``None`` when it measures none."""
        if not self.uses_latency_service:
            return None
        return getattr(self, "_search_latency", None)

    def prepare(
        self, *, space: SearchSpace, dataset: Dataset, seed: int, workdir: Path
    ) -> Prepared | Mapping[str, Any]:
        """Once-per-search work on the driver; see :class:`Prepared`."""
        return Prepared()

    @abstractmethod
    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        space: SearchSpace,
        dataset: Dataset,
        context: TrialContext,
        report: ReportFn = no_report,
    ) -> dict[str, Any]:
        """Build, train, compress and measure the candidate ``params``."""

    def finalists(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        objectives: Sequence[Objective],
        constraints: Sequence[Any] = (),
    ) -> list[Mapping[str, Any]]:
        """The recorded trials (of ``records``) to run again as finalists; default none."""
        return []

    def settings(self) -> dict[str, Any]:
        """JSON-able options recorded in ``run.json``."""
        return {}
