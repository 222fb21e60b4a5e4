"""What the optuna-backed strategies share: the study, ask/tell, and JSON state by replay.

Every proposal is one trial of an in-memory optuna study whose directions follow the
objectives. ``INVALID`` and ``FAILED`` outcomes, and ``COMPLETE`` ones with a missing or
non-finite objective, are told as failed trials (optuna's samplers ignore them);
``PRUNED`` outcomes are told as pruned trials. Strategies that set
:attr:`OptunaStrategy._impute_failures` (the GP) tell all of these instead as the worst
result so far with a violated ``"ran"`` constraint. With constraints, every ``COMPLETE`` trial
gets one constraint value per constraint through ``Trial.set_constraint`` (optuna's own
convention: ``<= 0`` is feasible), which TPE, NSGA-II and the GP sampler all read to rank
infeasible trials below feasible ones. (``constraints_func`` would do the same but is
deprecated since optuna 5.0.)

:meth:`OptunaStrategy.state_dict` saves every trial (params, state, values and system
attributes: the constraint values and the samplers' own bookkeeping, such as NSGA-II
generations), the study's system attributes (NSGA-II's cached parent populations) and
the samplers' random states. Loading replays the trials into the fresh study of a newly
set-up strategy, so the next proposals are the ones the original would have made.

optuna is imported in :meth:`OptunaStrategy.setup`, never at module level.
"""

from __future__ import annotations

import contextlib
import random
import threading
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from nascompress.objectives import Objective
from nascompress.pareto import Constraint, TrialState
from nascompress.spaces import Categorical, Dimension, Float, Int
from nascompress.strategies._base import (
    Outcome,
    ValidatingStrategy,
    check_state_header,
    params_fingerprint,
    random_state_from_json,
    random_state_to_json,
)
from nascompress.strategies._neighbours import unseen_neighbour

if TYPE_CHECKING:
    import optuna

    from nascompress.spaces import SearchSpace

_STATE_VERSION = 2

#: Proposals the sampler gets for one trial id before its retries are drawn at random.
#: optuna's samplers ignore failed trials, so INVALID feedback does not move them: with
#: independent sampling TPE can keep proposing the same rejected region (seen in tests),
#: and uniform draws are the most likely way out.
_SAMPLER_RETRIES = 3

#: A proposal that repeats an earlier ask is discarded and the sampler asked again this
#: many times; then a never-asked neighbour of the sampler's last repeat replaces it
#: (see :meth:`OptunaStrategy._redraw`). On the tabular benchmarks (bench/strategies)
#: TPE with one value per few dimensions repeated 44 of 100 proposals and NSGA-II 31
#: without any redraw. Re-asking rarely helps TPE there: once its model has settled it
#: proposes the same point again. On digits-7d-3x (mean of 5 seeds) 2 of 100 asks were
#: found by a re-ask and 42 replaced by a neighbour (197 of 300 at budget 300); when a
#: uniform draw replaced the repeat instead, 67 of 100 (261 of 300) were replaced, and
#: TPE was mostly random search. For NSGA-II, whose children are drawn at random, a
#: re-ask usually differs (21 of 100 asks found by a re-ask, 3 replaced). Counted by
#: ``bench/strategies/count_repeats.py``.
_SAMPLER_REDRAWS = 2

#: Uniform draws tried for one never asked before, when no neighbour of the repeat is
#: unseen, before a repeat is accepted.
_RANDOM_REDRAWS = 100


class OptunaStrategy(ValidatingStrategy):
    """Base class of strategies whose proposals come from an optuna sampler.

    Subclasses store their options in ``__init__`` (then call ``super().__init__()``),
    validate them in :meth:`_validate_options` and build the sampler in
    :meth:`_create_sampler`.
    """

    #: Whether outcomes that are not good results are told as the worst results so far
    #: with a violated "ran" constraint, instead of as failed or pruned trials. For the GP:
    #: it ignores failed trials, so a region where every trial fails looks unexplored for
    #: ever, and its acquisition keeps proposing it (seen in the conformance checks).
    _impute_failures: bool = False

    #: Whether a proposal that repeats an earlier ask is redrawn (see :meth:`ask`).
    _redraw_repeats: bool = True

    #: Whether a repeated proposal of a point with a result is told that result again
    #: (a duplicate observation, no trial run) before the sampler is asked again, rather
    #: than told as failed. For the GP: it proposes a point again when its noise model
    #: says another measurement there could pay; a failed trial teaches it nothing, so
    #: it went on proposing the point, and every later ask was a neighbour of it. On
    #: ``mnist5k-mbv3-ws`` at 100 trials that left it behind optuna's own GP, which
    #: spends a trial on the repeat and then moves on.
    _tell_repeats_their_result: bool = False

    def __init__(self) -> None:
        self._study: optuna.Study | None = None
        self._objectives: tuple[Objective, ...] = ()
        self._constraints: tuple[Constraint, ...] = ()
        self._dimensions: dict[str, Dimension] = {}
        self._distributions: dict[str, Any] = {}
        self._index_coded: set[str] = set()
        self._trial_numbers: dict[str, int] = {}  # every asked id -> its latest trial number
        self._pending: dict[str, int] = {}  # asked, not yet told
        self._handles: dict[int, Any] = {}  # trial number -> optuna.Trial, while running
        self._invalid_streaks: dict[str, int] = {}  # id -> INVALID tells in a row
        self._fallback_rng = random.Random(0)  # replaced by setup's seed
        self._asked_keys: set[str] = set()  # params_key of every proposal so far

    # ------------------------------------------------------------------ subclass hooks

    def _validate_options(self) -> None:
        """Raise ``ValueError`` / ``TypeError`` naming a bad option and its value."""

    @abstractmethod
    def _create_sampler(self, seed: int) -> Any:
        """A fresh optuna sampler seeded with ``seed`` (optuna is importable here)."""

    def _options_state(self) -> dict[str, Any]:
        """Options that must match between a saved state and the strategy loading it."""
        return {}

    def _sampling(self) -> contextlib.AbstractContextManager[None]:
        """Context in which the sampler proposes (e.g. to limit threads)."""
        return contextlib.nullcontext()

    def _extra_sampler_state(self, sampler: Any) -> dict[str, Any]:
        """Sampler state beyond its random generators (see :meth:`_load_extra_state`)."""
        return {}

    def _load_extra_state(self, sampler: Any, state: Mapping[str, Any]) -> None:
        """Restore :meth:`_extra_sampler_state` output."""

    # ------------------------------------------------------------------ Strategy

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        self._validate_options()

        import optuna

        # One INFO line per trial would drown the search's own progress output.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._space = space
        self._dimensions = dict(space.dimensions())
        self._distributions = {}
        self._index_coded = set()
        for key, dimension in self._dimensions.items():
            distribution, index_coded = _to_distribution(key, dimension, type(self).__name__)
            self._distributions[key] = distribution
            if index_coded:
                self._index_coded.add(key)
        self._study = optuna.create_study(
            directions=["maximize" if o.mode == "max" else "minimize" for o in self._objectives],
            sampler=self._new_sampler(seed),
        )
        self._trial_numbers = {}
        self._pending = {}
        self._handles = {}
        self._invalid_streaks = {}
        self._asked_keys = set()
        # Its own stream, so fallback draws leave the sampler's random state untouched.
        self._fallback_rng = random.Random(seed)

    def _new_sampler(self, seed: int) -> Any:
        """:meth:`_create_sampler`'s sampler, made picklable (see :class:`_PicklableLock`)."""
        import optuna

        with warnings.catch_warnings():
            # Some optuna releases flag sampler options as experimental on construction.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self._create_sampler(seed)
        if isinstance(getattr(sampler, "_thread_lock", None), _LOCK_TYPE):
            sampler._thread_lock = _PicklableLock()
        return sampler

    def _require_study(self) -> optuna.Study:
        if self._study is None:
            raise RuntimeError(f"{type(self).__name__}.setup(...) must be called before use")
        return self._study

    def ask(self, trial_id: str) -> dict[str, Any]:
        study = self._require_study()
        if trial_id in self._pending:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")

        if self._invalid_streaks.get(trial_id, 0) >= _SAMPLER_RETRIES:
            # An enqueued trial takes its params as given instead of asking the sampler.
            study.enqueue_trial(
                {key: self._to_optuna(key, dim.sample(self._fallback_rng))
                 for key, dim in self._dimensions.items()}
            )
        trial = self._ask_sampler(study)
        params = self._params_of(trial)
        if self._redraw_repeats:
            trial, params = self._redraw(study, trial, params)
            self._asked_keys.add(params_fingerprint(params))
        self._pending[trial_id] = trial.number
        self._trial_numbers[trial_id] = trial.number
        self._handles[trial.number] = trial
        return params

    def _ask_sampler(self, study: Any) -> Any:
        import optuna

        with warnings.catch_warnings(), self._sampling():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return study.ask(fixed_distributions=self._distributions)

    def _redraw(self, study: Any, trial: Any, params: dict[str, Any]) -> tuple[Any, dict]:
        """Replace a proposal that repeats an earlier ask.

        The repeat's optuna trial is told ``FAIL`` (the samplers ignore failed trials, and
        it was never run), or the earlier result of its point again where
        :attr:`_tell_repeats_their_result` says so, and the sampler asked again, up to
        :data:`_SAMPLER_REDRAWS` times. When the last proposal still repeats, a
        never-asked neighbour of it is enqueued instead (:meth:`_unseen_neighbour`): the
        sampler proposes a point again because its model rates that region best, so the
        replacement stays in it. When no neighbour is unseen, a uniform draw that was
        never asked is enqueued; only when :data:`_RANDOM_REDRAWS` of those all repeat too
        (a nearly exhausted space) is the repeat proposed. Both draw from the strategy's
        own random stream, saved in the state, so a resumed search replaces repeats as
        the original did.
        """
        from optuna.trial import TrialState as OptunaTrialState

        for _ in range(_SAMPLER_REDRAWS):
            if params_fingerprint(params) not in self._asked_keys:
                return trial, params
            earlier = self._result_of(study, params) if self._tell_repeats_their_result else None
            if earlier is None:
                study.tell(trial.number, state=OptunaTrialState.FAIL)
            else:
                for key, value in earlier.constraints.items():
                    trial.set_constraint(key, value)
                study.tell(trial.number, earlier.values)
            trial = self._ask_sampler(study)
            params = self._params_of(trial)
        if params_fingerprint(params) not in self._asked_keys:
            return trial, params
        fresh = self._unseen_neighbour(params)
        if fresh is None:
            fresh = self._unseen_draw()
        if fresh is None:
            return trial, params
        study.tell(trial.number, state=OptunaTrialState.FAIL)
        study.enqueue_trial({key: self._to_optuna(key, value) for key, value in fresh.items()})
        trial = self._ask_sampler(study)
        return trial, self._params_of(trial)

    def _result_of(self, study: Any, params: dict[str, Any]) -> Any:
        """The first finished trial of the study with ``params``, or ``None``."""
        from optuna.trial import TrialState as OptunaTrialState

        key = params_fingerprint(params)
        for earlier in study.get_trials(deepcopy=False, states=(OptunaTrialState.COMPLETE,)):
            if set(earlier.params) == set(self._distributions) and key == params_fingerprint(
                self._params_of(earlier)
            ):
                return earlier
        return None

    def _unseen_neighbour(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """A never-asked point that differs from ``params`` in as few dimensions as
        :func:`~nascompress.strategies._neighbours.unseen_neighbour` finds."""
        return unseen_neighbour(self._dimensions, params, self._asked_keys, self._fallback_rng)

    def _unseen_draw(self) -> dict[str, Any] | None:
        for _ in range(_RANDOM_REDRAWS):
            draw = {key: dim.sample(self._fallback_rng) for key, dim in self._dimensions.items()}
            if params_fingerprint(draw) not in self._asked_keys:
                return draw
        return None

    def _params_of(self, trial: Any) -> dict[str, Any]:
        """An optuna trial's params as the space's values (see :meth:`_to_value`)."""
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
        handle = self._handles.pop(number, None)
        from optuna.trial import TrialState as OptunaTrialState

        if outcome.state == TrialState.INVALID:
            self._invalid_streaks[trial_id] = self._invalid_streaks.get(trial_id, 0) + 1
        else:
            self._invalid_streaks.pop(trial_id, None)
        if outcome.is_good(self._objectives):
            values = [float(outcome.objectives[o.name]) for o in self._objectives]
            excesses = [c.excess(outcome.objectives.get(c.metric)) for c in self._constraints]
            self._set_constraints(study, number, handle, ran=True, excesses=excesses)
            study.tell(number, values)
            return
        worst = self._worst_results(study) if self._impute_failures else None
        if worst is not None:
            values, excesses = worst
            self._set_constraints(study, number, handle, ran=False, excesses=excesses)
            study.tell(number, values)
        elif outcome.state == TrialState.PRUNED:
            study.tell(number, state=OptunaTrialState.PRUNED)
        else:
            study.tell(number, state=OptunaTrialState.FAIL)

    def _set_constraints(
        self, study: Any, number: int, handle: Any, *, ran: bool, excesses: Sequence[float]
    ) -> None:
        values = {}
        if self._impute_failures:
            # -1 / +1 rather than 0 / 1: the GP models this value, feasible below 0.
            values["ran"] = -1.0 if ran else 1.0
        # Keys by position; every COMPLETE trial gets the same keys in the same order,
        # as the GP sampler reads them as one vector.
        values.update({f"c{i}": excess for i, excess in enumerate(excesses)})
        if not values:
            return
        if handle is None:  # asked before a restore: rebuild the handle
            handle = _trial_handle(study, number)
        for key, value in values.items():
            handle.set_constraint(key, value)

    def _worst_results(self, study: Any) -> tuple[list[float], list[float]] | None:
        """Per objective the worst value, per constraint the largest excess, of the real
        results so far; ``None`` before the first one."""
        from optuna.trial import TrialState as OptunaTrialState

        real = [
            t for t in study.get_trials(deepcopy=False, states=(OptunaTrialState.COMPLETE,))
            if t.constraints.get("ran", -1.0) <= 0
        ]
        if not real:
            return None
        values = [
            (min if o.mode == "max" else max)(t.values[i] for t in real)
            for i, o in enumerate(self._objectives)
        ]
        excesses = [max(t.constraints[f"c{i}"] for t in real)
                    for i in range(len(self._constraints))]
        return values, excesses

    # ------------------------------------------------------------------ state

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
                    "system_attrs": dict(trial.system_attrs),
                }
            )
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "options": self._options_state(),
            "constraints": [c.to_dict() for c in self._constraints],
            "trials": trials,
            "study_system_attrs": _study_attrs_to_json(study),
            "trial_numbers": dict(self._trial_numbers),
            "pending": list(self._pending),
            "invalid_streaks": dict(self._invalid_streaks),
            "fallback_rng": random_state_to_json(self._fallback_rng),
            "rng": {key: _rng_to_json(rng) for key, rng in _sampler_rngs(study.sampler).items()},
            "sampler": self._extra_sampler_state(study.sampler),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        study = self._require_study()
        cls = type(self).__name__
        version = state.get("version")
        check_state_header(
            state, owner=cls, name=self.name, version=_STATE_VERSION, accepted=(1, _STATE_VERSION)
        )
        if study.trials or self._trial_numbers:
            raise RuntimeError(
                f"load_state_dict needs a freshly set-up {cls}, but this one has already "
                f"asked {len(study.trials)} trial(s)"
            )
        saved_options = state.get("options")  # absent from version 1 states
        if saved_options is not None and saved_options != self._options_state():
            raise ValueError(
                f"state was saved with options {saved_options}, but this strategy has "
                f"{self._options_state()}"
            )
        saved_constraints = state.get("constraints", [])
        if saved_constraints != [c.to_dict() for c in self._constraints]:
            raise ValueError(
                f"state was saved with constraints {saved_constraints}, but this strategy "
                f"has {[c.to_dict() for c in self._constraints]}"
            )
        from optuna.distributions import json_to_distribution
        from optuna.trial import TrialState as OptunaTrialState
        from optuna.trial import create_trial

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
            trial_state = OptunaTrialState[record["state"]]
            trials.append(
                create_trial(
                    state=trial_state,
                    params={
                        k: distributions[k].to_external_repr(v) for k, v in record["params"].items()
                    },
                    distributions=distributions,
                    values=record["values"] if trial_state == OptunaTrialState.COMPLETE else None,
                    system_attrs=record.get("system_attrs") or {},
                )
            )
        pending = {tid: int(state["trial_numbers"][tid]) for tid in state["pending"]}
        for tid, number in pending.items():
            if not 0 <= number < len(trials) or trials[number].state != OptunaTrialState.RUNNING:
                raise ValueError(
                    f"state lists trial_id {tid!r} as pending, but its trial {number} is not "
                    "a running trial"
                )
        # Outstanding asks come back as RUNNING trials (add_trial accepts them), so constant
        # liar and the GP's batch acquisition see them as before, and a later
        # tell(trial_id) finishes them by number.
        for trial in trials:
            study.add_trial(trial)
        # Every proposal is a trial of the study (discarded repeats too, told FAIL).
        self._asked_keys = {
            params_fingerprint(self._params_of(t))
            for t in study.get_trials(deepcopy=False)
            if set(t.params) == set(self._distributions)
        }
        _study_attrs_from_json(study, state.get("study_system_attrs") or {})
        self._trial_numbers = {tid: int(n) for tid, n in state["trial_numbers"].items()}
        self._pending = pending
        self._handles = {}
        self._invalid_streaks = {tid: int(n) for tid, n in state["invalid_streaks"].items()}
        random_state_from_json(self._fallback_rng, state["fallback_rng"])
        saved_rngs = dict(state.get("rng") or {})
        if version == 1 and "tpe" in saved_rngs:  # version 1 named the TPE role "tpe"
            saved_rngs["sampler"] = saved_rngs.pop("tpe")
        for key, rng in _sampler_rngs(study.sampler).items():
            if saved_rngs.get(key) is None:
                warnings.warn(
                    f"the saved state has no {key!r} random state for the optuna sampler; "
                    "the resumed search will not repeat the original's proposals exactly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            _rng_from_json(rng, saved_rngs[key])
        self._load_extra_state(study.sampler, state.get("sampler") or {})


_LOCK_TYPE = type(threading.Lock())


class _PicklableLock:
    """A ``threading.Lock`` that pickles, as a new unlocked lock.

    optuna's genetic samplers (NSGA-II, NSGA-III) guard their parent cache with a plain
    lock, which cannot be pickled, and Ray Tune pickles the searcher, with the strategy
    and its study, when a search starts: ``nsga2`` failed there before any trial ran.
    A strategy that is unpickled is a copy, never the one holding the lock, so the copy
    starts with the lock free.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._lock.__exit__(*exc_info)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._lock = threading.Lock()


# ---------------------------------------------------------------------- distributions


def _ambiguous(choices: Sequence[Any]) -> bool:
    # optuna finds a choice by ==, so 1, 1.0 and True would be confused with each other.
    return any(a == b for i, a in enumerate(choices) for b in choices[i + 1 :])


def _to_distribution(key: str, dimension: Dimension, owner: str) -> tuple[Any, bool]:
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
        f"{owner} supports Categorical, Int and Float dimensions, but dimension "
        f"{key!r} is {dimension!r}"
    )


# ---------------------------------------------------------------------- optuna internals
#
# optuna has no public API for the pieces below: a handle on a running trial asked in an
# earlier process, the study's system attributes and the samplers' random states. Each is
# reached in one place, so an optuna upgrade that moves them breaks here, loudly, or (for
# the random states) with a warning that the resume is not exact.


def _trial_handle(study: Any, number: int) -> Any:
    """An ``optuna.Trial`` for the running trial ``number`` (for ``set_constraint``)."""
    import optuna

    frozen = study.get_trials(deepcopy=False)[number]
    return optuna.trial.Trial(study, frozen._trial_id)


def _parent_cache_prefix(sampler: Any) -> str | None:
    # Genetic samplers (NSGA-II) cache each generation's parents under this prefix, as a
    # list of storage trial ids; ids are mapped to trial numbers to survive the replay.
    get_prefix = getattr(type(sampler), "_get_parent_cache_key_prefix", None)
    return get_prefix() if callable(get_prefix) else None


def _study_attrs_to_json(study: Any) -> dict[str, Any]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    prefix = _parent_cache_prefix(study.sampler)
    numbers = {t._trial_id: t.number for t in study.get_trials(deepcopy=False)}
    plain, parents = {}, {}
    for key, value in attrs.items():
        if prefix is not None and key.startswith(prefix):
            parents[key] = [numbers[trial_id] for trial_id in value]
        else:
            plain[key] = value
    return {"plain": plain, "parent_numbers": parents}


def _study_attrs_from_json(study: Any, data: Mapping[str, Any]) -> None:
    ids = {t.number: t._trial_id for t in study.get_trials(deepcopy=False)}
    for key, value in (data.get("plain") or {}).items():
        study._storage.set_study_system_attr(study._study_id, key, value)
    for key, numbers in (data.get("parent_numbers") or {}).items():
        study._storage.set_study_system_attr(study._study_id, key, [ids[n] for n in numbers])


def _sampler_rngs(sampler: Any) -> dict[str, Any]:
    """The numpy RandomStates an optuna sampler draws from, by role.

    TPE, NSGA-II and GP samplers keep a ``LazyRandomState`` at ``_rng`` (its ``.rng`` is
    a numpy ``RandomState``) for their own proposals, and an inner ``RandomSampler`` with
    its own (``_random_sampler``, or the GP's ``_independent_sampler``) for startup
    trials. These are private attributes: when an optuna release moves them, the role is
    left out and loading warns that the resume is not exact.
    """
    inner = getattr(sampler, "_random_sampler", None) or getattr(
        sampler, "_independent_sampler", None
    )
    found = {}
    for role, holder in (
        ("sampler", getattr(sampler, "_rng", None)),
        ("random", getattr(inner, "_rng", None)),
    ):
        rng = getattr(holder, "rng", holder)  # LazyRandomState, or a bare RandomState
        if hasattr(rng, "get_state") and hasattr(rng, "set_state"):
            found[role] = rng
    return found


def gp_cache_to_json(sampler: Any) -> dict[str, Any]:
    """The GP sampler's cached kernel parameters (the warm start of its next fit).

    ``GPSampler`` keeps the kernel parameters of its last fit in memory and starts the
    next fit from them; without them a resumed search fits from the defaults and its
    proposals drift from the original's.
    """
    data = {}
    for attr in ("_gprs_cache_list", "_constraints_gprs_cache_list"):
        cache = getattr(sampler, attr, None)
        data[attr] = None if cache is None else [
            {
                "inverse_squared_lengthscales": [
                    float(v) for v in gpr.inverse_squared_lengthscales.detach().reshape(-1)
                ],
                "kernel_scale": float(gpr.kernel_scale),
                "noise_var": float(gpr.noise_var),
            }
            for gpr in cache
        ]
    return data


def gp_cache_from_json(sampler: Any, data: Mapping[str, Any]) -> None:
    """Restore :func:`gp_cache_to_json` output onto a fresh ``GPSampler``."""
    import torch

    for attr, cache in data.items():
        if not hasattr(sampler, attr):
            warnings.warn(
                f"this optuna's GPSampler has no {attr!r}; the resumed search will not "
                "repeat the original's proposals exactly",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        # The fit reads only these three tensors from a cached regressor.
        setattr(sampler, attr, None if cache is None else [
            SimpleNamespace(
                inverse_squared_lengthscales=torch.tensor(
                    entry["inverse_squared_lengthscales"], dtype=torch.float64
                ),
                kernel_scale=torch.tensor(entry["kernel_scale"], dtype=torch.float64),
                noise_var=torch.tensor(entry["noise_var"], dtype=torch.float64),
            )
            for entry in cache
        ])


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, restoring the previous count afterwards.

    The GP sampler issues many small torch and numpy calls whose thread pools fight over
    the cores; optuna limits threads only around parts of its work. On a 2-core machine
    one thread throughout made each proposal about ten times faster, with identical
    results.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _rng_to_json(rng: Any) -> list[Any]:
    kind, keys, pos, has_gauss, cached_gaussian = rng.get_state(legacy=True)
    return [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached_gaussian)]


def _rng_from_json(rng: Any, data: Sequence[Any]) -> None:
    import numpy as np

    kind, keys, pos, has_gauss, cached_gaussian = data
    rng.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian))
