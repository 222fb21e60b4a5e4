"""The ``random`` strategy: independent uniform samples of every dimension."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nascompress.pareto import TrialState
from nascompress.strategies._base import (
    FINISHED,
    Outcome,
    ValidatingStrategy,
    check_int_option,
    check_state_header,
    random_state_from_json,
    random_state_to_json,
)
from nascompress.strategies._registry import register_strategy

if TYPE_CHECKING:
    from nascompress.spaces import SearchSpace

_STATE_VERSION = 1


@register_strategy("random")
class RandomStrategy(ValidatingStrategy):
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

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        check_int_option("max_trials", self.max_trials, 1, or_none=True)
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
        if outcome.state == TrialState.INVALID:
            # The trial was never run, so it must not use up the max_trials budget.
            self._n_counted -= 1

    def state_dict(self) -> dict[str, Any]:
        self._check_ready()
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "rng": random_state_to_json(self._rng),
            "n_counted": self._n_counted,
            "outstanding": list(self._outstanding),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._check_ready()
        check_state_header(state, owner="RandomStrategy", name=self.name, version=_STATE_VERSION)
        random_state_from_json(self._rng, state["rng"])
        self._n_counted = int(state["n_counted"])
        self._outstanding = dict.fromkeys(state["outstanding"])
