"""The ``bayesian`` strategy: multi-objective TPE, backed by optuna's ask/tell API.

optuna is imported in :meth:`BayesianStrategy.setup`, so importing this module (and
listing strategies) stays cheap.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Dimension, Float, Int
from nascompress.strategies._base import Outcome, Strategy, check_setup_args
from nascompress.strategies._registry import register_strategy

if TYPE_CHECKING:
    import optuna

    from nascompress.spaces import SearchSpace

_STATE_VERSION = 1

#: Proposals TPE gets for one trial id before its retries are drawn at random instead.
#: TPE ignores failed trials, so INVALID feedback does not move it: with independent
#: sampling it can keep proposing the same rejected region (seen in tests), and uniform
#: draws are the most likely way out.
_TPE_RETRIES = 3


@register_strategy("bayesian")
class BayesianStrategy(Strategy):
    """Multi-objective Tree-structured Parzen Estimator (optuna's ``TPESampler``).

    Every proposal is one trial of an in-memory optuna study whose directions follow the
    objectives. ``INVALID`` and ``FAILED`` outcomes, and ``COMPLETE`` ones with a missing
    or non-finite objective, are told as failed trials (TPE ignores them); ``PRUNED``
    outcomes are told as pruned trials.

    Because TPE learns nothing from failed trials, a trial id whose proposals were
    rejected ``INVALID`` three times in a row gets its further retries drawn uniformly
    at random (as in the startup phase), so constraints cannot trap the search.

    Args:
        n_startup_trials: trials sampled at random before TPE takes over.
        constant_liar: let TPE account for outstanding trials, so parallel asks do not
            all propose the same point.
        multivariate: model the dimensions jointly rather than one by one.
    """

    name = "bayesian"

    def __init__(
        self, *, n_startup_trials: int = 8, constant_liar: bool = True, multivariate: bool = True
    ) -> None:
        self.n_startup_trials = n_startup_trials
        self.constant_liar = constant_liar
        self.multivariate = multivariate
        self._study: optuna.Study | None = None
        self._objectives: tuple[Objective, ...] = ()
        self._dimensions: dict[str, Dimension] = {}
        self._distributions: dict[str, Any] = {}
        self._index_coded: set[str] = set()
        self._trial_numbers: dict[str, int] = {}  # every asked id -> its latest trial number
        self._pending: dict[str, int] = {}  # asked, not yet told
        self._invalid_streaks: dict[str, int] = {}  # id -> INVALID tells in a row
        self._fallback_rng = random.Random(0)  # replaced by setup's seed

    def setup(self, space: SearchSpace, objectives: Sequence[Objective], *, seed: int) -> None:
        self._objectives = check_setup_args(space, objectives, seed)
        n = self.n_startup_trials
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"strategy.n_startup_trials must be an integer >= 0, but got {n!r}")
        for option in ("constant_liar", "multivariate"):
            if not isinstance(getattr(self, option), bool):
                raise TypeError(
                    f"strategy.{option} must be true or false, but got {getattr(self, option)!r}"
                )

        import optuna

        # One INFO line per trial would drown the search's own progress output.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._dimensions = dict(space.dimensions())
        self._distributions = {}
        self._index_coded = set()
        for key, dimension in self._dimensions.items():
            distribution, index_coded = _to_distribution(key, dimension)
            self._distributions[key] = distribution
            if index_coded:
                self._index_coded.add(key)
        with warnings.catch_warnings():
            # Older optuna releases flag multivariate TPE as experimental on construction.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=n,
                constant_liar=self.constant_liar,
                multivariate=self.multivariate,
            )
        self._study = optuna.create_study(
            directions=["maximize" if o.mode == "max" else "minimize" for o in self._objectives],
            sampler=sampler,
        )
        self._trial_numbers = {}
        self._pending = {}
        self._invalid_streaks = {}
        # Its own stream, so fallback draws leave TPE's random state untouched.
        self._fallback_rng = random.Random(seed)

    def _require_study(self) -> optuna.Study:
        if self._study is None:
            raise RuntimeError("BayesianStrategy.setup(...) must be called before use")
        return self._study

    def ask(self, trial_id: str) -> dict[str, Any]:
        study = self._require_study()
        if trial_id in self._pending:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")
        import optuna

        if self._invalid_streaks.get(trial_id, 0) >= _TPE_RETRIES:
            # An enqueued trial takes its params as given instead of asking the sampler.
            study.enqueue_trial(
                {key: self._to_optuna(key, dim.sample(self._fallback_rng))
                 for key, dim in self._dimensions.items()}
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = study.ask(fixed_distributions=self._distributions)
        self._pending[trial_id] = trial.number
        self._trial_numbers[trial_id] = trial.number
        return {key: self._to_value(key, trial.params[key]) for key in self._distributions}

    def _to_value(self, key: str, value: Any) -> Any:
        dimension = self._dimensions[key]
        if key in self._index_coded:
            return dimension.choices[value]  # type: ignore[attr-defined]
        if isinstance(dimension, Float) and dimension.step is not None:
            # optuna returns low + k * step with float noise (0.7000000000000001); match
            # the values Float.grid() lists.
            return round(value, 12)
        return value

    def _to_optuna(self, key: str, value: Any) -> Any:
        dimension = self._dimensions[key]
        if key in self._index_coded:
            choices = dimension.choices  # type: ignore[attr-defined]
            return next(i for i, c in enumerate(choices) if type(c) is type(value) and c == value)
        if isinstance(dimension, Float):
            # log-uniform draws can overshoot an end by a rounding error
            return min(max(value, dimension.low), dimension.high)
        return value

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        study = self._require_study()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be an Outcome, but got {outcome!r}")
        number = self._pending.pop(trial_id, None)
        if number is None:
            return
        from optuna.trial import TrialState

        if outcome.state == "INVALID":
            self._invalid_streaks[trial_id] = self._invalid_streaks.get(trial_id, 0) + 1
        else:
            self._invalid_streaks.pop(trial_id, None)
        if outcome.state == "PRUNED":
            study.tell(number, state=TrialState.PRUNED)
        elif outcome.is_good(self._objectives):
            study.tell(number, [float(outcome.objectives[o.name]) for o in self._objectives])
        else:
            study.tell(number, state=TrialState.FAIL)

    def state_dict(self) -> dict[str, Any]:
        study = self._require_study()
        from optuna.distributions import distribution_to_json

        trials = []
        for trial in study.get_trials(deepcopy=False):
            trials.append(
                {
                    "number": trial.number,
                    "state": trial.state.name,
                    "params": {
                        k: trial.distributions[k].to_internal_repr(v)
                        for k, v in trial.params.items()
                    },
                    "distributions": {
                        k: distribution_to_json(d) for k, d in trial.distributions.items()
                    },
                    "values": None if trial.values is None else [float(v) for v in trial.values],
                }
            )
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "trials": trials,
            "trial_numbers": dict(self._trial_numbers),
            "pending": list(self._pending),
            "invalid_streaks": dict(self._invalid_streaks),
            "fallback_rng": _py_rng_to_json(self._fallback_rng),
            "rng": {key: _rng_to_json(rng) for key, rng in _sampler_rngs(study.sampler).items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        study = self._require_study()
        if state.get("strategy") != self.name or state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"state must come from BayesianStrategy.state_dict (strategy={self.name!r}, "
                f"version={_STATE_VERSION}), but got strategy={state.get('strategy')!r}, "
                f"version={state.get('version')!r}"
            )
        if study.trials or self._trial_numbers:
            raise RuntimeError(
                "load_state_dict needs a freshly set-up BayesianStrategy, but this one has "
                f"already asked {len(study.trials)} trial(s)"
            )
        from optuna.distributions import json_to_distribution
        from optuna.trial import TrialState, create_trial

        trials = []
        for index, record in enumerate(state["trials"]):
            if record["number"] != index:
                raise ValueError(
                    f"state['trials'][{index}] has number={record['number']!r}; trials must be "
                    "stored in order, numbered from 0"
                )
            distributions = {
                k: json_to_distribution(v) for k, v in record["distributions"].items()
            }
            if distributions != self._distributions:
                raise ValueError(
                    f"state was saved for a different search space: trial {index} has "
                    f"{distributions}, this strategy's space gives {self._distributions}"
                )
            trial_state = TrialState[record["state"]]
            trials.append(
                create_trial(
                    state=trial_state,
                    params={
                        k: distributions[k].to_external_repr(v) for k, v in record["params"].items()
                    },
                    distributions=distributions,
                    values=record["values"] if trial_state == TrialState.COMPLETE else None,
                )
            )
        pending = {tid: int(state["trial_numbers"][tid]) for tid in state["pending"]}
        for tid, number in pending.items():
            if not 0 <= number < len(trials) or trials[number].state != TrialState.RUNNING:
                raise ValueError(
                    f"state lists trial_id {tid!r} as pending, but its trial {number} is not "
                    "a running trial"
                )
        # Outstanding asks come back as RUNNING trials (add_trial accepts them), so constant
        # liar sees them as before and a later tell(trial_id) finishes them by number.
        for trial in trials:
            study.add_trial(trial)
        self._trial_numbers = {tid: int(n) for tid, n in state["trial_numbers"].items()}
        self._pending = pending
        self._invalid_streaks = {tid: int(n) for tid, n in state["invalid_streaks"].items()}
        version, internal, gauss_next = state["fallback_rng"]
        self._fallback_rng.setstate((version, tuple(internal), gauss_next))
        saved_rngs = state.get("rng") or {}
        for key, rng in _sampler_rngs(study.sampler).items():
            if saved_rngs.get(key) is None:
                warnings.warn(
                    f"the saved state has no {key!r} random state for the TPE sampler; "
                    "the resumed search will not repeat the original's proposals exactly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            _rng_from_json(rng, saved_rngs[key])


def _ambiguous(choices: Sequence[Any]) -> bool:
    # optuna finds a choice by ==, so 1, 1.0 and True would be confused with each other.
    return any(a == b for i, a in enumerate(choices) for b in choices[i + 1 :])


def _to_distribution(key: str, dimension: Dimension) -> tuple[Any, bool]:
    """The optuna distribution of ``dimension`` and whether it codes choices by index."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(dimension, Categorical):
        if _ambiguous(dimension.choices):
            return CategoricalDistribution(list(range(len(dimension.choices)))), True
        return CategoricalDistribution(list(dimension.choices)), False
    if isinstance(dimension, Int):
        return (
            IntDistribution(dimension.low, dimension.high, step=dimension.step, log=dimension.log),
            False,
        )
    if isinstance(dimension, Float):
        return (
            FloatDistribution(dimension.low, dimension.high, step=dimension.step,
                              log=dimension.log),
            False,
        )
    raise TypeError(
        f"BayesianStrategy supports Categorical, Int and Float dimensions, but dimension "
        f"{key!r} is {dimension!r}"
    )


def _sampler_rngs(sampler: Any) -> dict[str, Any]:
    """The numpy RandomStates a TPESampler draws from, by role.

    TPESampler keeps a ``LazyRandomState`` at ``_rng`` (its ``.rng`` is a numpy
    ``RandomState``) for TPE proposals, and an inner ``RandomSampler`` with its own for
    the startup trials. These are private attributes: when an optuna release moves them,
    the role is left out and loading warns that the resume is not exact.
    """
    found = {}
    for role, holder in (
        ("tpe", getattr(sampler, "_rng", None)),
        ("random", getattr(getattr(sampler, "_random_sampler", None), "_rng", None)),
    ):
        rng = getattr(holder, "rng", holder)  # LazyRandomState, or a bare RandomState
        if hasattr(rng, "get_state") and hasattr(rng, "set_state"):
            found[role] = rng
    return found


def _py_rng_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def _rng_to_json(rng: Any) -> list[Any]:
    kind, keys, pos, has_gauss, cached_gaussian = rng.get_state(legacy=True)
    return [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached_gaussian)]


def _rng_from_json(rng: Any, data: Sequence[Any]) -> None:
    import numpy as np

    kind, keys, pos, has_gauss, cached_gaussian = data
    rng.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian))
