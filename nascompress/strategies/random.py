"""The ``random`` strategy: independent uniform samples of every dimension."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nascompress.objectives import Objective
from nascompress.strategies._base import (
    FINISHED,
    Outcome,
    Strategy,
    check_constraints,
    check_setup_args,
)
from nascompress.strategies._registry import register_strategy

if TYPE_CHECKING:
    from nascompress.search.pareto import Constraint
    from nascompress.spaces import SearchSpace

_STATE_VERSION = 1


@register_strategy("random")
class RandomStrategy(Strategy):
    """Samples each dimension independently (log-uniformly where ``log=True``).

    A strong baseline and the reference for what other strategies must beat. Results
    (and so constraints) are ignored, so proposals never depend on the order in which
    trials finish.

    Args:
        max_trials: return :data:`~nascompress.strategies.FINISHED` after this many
            proposals (proposals told ``INVALID`` do not count); ``None`` for no limit.
    """

    name = "random"

    def __init__(self, *, max_trials: int | None = None) -> None:
        self.max_trials = max_trials
        self._space: SearchSpace | None = None
        self._rng: random.Random = random.Random(0)  # replaced by setup's seed
        self._n_counted = 0
        self._outstanding: dict[str, None] = {}  # ordered, so state_dict is stable

    def setup(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] = (),
    ) -> None:
        check_constraints(constraints, check_setup_args(space, objectives, seed))
        if self.max_trials is not None and (
            not isinstance(self.max_trials, int)
            or isinstance(self.max_trials, bool)
            or self.max_trials < 1
        ):
            raise ValueError(
                f"strategy.max_trials must be an integer >= 1 or None, but got "
                f"{self.max_trials!r}"
            )
        self._space = space
        self._dimensions = dict(space.dimensions())
        self._rng = random.Random(seed)
        self._n_counted = 0
        self._outstanding = {}

    def _check_ready(self) -> None:
        if self._space is None:
            raise RuntimeError("RandomStrategy.setup(...) must be called before ask/tell")

    def ask(self, trial_id: str) -> dict[str, Any] | str:
        self._check_ready()
        if trial_id in self._outstanding:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")
        if self.max_trials is not None and self._n_counted >= self.max_trials:
            return FINISHED
        params = {key: dim.sample(self._rng) for key, dim in self._dimensions.items()}
        self._outstanding[trial_id] = None
        self._n_counted += 1
        return params

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        self._check_ready()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be an Outcome, but got {outcome!r}")
        if trial_id not in self._outstanding:
            return
        del self._outstanding[trial_id]
        if outcome.state == "INVALID":
            # The trial was never run, so it must not use up the max_trials budget.
            self._n_counted -= 1

    def state_dict(self) -> dict[str, Any]:
        self._check_ready()
        version, internal, gauss_next = self._rng.getstate()
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "rng": [version, list(internal), gauss_next],
            "n_counted": self._n_counted,
            "outstanding": list(self._outstanding),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._check_ready()
        if state.get("strategy") != self.name or state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"state must come from RandomStrategy.state_dict (strategy={self.name!r}, "
                f"version={_STATE_VERSION}), but got strategy={state.get('strategy')!r}, "
                f"version={state.get('version')!r}"
            )
        version, internal, gauss_next = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss_next))
        self._n_counted = int(state["n_counted"])
        self._outstanding = dict.fromkeys(state["outstanding"])
