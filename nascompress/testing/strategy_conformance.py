"""Conformance checks for :class:`~nascompress.strategies.Strategy` implementations.

A plug-in strategy that passes these honours the contract written on
:class:`~nascompress.strategies.Strategy`, so the Ray adapter, the local runner and resume
work with it. Two ways to run them:

* in one call, from any test::

      from nascompress.testing.strategy_conformance import check_strategy

      def test_my_strategy_conforms():
          check_strategy(lambda: MyStrategy(population=8), budget=60)

* as a pytest class, one test per check, by subclassing :class:`StrategyConformance`::

      class TestMyStrategy(StrategyConformance):
          def make_strategy(self):
              return MyStrategy(population=8)

Every check sets up fresh strategies from the factory on the toy problem of
:mod:`nascompress.testing.toy` (two objectives, a known optimum, one joint constraint)
and raises ``AssertionError`` with the reason when the strategy misbehaves. The checks
test correctness, not speed: the thresholds are loose enough that random search meets
them (calibrated over 3000 seeds), so failing one points at a bug, such as a wrong
direction, a NaN taken for a good result, or state that does not round-trip.
Strategies that learn from results (``adaptive=True``, the default) must also show it:
avoid a region whose trials all fail, approach the Pareto front, and favour feasible
points. These checks are statistical: give the strategy options that let it learn within
the budget (with the options used in ``tests/strategies/test_conformance.py`` the
built-ins passed at each of 20 seeds, 5 for the GP; NSGA-II with its default
population of 16 failed 2 of 20 at a budget of 60, having completed three generations).
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from nascompress.pareto import Constraint
from nascompress.strategies import FINISHED, Outcome, Strategy, ask_valid
from nascompress.testing.toy import TOY_OBJECTIVES, ToySpace, toy_objectives

__all__ = [
    "GOOD_ERROR",
    "StrategyConformance",
    "check_bad_outcomes",
    "check_constraint_handling",
    "check_finds_good_region",
    "check_parallel_asks",
    "check_pickles",
    "check_same_seed_same_asks",
    "check_state_round_trip",
    "check_strategy",
    "toy_front_gap",
]

StrategyFactory = Callable[[], Strategy]

#: The toy ``error`` a search must reach. Random search gets below it within 30 trials
#: in every one of 3000 seeds (worst: 0.27 on the gridded space); it needs the right
#: ``arch/kind`` and a depth and ratio near the optimum.
GOOD_ERROR = 0.3

#: The constraint of :func:`check_constraint_handling`: it rules out the region where
#: ``error`` is smallest (``size`` there is about 5.5), so minimising ``error`` alone
#: drifts away from feasibility.
TOY_CONSTRAINT = Constraint("size", "<=", 3.0)


def check_strategy(
    factory: StrategyFactory,
    *,
    budget: int = 60,
    adaptive: bool = True,
    gridded: bool = False,
    parallel: int = 8,
    resume_asks: int = 20,
    seed: int = 0,
) -> None:
    """Run every conformance check on strategies made by ``factory``.

    Args:
        factory: makes a fresh, not yet set-up strategy on each call.
        budget: trials per search-quality check; at least 30 for random-like
            strategies (model-based ones may pass with fewer).
        adaptive: whether the strategy learns from results; when true, also check that
            it avoids failing regions and improves on its early proposals.
        gridded: use the toy space with every dimension finite (for grid-like
            strategies that reject continuous dimensions).
        parallel: asks outstanding at once in :func:`check_parallel_asks`.
        resume_asks: asks compared after a restore in :func:`check_state_round_trip`.
        seed: the seed given to every strategy.

    Raises:
        AssertionError: naming the check and what went wrong.
    """
    space = ToySpace(gridded=gridded)
    check_parallel_asks(factory, space=space, k=parallel, warmup=budget // 3, seed=seed)
    check_same_seed_same_asks(factory, space=space, n=min(budget, 20), seed=seed)
    check_state_round_trip(
        factory, space=space, n_before=budget // 2, n_after=resume_asks, seed=seed
    )
    check_pickles(factory, space=space, n_before=budget // 3, n_after=5, seed=seed)
    check_bad_outcomes(factory, space=space, budget=budget, adaptive=adaptive, seed=seed)
    check_finds_good_region(factory, space=space, budget=budget, adaptive=adaptive, seed=seed)
    check_constraint_handling(
        factory, space=space, budget=budget, adaptive=adaptive, seed=seed
    )


# ---------------------------------------------------------------------- helpers


def _make(
    factory: StrategyFactory,
    space: ToySpace,
    seed: int,
    constraints: Sequence[Constraint] = (),
) -> Strategy:
    strategy = factory()
    if not isinstance(strategy, Strategy):
        raise AssertionError(f"the factory must return a Strategy, but returned {strategy!r}")
    if constraints:
        strategy.setup(space, TOY_OBJECTIVES, seed=seed, constraints=constraints)
    else:
        # Without constraints the keyword stays out, as the Ray adapter does.
        strategy.setup(space, TOY_OBJECTIVES, seed=seed)
    return strategy


def _ask(strategy: Strategy, space: ToySpace, trial_id: str) -> dict[str, Any]:
    params = ask_valid(strategy, space, trial_id)
    if params is None or params == FINISHED:
        raise AssertionError(
            f"{_name(strategy)}.ask({trial_id!r}) returned {params!r}, but the check needs "
            "a proposal (the toy space has more points than the check asks for)"
        )
    if set(params) != set(space.dimensions()):
        raise AssertionError(
            f"{_name(strategy)} proposed keys {sorted(params)}, but the space has "
            f"{sorted(space.dimensions())}"
        )
    return params


def _name(strategy: Strategy) -> str:
    return type(strategy).__name__


def _canonical(params: dict[str, Any]) -> str:
    # JSON text tells 1, 1.0 and true apart, which == does not.
    return json.dumps(params, sort_keys=True)


def _good(params: dict[str, Any]) -> Outcome:
    return Outcome("COMPLETE", toy_objectives(params))


def _scripted_outcome(i: int, params: dict[str, Any]) -> Outcome:
    """Mostly COMPLETE, with a FAILED and a PRUNED trial every 7, as real searches have."""
    if i % 7 == 3:
        return Outcome("FAILED", error="scripted failure")
    if i % 7 == 5:
        return Outcome("PRUNED", {"error": toy_objectives(params)["error"]})
    return _good(params)


def _search(strategy: Strategy, space: ToySpace, budget: int) -> list[dict[str, float]]:
    """Ask and tell ``budget`` trials their real results; the objectives, in order."""
    results = []
    for i in range(budget):
        outcome = _good(_ask(strategy, space, f"t{i}"))
        results.append(dict(outcome.objectives))
        strategy.tell(f"t{i}", outcome)
    return results


def _first_and_last_third(values: Sequence[float]) -> tuple[int, float, float]:
    """A third of the run (at least one trial) and the means of its first and last third."""
    third = max(1, len(values) // 3)
    return third, statistics.fmean(values[:third]), statistics.fmean(values[-third:])


def _json_state(strategy: Strategy) -> dict[str, Any]:
    state = strategy.state_dict()
    try:
        text = json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(
            f"{_name(strategy)}.state_dict() must be JSON-serialisable without NaN or "
            f"infinity: {exc}"
        ) from None
    return json.loads(text)


# ---------------------------------------------------------------------- checks


def check_parallel_asks(
    factory: StrategyFactory,
    *,
    space: ToySpace | None = None,
    k: int = 8,
    warmup: int = 20,
    seed: int = 0,
) -> None:
    """``k`` asks before any tell all return valid, not all equal, proposals.

    Checked at the start of a search and again after ``warmup`` told trials, when a
    model-based strategy proposes from its model.
    """
    space = space or ToySpace()
    strategy = _make(factory, space, seed)
    number = 0
    for phase in ("at the start", f"after {warmup} trials"):
        ids = [f"p{number + j}" for j in range(k)]
        proposals = [_ask(strategy, space, trial_id) for trial_id in ids]
        if k >= 4 and len({_canonical(p) for p in proposals}) == 1:
            raise AssertionError(
                f"{_name(strategy)} proposed the same point {proposals[0]} for all {k} "
                f"trials asked {phase} before any result came back"
            )
        for trial_id, params in zip(ids, proposals, strict=True):
            strategy.tell(trial_id, _good(params))
        number += k
        if phase == "at the start":
            for _ in range(warmup):
                trial_id = f"w{number}"
                strategy.tell(trial_id, _good(_ask(strategy, space, trial_id)))
                number += 1


def check_same_seed_same_asks(
    factory: StrategyFactory, *, space: ToySpace | None = None, n: int = 20, seed: int = 0
) -> None:
    """Two strategies with the same seed, told the same results, propose the same points."""
    space = space or ToySpace()
    runs = []
    for _ in range(2):
        strategy = _make(factory, space, seed)
        proposals = []
        for i in range(n):
            params = _ask(strategy, space, f"t{i}")
            proposals.append(_canonical(params))
            strategy.tell(f"t{i}", _scripted_outcome(i, params))
        runs.append(proposals)
    for i, (a, b) in enumerate(zip(*runs, strict=True)):
        if a != b:
            raise AssertionError(
                f"{_name(strategy)} with seed={seed} proposed {a} and then {b} as trial {i} "
                "of two identical runs; every random choice must come from the seed"
            )


def check_state_round_trip(
    factory: StrategyFactory,
    *,
    space: ToySpace | None = None,
    n_before: int = 30,
    n_after: int = 20,
    seed: int = 0,
) -> None:
    """state_dict -> JSON -> load_state_dict continues exactly like the original.

    The original runs ``n_before`` trials (some failed or pruned) under a constraint and
    leaves two asks outstanding; its state goes through ``json.dumps`` / ``json.loads``
    into a freshly set-up strategy. Both are told the same results for the outstanding
    asks and must then propose the same ``n_after`` points.
    """
    space = space or ToySpace()
    original = _searched(factory, space, seed, n_before)
    live = [_ask(original, space, trial_id) for trial_id in ("live0", "live1")]
    state = _json_state(original)
    restored = _make(factory, space, seed, (TOY_CONSTRAINT,))
    restored.load_state_dict(state)
    for strategy in (original, restored):
        strategy.tell("live0", _good(live[0]))
        strategy.tell("live1", Outcome("FAILED", error="scripted failure"))
    _check_same_continuation(
        original, restored, space, n_after,
        lambda i, a, b: (
            f"after load_state_dict, {_name(restored)} proposed {b} as its ask number "
            f"{i + 1}, but the original proposed {a}; the state must hold everything "
            "that decides the next proposals (random generators included)"
        ),
    )


def _searched(factory: StrategyFactory, space: ToySpace, seed: int, n: int) -> Strategy:
    """A strategy under :data:`TOY_CONSTRAINT` after ``n`` scripted trials."""
    strategy = _make(factory, space, seed, (TOY_CONSTRAINT,))
    for i in range(n):
        params = _ask(strategy, space, f"t{i}")
        strategy.tell(f"t{i}", _scripted_outcome(i, params))
    return strategy


def _check_same_continuation(
    original: Strategy, other: Strategy, space: ToySpace, n: int,
    mismatch: Callable[[int, dict[str, Any], dict[str, Any]], str],
) -> None:
    """Ask both ``n`` times, telling both the same scripted results; raise
    ``AssertionError(mismatch(i, original's, other's))`` at the first differing ask."""
    for i in range(n):
        a = _ask(original, space, f"n{i}")
        b = _ask(other, space, f"n{i}")
        if _canonical(a) != _canonical(b):
            raise AssertionError(mismatch(i, a, b))
        outcome = _scripted_outcome(i, a)
        original.tell(f"n{i}", outcome)
        other.tell(f"n{i}", outcome)


def check_pickles(
    factory: StrategyFactory,
    *,
    space: ToySpace | None = None,
    n_before: int = 20,
    n_after: int = 5,
    seed: int = 0,
) -> None:
    """A strategy in mid-search pickles, and the copy proposes what the original does.

    Ray Tune pickles the searcher, with the strategy in it, when a search starts (with
    Ray's cloudpickle, used here when Ray is installed, else the standard pickle): a
    strategy that holds a lock, an open file or a generator fails there before any trial
    runs. Checked after ``n_before`` told trials with one ask outstanding.
    """
    try:
        from ray import cloudpickle as pickler
    except ImportError:  # Ray is not installed: the standard pickle is stricter still
        import pickle as pickler

    space = space or ToySpace()
    original = _searched(factory, space, seed, n_before)
    live = _ask(original, space, "live")
    try:
        copy = pickler.loads(pickler.dumps(original))
    except Exception as exc:
        raise AssertionError(
            f"{_name(original)} could not be pickled in mid-search ({type(exc).__name__}: "
            f"{exc}); Ray Tune pickles the searcher and the strategy with it"
        ) from None
    for strategy in (original, copy):
        strategy.tell("live", _good(live))
    _check_same_continuation(
        original, copy, space, n_after,
        lambda i, a, b: (
            f"a pickled copy of {_name(original)} proposed {b} as its ask number {i + 1}, "
            f"but the original proposed {a}"
        ),
    )


#: Told for every proposal in the trap region of :func:`check_bad_outcomes`: each looks
#: better than anything real, and none may count as a result.
_BAD_OUTCOMES = (
    Outcome("FAILED", {"error": -1e9, "size": -1e9}, error="scripted failure"),
    Outcome("PRUNED", {"error": -1e9, "size": -1e9}),
    Outcome("COMPLETE", {"error": -1e9, "size": math.nan}),
    Outcome("COMPLETE", {"error": -math.inf, "size": 1.0}),
    Outcome("COMPLETE", {"error": -1e9}),
    Outcome("INVALID", error="scripted rejection"),
)


def check_bad_outcomes(
    factory: StrategyFactory,
    *,
    space: ToySpace | None = None,
    budget: int = 60,
    adaptive: bool = True,
    seed: int = 0,
) -> None:
    """FAILED, PRUNED, INVALID and non-finite outcomes are tolerated and never good.

    Every proposal with ``arch/kind="a"`` (a third of the space) is told one of
    :data:`_BAD_OUTCOMES` in turn, all with fantastic-looking objective values; the
    others are told their real results. Repeated tells and tells of unknown ids are
    mixed in and must be ignored. The state must stay JSON-serialisable without NaN. An
    adaptive strategy must then propose ``kind="a"`` in at most 70% of the second half of
    the run (random search: a third), since none of its results counted.
    """
    space = space or ToySpace()
    strategy = _make(factory, space, seed)
    kinds = []
    n_bad = 0
    for i in range(budget):
        params = _ask(strategy, space, f"t{i}")
        kinds.append(params["arch/kind"])
        if params["arch/kind"] == "a":
            outcome = _BAD_OUTCOMES[n_bad % len(_BAD_OUTCOMES)]
            n_bad += 1
        else:
            outcome = _good(params)
        strategy.tell(f"t{i}", outcome)
        strategy.tell(f"t{i}", Outcome("COMPLETE", {"error": -1e9, "size": -1e9}))
        strategy.tell(f"never-asked-{i}", Outcome("COMPLETE", {"error": -1e9, "size": -1e9}))
    _json_state(strategy)
    if adaptive:
        late = kinds[budget // 2 :]
        share = late.count("a") / len(late)
        if share > 0.7:
            raise AssertionError(
                f"{_name(strategy)} proposed arch/kind='a' in {share:.0%} of the second "
                f"half of the run, although every such trial failed, was pruned, invalid or "
                "non-finite; such outcomes must never count as good results"
            )


def check_finds_good_region(
    factory: StrategyFactory,
    *,
    space: ToySpace | None = None,
    budget: int = 60,
    adaptive: bool = True,
    seed: int = 0,
) -> None:
    """Within ``budget`` trials the best ``error`` found is at most :data:`GOOD_ERROR`.

    An adaptive strategy must also move towards the Pareto front: the mean
    :func:`toy_front_gap` of its last third of proposals must be below that of its first
    third (for random search they are equal on average).
    """
    space = space or ToySpace()
    strategy = _make(factory, space, seed)
    results = _search(strategy, space, budget)
    errors = [values["error"] for values in results]
    gaps = [toy_front_gap(values) for values in results]
    if min(errors) > GOOD_ERROR:
        raise AssertionError(
            f"{_name(strategy)} found a best error of {min(errors):.3f} in {budget} trials; "
            f"random search finds <= {GOOD_ERROR} (is a direction inverted?)"
        )
    if adaptive:
        third, early, late = _first_and_last_third(gaps)
        if not late < early:
            raise AssertionError(
                f"{_name(strategy)} did not approach the Pareto front: the mean distance "
                f"to it of its last {third} proposals is {late:.3f}, of its first {third} "
                f"{early:.3f}"
            )


@functools.lru_cache(maxsize=1)
def _toy_front() -> tuple[tuple[float, float], ...]:
    """The toy problem's Pareto front, (error, size) pairs, from a fine sweep of ratios."""
    points = []
    for kind in ("a", "b", "c"):
        for depth in range(1, 9):
            for i in range(401):
                params = {"arch/kind": kind, "arch/depth": depth,
                          "prune/ratio": 10 ** (-2 + 2 * i / 400)}
                values = toy_objectives(params)
                points.append((values["error"], values["size"]))
    front, smallest_size = [], math.inf
    for error, size in sorted(points):  # both minimised: a sweep by error finds the front
        if size < smallest_size:
            front.append((error, size))
            smallest_size = size
    return tuple(front)


def toy_front_gap(values: Mapping[str, float]) -> float:
    """How far toy objective values lie behind the Pareto front (0 on it).

    The smallest amount by which the point must improve in both objectives at once
    (``error`` in its own units, ``size`` divided by 10, about their ranges) to reach a
    front point: the additive epsilon indicator.
    """
    error, size = values["error"], values["size"]
    return max(0.0, min(max(error - e, (size - s) / 10) for e, s in _toy_front()))


def check_constraint_handling(
    factory: StrategyFactory,
    *,
    space: ToySpace | None = None,
    budget: int = 60,
    adaptive: bool = True,
    seed: int = 0,
) -> None:
    """Under :data:`TOY_CONSTRAINT` the search finds feasible results and favours them.

    Every strategy must propose at least one feasible point. An adaptive strategy must
    propose feasible points in its last third at least as often as in its first third,
    although the smallest errors lie outside the constraint.
    """
    space = space or ToySpace()
    strategy = _make(factory, space, seed, (TOY_CONSTRAINT,))
    feasible = [TOY_CONSTRAINT.satisfied(values["size"])
                for values in _search(strategy, space, budget)]
    if not any(feasible):
        raise AssertionError(
            f"{_name(strategy)} proposed no point meeting {TOY_CONSTRAINT} in {budget} trials"
        )
    if adaptive:
        third, early, late = _first_and_last_third(feasible)
        if late < early:
            raise AssertionError(
                f"{_name(strategy)} proposed fewer feasible points late than early under "
                f"{TOY_CONSTRAINT}: {late:.0%} of its last {third} against {early:.0%} of its "
                "first; results that violate a constraint must count as worse than feasible "
                "ones"
            )


# ---------------------------------------------------------------------- pytest class


class StrategyConformance:
    """Base class for a pytest class running each conformance check as its own test.

    Subclass it in a module pytest collects, with a name starting with ``Test``, and
    implement :meth:`make_strategy`. Class attributes tune the checks as the arguments of
    :func:`check_strategy` do.
    """

    budget: ClassVar[int] = 60
    adaptive: ClassVar[bool] = True
    gridded: ClassVar[bool] = False
    parallel: ClassVar[int] = 8
    resume_asks: ClassVar[int] = 20
    seed: ClassVar[int] = 0

    def make_strategy(self) -> Strategy:
        """A fresh, not yet set-up strategy."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_strategy()")

    def _space(self) -> ToySpace:
        return ToySpace(gridded=self.gridded)

    def test_parallel_asks(self) -> None:
        check_parallel_asks(
            self.make_strategy, space=self._space(), k=self.parallel,
            warmup=self.budget // 3, seed=self.seed,
        )

    def test_same_seed_same_asks(self) -> None:
        check_same_seed_same_asks(
            self.make_strategy, space=self._space(), n=min(self.budget, 20), seed=self.seed
        )

    def test_state_round_trip(self) -> None:
        check_state_round_trip(
            self.make_strategy, space=self._space(), n_before=self.budget // 2,
            n_after=self.resume_asks, seed=self.seed,
        )

    def test_pickles(self) -> None:
        check_pickles(
            self.make_strategy, space=self._space(), n_before=self.budget // 3,
            seed=self.seed,
        )

    def test_bad_outcomes(self) -> None:
        check_bad_outcomes(
            self.make_strategy, space=self._space(), budget=self.budget,
            adaptive=self.adaptive, seed=self.seed,
        )

    def test_finds_good_region(self) -> None:
        check_finds_good_region(
            self.make_strategy, space=self._space(), budget=self.budget,
            adaptive=self.adaptive, seed=self.seed,
        )

    def test_constraint_handling(self) -> None:
        check_constraint_handling(
            self.make_strategy, space=self._space(), budget=self.budget,
            adaptive=self.adaptive, seed=self.seed,
        )
