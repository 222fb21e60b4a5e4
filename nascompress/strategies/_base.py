"""The :class:`Strategy` contract (ask/tell) and the helpers every runner shares."""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from nascompress.objectives import Objective
from nascompress.pareto import TRIAL_STATES, Constraint, TrialState, is_finite_number

if TYPE_CHECKING:
    from nascompress.spaces import SearchSpace

#: Returned by :meth:`Strategy.ask` when the strategy will propose nothing more. The same
#: string as ``ray.tune.search.Searcher.FINISHED`` (ray is not imported here on purpose).
FINISHED: Final = "FINISHED"


@dataclass(frozen=True)
class Outcome:
    """How one asked trial ended.

    Args:
        state: one of :data:`~nascompress.pareto.TRIAL_STATES` (see
            :class:`~nascompress.pareto.TrialState`).
        objectives: objective name -> value; only meaningful for ``COMPLETE`` (and,
            as partial information, for ``PRUNED``).
        error: a short reason for ``FAILED`` / ``INVALID`` outcomes.
    """

    state: str
    objectives: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state not in TRIAL_STATES:
            raise ValueError(
                f"Outcome.state must be one of {list(TRIAL_STATES)}, but got {self.state!r}"
            )
        if not isinstance(self.objectives, Mapping):
            raise TypeError(
                f"Outcome.objectives must be a mapping of name -> value, but got "
                f"{self.objectives!r}"
            )
        if self.error is not None and not isinstance(self.error, str):
            raise TypeError(f"Outcome.error must be a string or None, but got {self.error!r}")
        # A private copy, so a caller mutating its dict later cannot change what was told.
        object.__setattr__(self, "objectives", dict(self.objectives))

    def is_good(self, objectives: Sequence[Objective]) -> bool:
        """Whether this outcome may count as a result: COMPLETE with finite objectives."""
        if self.state != TrialState.COMPLETE:
            return False
        return all(is_finite_number(self.objectives.get(o.name)) for o in objectives)


class Strategy(ABC):
    """A search strategy in ask/tell form (the shape of Ray Tune's ``Searcher``).

    Contract:

    * The constructor only stores keyword options. :meth:`setup` is called before
      anything else, with the search space, the objectives, a seed and the constraints;
      it validates the options (``ValueError`` / ``TypeError`` naming the option and the
      value). Calling :meth:`setup` again starts the strategy afresh.
    * Constraints (:class:`~nascompress.pareto.Constraint`, each on one objective)
      say which results are acceptable. A ``COMPLETE`` outcome that violates one counts as
      worse than every feasible result, whatever its objective values; among infeasible
      results, a smaller violation (see :func:`constraint_violations`) is better.
      Strategies that ignore results (random, grid) accept constraints and ignore them.
      Callers with no constraints leave the keyword out, so strategies written before it
      existed keep working unconstrained.
    * ``budget`` (optional) is the number of trials the search will run, when the
      caller knows it (the runner passes ``trials`` from the config). Strategies may size
      their random start and populations by it; it is a hint, not a limit: asks past it
      must still be answered. Callers pass it through :func:`setup_strategy`, which
      leaves it out for a strategy whose ``setup`` does not take it, so strategies
      written before it existed keep working.
    * A proposal that repeats the params of an earlier ask of the same search wastes a
      trial: built-in strategies redraw it (see each strategy for how); they propose a
      repeat only when redrawing keeps failing (a nearly exhausted space).
    * Then :meth:`ask` and :meth:`tell` are called in any interleaving. Several asks may
      be outstanding before any tell (parallel trials).
    * ``ask(trial_id)`` returns a flat params dict (keys of ``space.dimensions()``),
      ``None`` (nothing to propose right now; ask again later) or :data:`FINISHED`
      (nothing more, ever). Proposals may violate the space's joint constraints:
      callers check them with ``space.check`` (see :func:`ask_valid`). Asking an id that
      is still outstanding is an error (``ValueError``).
    * ``tell(trial_id, outcome)`` is called once per ask of that id. A tell for an id
      with no outstanding ask (told twice, or never asked) is ignored. After a tell, the
      same id may be asked again: :func:`ask_valid` re-asks an id whose proposal was
      told ``INVALID``.
    * ``FAILED``, ``INVALID`` and ``PRUNED`` outcomes, and ``COMPLETE`` ones with a
      missing or non-finite objective, never count as good results.
    * :meth:`state_dict` returns a JSON-serialisable dict (``json.dumps`` works).
      :meth:`load_state_dict` on a freshly set-up strategy (same space, objectives,
      seed, constraints and budget) restores it, so that the following asks are identical to
      those the original would have produced; outstanding asks stay outstanding and can
      be told.
    * A set-up strategy pickles (Ray Tune pickles the searcher, with the strategy, when
      a search starts), and the copy proposes what the original would: no locks, open
      files or generators in its attributes.

    :mod:`nascompress.testing.strategy_conformance` checks an implementation against
    this contract.

    Attributes:
        name: the name the strategy is registered under.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def setup(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] = (),
        budget: int | None = None,
    ) -> None:
        """Prepare to search ``space`` for ``objectives``; validates the options.

        Args:
            space: the search space.
            objectives: what the trials report, with directions.
            seed: seeds every random choice the strategy makes.
            constraints: bounds on objectives that acceptable results meet (see
                :func:`check_constraints`).
            budget: the number of trials the search will run, or ``None`` when unknown.
        """

    @abstractmethod
    def ask(self, trial_id: str) -> dict[str, Any] | None | str:
        """Propose params for ``trial_id``, or ``None`` / :data:`FINISHED`."""

    @abstractmethod
    def tell(self, trial_id: str, outcome: Outcome) -> None:
        """Report how the trial asked as ``trial_id`` ended."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The strategy's whole state as JSON-able data."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output onto a freshly set-up strategy."""


class ValidatingStrategy(Strategy):
    """A :class:`Strategy` whose :meth:`setup` first checks the arguments all strategies share.

    Subclasses implement :meth:`_setup` instead of :meth:`setup`. It runs once
    :func:`check_setup_args` and :func:`check_constraints` have passed, with the validated
    objectives, constraints and budget stored as ``self._objectives``,
    ``self._constraints`` and ``self._budget`` (``None`` when unknown); it validates the
    strategy's own options and prepares a fresh search.
    """

    _budget: int | None = None

    def setup(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] = (),
        budget: int | None = None,
    ) -> None:
        self._objectives = check_setup_args(space, objectives, seed)
        self._constraints = check_constraints(constraints, self._objectives)
        if budget is not None and (
            not isinstance(budget, int) or isinstance(budget, bool) or budget < 1
        ):
            raise ValueError(f"budget must be an integer >= 1 or None, but got {budget!r}")
        self._budget = budget
        self._setup(space, seed=seed)

    @abstractmethod
    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        """Validate the options and start afresh on ``space`` (see :meth:`setup`)."""


def setup_strategy(
    strategy: Strategy,
    space: SearchSpace,
    objectives: Sequence[Objective],
    *,
    seed: int,
    constraints: Sequence[Constraint] = (),
    budget: int | None = None,
) -> None:
    """Call ``strategy.setup``, leaving out what the caller does not have.

    ``constraints`` are passed only when there are some and ``budget`` only when it is
    known and ``strategy.setup`` takes a ``budget`` keyword, so that strategies written
    before either existed keep working.
    """
    kwargs: dict[str, Any] = {}
    if constraints:
        kwargs["constraints"] = tuple(constraints)
    if budget is not None and _takes_keyword(strategy.setup, "budget"):
        kwargs["budget"] = budget
    strategy.setup(space, objectives, seed=seed, **kwargs)


def _takes_keyword(function: Any, name: str) -> bool:
    import inspect

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def check_setup_args(space: Any, objectives: Any, seed: Any) -> tuple[Objective, ...]:
    """Shared validation of :meth:`Strategy.setup` arguments; returns the objectives."""
    from nascompress.spaces import SearchSpace

    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, but got {space!r}")
    if not space.dimensions():
        raise ValueError(f"space {space.name!r} has no dimensions to search")
    if isinstance(objectives, str | Objective) or not isinstance(objectives, Sequence):
        raise TypeError(f"objectives must be a sequence of Objective, but got {objectives!r}")
    objectives = tuple(objectives)
    if not objectives:
        raise ValueError("objectives must not be empty, but got []")
    for objective in objectives:
        if not isinstance(objective, Objective):
            raise TypeError(f"objectives must hold Objective instances, but got {objective!r}")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"objective names must be distinct, but got {names!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, but got {seed!r}")
    return objectives


#: Random proposals before a model-based strategy takes over, when the budget is known:
#: optuna's default of 10, but at least one per searched dimension plus one and at most a
#: quarter of the budget.
STARTUP_MIN = 10


def startup_trials(space: SearchSpace, budget: int | None, *, default: int) -> int:
    """The random start of a model-based strategy, sized to ``space`` and ``budget``.

    ``default`` when the budget is unknown; otherwise ``max(10, d + 1)`` capped at a
    quarter of the budget (at least 2), ``d`` being the dimensions with more than one
    value.
    """
    if budget is None:
        return default
    searched = sum(1 for d in space.dimensions().values() if _values(d) != 1)
    return max(2, min(max(STARTUP_MIN, searched + 1), budget // 4))


def population_for(budget: int | None, *, default: int, turnovers: int = 5) -> int:
    """A population size for a budget: ``budget // turnovers``, between 8 and 50.

    So that a search of ``budget`` trials runs at least ``turnovers`` generations (or
    population turnovers); 50 is optuna's NSGA-II default. ``default`` when the budget
    is unknown.
    """
    if budget is None:
        return default
    return max(8, min(50, budget // turnovers))


def _values(dimension: Any) -> int | None:
    grid = dimension.grid()
    return None if grid is None else len(grid)


def check_int_option(name: str, value: Any, low: int, *, or_none: bool = False) -> None:
    """Raise ``ValueError`` unless the option ``strategy.<name>`` is an integer >= ``low``.

    Args:
        name: the option's name, for the message.
        value: its value; ``bool`` does not count as an integer.
        low: the smallest value allowed.
        or_none: ``None`` is allowed too (and the message says so).
    """
    if or_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        suffix = " or None" if or_none else ""
        raise ValueError(
            f"strategy.{name} must be an integer >= {low}{suffix}, but got {value!r}"
        )


def check_state_header(
    state: Mapping[str, Any],
    *,
    owner: str,
    name: str,
    version: int,
    accepted: Sequence[int] | None = None,
) -> None:
    """Raise ``ValueError`` unless ``state`` was saved by ``owner.state_dict``.

    Args:
        state: what :meth:`Strategy.load_state_dict` was given.
        owner: the class name that the message names.
        name: the strategy's registered name, stored as ``state["strategy"]``.
        version: the current state version, stored as ``state["version"]``.
        accepted: every version that can be loaded; default only ``version``.
    """
    accepted = (version,) if accepted is None else accepted
    if state.get("strategy") != name or state.get("version") not in accepted:
        raise ValueError(
            f"state must come from {owner}.state_dict (strategy={name!r}, "
            f"version={version}), but got strategy={state.get('strategy')!r}, "
            f"version={state.get('version')!r}"
        )


def params_fingerprint(params: Mapping[str, Any]) -> str:
    """A short stable digest of ``params``, to recognise a repeated proposal.

    ``repr`` keeps ``1`` and ``1.0`` (and ``True``) apart, as the space does.
    """
    canonical = json.dumps(sorted((key, repr(value)) for key, value in params.items()))
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


def random_state_to_json(rng: random.Random) -> list[Any]:
    """The state of ``rng`` as JSON-able data (see :func:`random_state_from_json`)."""
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def random_state_from_json(rng: random.Random, data: Sequence[Any]) -> None:
    """Restore :func:`random_state_to_json` output onto ``rng``."""
    version, internal, gauss_next = data
    rng.setstate((version, tuple(internal), gauss_next))


def check_constraints(
    constraints: Any, objectives: Sequence[Objective]
) -> tuple[Constraint, ...]:
    """Shared validation of the ``constraints`` argument of :meth:`Strategy.setup`.

    Strategies only see the objectives of an outcome, so every constraint must bound one
    of them.

    Args:
        constraints: a sequence of :class:`~nascompress.pareto.Constraint`.
        objectives: the validated objectives.

    Returns:
        The constraints as a tuple.

    Raises:
        TypeError: ``constraints`` is not a sequence of ``Constraint``.
        ValueError: a constraint names a metric that is not an objective.
    """
    if isinstance(constraints, str | Constraint) or not isinstance(constraints, Sequence):
        raise TypeError(
            f"constraints must be a sequence of Constraint, but got {constraints!r}"
        )
    names = [o.name for o in objectives]
    for constraint in constraints:
        if not isinstance(constraint, Constraint):
            raise TypeError(
                f"constraints must hold Constraint instances, but got {constraint!r}"
            )
        if constraint.metric not in names:
            raise ValueError(
                f"constraint {str(constraint)!r} names {constraint.metric!r}, which is not an "
                f"objective; strategies only see objectives {names!r}"
            )
    return tuple(constraints)


def constraint_violations(
    values: Mapping[str, Any], constraints: Sequence[Constraint]
) -> tuple[float, ...]:
    """How far ``values`` (objective name -> value) are from meeting each constraint.

    Each entry is :meth:`Constraint.violation <nascompress.pareto.Constraint.violation>`
    of the constrained value: ``0.0`` when the constraint holds and the relative
    violation ``|value - bound| / |bound|`` (``|value - bound|`` for a zero bound)
    otherwise; a missing or non-finite value counts as ``inf``. Relative, so that
    violations of constraints in different units (bytes and milliseconds) can be summed;
    their sum is :func:`nascompress.pareto.constraint_violation` of the outcome.

    Args:
        values: objective name -> value, usually ``outcome.objectives``.
        constraints: the constraints.

    Returns:
        One non-negative number per constraint; all zero means feasible.
    """
    return tuple(c.violation(values.get(c.metric)) for c in constraints)


def ask_valid(
    strategy: Strategy, space: SearchSpace, trial_id: str, *, max_attempts: int = 200
) -> dict[str, Any] | None | str:
    """Ask ``strategy`` until it proposes params that ``space.check`` accepts.

    Each rejected proposal is told ``Outcome("INVALID", error=reason)`` under
    ``trial_id`` and ``trial_id`` is asked again, so the strategy learns about the
    constraint and the params finally returned belong to ``trial_id``.

    Args:
        strategy: a set-up strategy.
        space: the space whose :meth:`~nascompress.spaces.SearchSpace.check` applies.
        trial_id: the id the returned params are asked under.
        max_attempts: proposals to try before giving up.

    Returns:
        Valid params, or ``None`` / :data:`FINISHED` passed through from the strategy.

    Raises:
        RuntimeError: ``max_attempts`` proposals in a row were all invalid.
    """
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, but got {max_attempts!r}")
    reason: str | None = None
    for _ in range(max_attempts):
        params = strategy.ask(trial_id)
        if params is None or params == FINISHED:
            return params
        if not isinstance(params, Mapping):
            raise TypeError(
                f"{type(strategy).__name__}.ask must return a dict, None or {FINISHED!r}, "
                f"but got {params!r}"
            )
        reason = space.check(params)
        if reason is None:
            return dict(params)
        strategy.tell(trial_id, Outcome(TrialState.INVALID, error=reason))
    raise RuntimeError(
        f"the constraints of space {space.name or type(space).__name__!r} rejected all "
        f"{max_attempts} proposals of strategy {strategy.name or type(strategy).__name__!r} "
        f"for trial {trial_id!r} (max_attempts={max_attempts}); the constraints reject "
        f"nearly everything the strategy proposes. Last reason: {reason}"
    )
