"""Multi-objective successive halving: stop trials that are clearly behind, early.

Ray Tune's schedulers rank trials on one metric; a search for small, fast *and* accurate
models would then stop every small model for its lower early accuracy. This rule ranks
trials on several intermediate metrics at once, by non-dominated sorting and crowding
distance (as NSGA-II does, with :func:`nascompress.pareto.rank_and_crowding`):

* rungs are steps (epochs, for the default evaluator) such as 3, 6, 12. When a trial
  first reports a step at or past a rung, its intermediate metrics are recorded there;
* among the trials recorded at that rung which report the same metrics (at least
  ``min_trials`` of them), the trial continues when it is non-dominated, or when it is
  among the best ``ceil(n / eta)`` by (front rank, then larger crowding distance);
  otherwise it is stopped. So a stopped trial is always dominated by at least one
  trial at its rung: a candidate that trades accuracy for size is kept as long as
  nothing beats it on every metric.
* dominance at a rung is *clear* dominance: no worse in every metric and better by
  more than a margin in at least one (``margins``: absolute, default 0.01 for
  ``val_accuracy``, i.e. about 3 validation samples of digits; other metrics
  ``relative_margin`` of their value, default 5 %). Early accuracies are noisy and
  bunch up near the top; without margins a trial 0.001 behind on accuracy would count
  as beaten, and the rule would prune what are really ties.
* within a front, a metric on which every trial there ties adds no crowding distance:
  which of the tied trials is "the boundary" would only be an accident of arrival
  order (see :func:`nascompress.pareto.crowding_distances`).

Asynchronous like ASHA: decisions compare with whatever reached the rung before, never
wait for a full cohort. The metrics are by default what the evaluator declares
(``Evaluator.intermediate_metrics``); the default evaluator's are ``val_accuracy`` (max)
and what it knows of the compressed model before training it: ``est_size_bytes``
(estimated artifact bytes) and ``est_latency_ms`` (the untrained compressed structure,
measured; the final measurement of the same structure is then a cache hit).

Stopped trials are recorded as ``PRUNED`` (with the reason), never enter the front, and
the strategy is told ``PRUNED``. :class:`MultiObjectiveHalving` is the rule itself (pure
Python); the Ray Tune scheduler in :mod:`nascompress.search.controller` and the local
runner's :class:`~nascompress.search.trial.TrialRunner` both use it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nascompress.objectives import MODES
from nascompress.pareto import dominates_vector, is_finite_number, is_number, rank_and_crowding
from nascompress.search.halving_settings import HalvingSettings
from nascompress.settings import SettingError, violation


@dataclass(frozen=True)
class RungDecision:
    """What the rule says about one intermediate result."""

    stop: bool
    rung: int | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class MultiObjectiveHalving:
    """The successive-halving rule on several metrics (see the module docstring).

    Thread-safe: Tune calls it from its event loop, the local runner from its report.

    Args:
        rungs: steps at which trials are compared, strictly increasing.
        eta: keep the best ``1/eta`` at each rung (plus every non-dominated trial).
        metrics: intermediate metric name -> ``"max"`` or ``"min"``; metrics a trial
            does not report (or reports as NaN) are left out of its comparison.
        min_trials: trials recorded at a rung before anyone there is stopped
            (default ``eta``).
        margins: metric -> absolute margin a trial must be beaten by (see above);
            default ``{"val_accuracy": 0.01}``.
        relative_margin: margin of the other metrics, as a fraction of the value.
    """

    def __init__(
        self,
        *,
        rungs: Sequence[int],
        eta: int = HalvingSettings.model_fields["eta"].default,
        metrics: Mapping[str, str],
        min_trials: int | None = None,
        margins: Mapping[str, float] | None = None,
        relative_margin: float = HalvingSettings.model_fields["relative_margin"].default,
    ) -> None:
        # Sequences and mappings of any kind, as before; the settings model is strict.
        settings = HalvingSettings(rungs=list(rungs), eta=eta,
                                   relative_margin=relative_margin)
        if not metrics or any(mode not in MODES for mode in metrics.values()):
            raise SettingError(violation(
                "early_stopping.metrics", "a non-empty mapping of metric names to 'max' or "
                "'min'", dict(metrics)))
        margins = {} if margins is None else dict(margins)
        if any(not is_number(v) or not v >= 0 for v in margins.values()):
            raise SettingError(violation(
                "early_stopping.margins", "a mapping of metric names to numbers >= 0",
                margins))
        self.margins = margins
        self.relative_margin = settings.relative_margin
        self.rungs = settings.rungs
        self.eta = settings.eta
        self.metrics = dict(metrics)
        self.min_trials = self.eta if min_trials is None else int(min_trials)
        self._records: dict[int, dict[str, dict[str, float]]] = {r: {} for r in self.rungs}
        self._next_rung: dict[str, int] = {}
        self._lock = threading.Lock()

    def on_result(self, trial_id: str, step: Any, result: Mapping[str, Any]) -> RungDecision:
        """Record ``result`` at every rung that ``step`` reached; stop or continue."""
        if not is_finite_number(step):
            return RungDecision(False)
        with self._lock:
            index = self._next_rung.get(trial_id, 0)
            while index < len(self.rungs) and step >= self.rungs[index]:
                rung = self.rungs[index]
                index += 1
                self._next_rung[trial_id] = index
                values = {}
                for name in self.metrics:
                    value = result.get(name)
                    if is_finite_number(value):
                        values[name] = float(value)
                if not values:
                    continue
                self._records[rung][trial_id] = values
                decision = self._judge(rung, trial_id)
                if decision.stop:
                    return decision
            return RungDecision(False)

    def _judge(self, rung: int, trial_id: str) -> RungDecision:
        names = sorted(self._records[rung][trial_id])
        peers = [(t, v) for t, v in self._records[rung].items() if all(n in v for n in names)]
        n = len(peers)
        if n < self.min_trials:
            return RungDecision(False, rung)
        signs = [-1.0 if self.metrics[name] == "max" else 1.0 for name in names]
        vectors = [[s * v[name] for s, name in zip(signs, names, strict=True)] for _, v in peers]
        margins = [[self.margins[name] if name in self.margins
                    else self.relative_margin * abs(v[name]) for name in names]
                   for _, v in peers]
        scores = rank_and_crowding(vectors, margins)
        order = sorted(range(n), key=lambda i: (scores[i][0], -scores[i][1], i))
        me = next(i for i, (t, _) in enumerate(peers) if t == trial_id)
        keep = max(1, math.ceil(n / self.eta))
        position = order.index(me)
        rank = scores[me][0]
        if rank == 0 or position < keep:
            return RungDecision(False, rung)
        beaten_by = sum(1 for i in range(n)
                        if dominates_vector(vectors[i], vectors[me], margins[me]))
        shown = ", ".join(f"{name}={self._records[rung][trial_id][name]:.4g}" for name in names)
        reason = (f"early stopping at step {rung}: {shown} is dominated by {beaten_by} of the "
                  f"{n} trials at this rung (front rank {rank}, place {position + 1}); "
                  f"eta={self.eta} keeps the non-dominated and the best {keep}")
        metrics = {"pruned_at_step": rung, "pruned_rank": rank, "pruned_place": position + 1,
                   "pruned_dominated_by": beaten_by, "pruned_rung_trials": n,
                   **{f"pruned_{name}": value
                      for name, value in self._records[rung][trial_id].items()}}
        return RungDecision(True, rung, reason, metrics)

    def __getstate__(self) -> dict[str, Any]:
        # Tune may pickle its scheduler with the experiment; the lock is recreated.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        """Recorded vectors per rung (for inspection and tests)."""
        with self._lock:
            return {rung: dict(records) for rung, records in self._records.items()}
