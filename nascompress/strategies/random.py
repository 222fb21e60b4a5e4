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
    params_fingerprint,
    random_state_from_json,
    random_state_to_json,
)
from nascompress.strategies._registry import register_strategy

if TYPE_CHECKING:
    from nascompress.spaces import SearchSpace

_STATE_VERSION = 2  # 2 added "asked" (version 1 states still load)

#: Draws per ask before a repeat of an earlier proposal is accepted (a nearly exhausted
#: space): a repeat would train a point already trained.
_DISTINCT_TRIES = 100


@register_strategy("random")
class RandomStrategy(ValidatingStrategy):
    """Samples each dimension independently (log-uniformly where ``log=True``).

    A strong baseline and the reference for what other strategies must beat. Results
    (and so constraints) are ignored, so proposals never depend on the order in which
    trials finish. A draw that repeats an earlier proposal is drawn again (up to 100
    times), so on a small discrete space this samples without replacement.

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
        self._fingerprints: set[str] = set()  # fingerprints of every proposal so far

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        check_int_option("max_trials", self.max_trials, 1, or_none=True)
        self._space = space
        self._dimensions = dict(space.dimensions())
        self._rng = random.Random(seed)
        self._n_counted = 0
        self._outstanding = {}
        self._fingerprints = set()

    def _check_ready(self) -> None:
        if self._space is None:
            raise RuntimeError("RandomStrategy.setup(...) must be called before ask/tell")

    def ask(self, trial_id: str) -> dict[str, Any] | str:
        self._check_ready()
        if trial_id in self._outstanding:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")
        if self.max_trials is not None and self._n_counted >= self.max_trials:
            return FINISHED
        for _ in range(_DISTINCT_TRIES):
            params = {key: dim.sample(self._rng) for key, dim in self._dimensions.items()}
            fingerprint = params_fingerprint(params)
            if fingerprint not in self._fingerprints:
                break
        self._fingerprints.add(fingerprint)
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
            "asked": sorted(self._fingerprints),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._check_ready()
        check_state_header(state, owner="RandomStrategy", name=self.name,
                           version=_STATE_VERSION, accepted=(1, _STATE_VERSION))
        random_state_from_json(self._rng, state["rng"])
        self._n_counted = int(state["n_counted"])
        self._outstanding = dict.fromkeys(state["outstanding"])
        # Version 1 kept no record of its proposals: repeats of them go unnoticed.
        self._fingerprints = set(state.get("asked", []))
