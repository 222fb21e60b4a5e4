"""The ``evolution`` strategy: regularized (aging) evolution for several objectives."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nascompress.objectives import Objective
from nascompress.pareto import Constraint, TrialState, rank_and_crowding
from nascompress.spaces import Dimension
from nascompress.strategies._base import (
    Outcome,
    ValidatingStrategy,
    check_int_option,
    check_state_header,
    constraint_violations,
    params_fingerprint,
    population_for,
    random_state_from_json,
    random_state_to_json,
)
from nascompress.strategies._neighbours import has_choice, nearby_value
from nascompress.strategies._registry import register_strategy
from nascompress.strategies._screening import (
    MODEL_RESULTS,
    distinct_unasked,
    most_promising,
)

if TYPE_CHECKING:
    from nascompress.spaces import SearchSpace

#: 2 added "asked"; 3 keeps every recent result ("results", for the screening model)
#: instead of only the population. Versions 1 and 2 still load.
_STATE_VERSION = 3

#: Proposals rejected INVALID in a row, for one trial id, before its retries are drawn at
#: random: mutations of a parent next to a constraint's edge can keep crossing it.
_RANDOM_AFTER_INVALID = 3

#: The default tournament's share of the population, and its floor. A fixed 4 selected
#: ever more weakly as budget-sized populations grew (4 of 20 at 100 trials, 4 of 50 at
#: 300): at 100, 0.4 of the population had a higher median hypervolume on all six
#: benchmarks on two seed sets, significantly on three of the 12 cells, and beat random
#: search on the modelled surrogate, where 4 did not; at 50 (4 of 8-10) nothing
#: changes; at 300 (20 of 50) it was neither better nor worse
#: (bench/strategies/evolution_tournament.md).
_TOURNAMENT_SHARE, _TOURNAMENT_FLOOR = 0.4, 4
#: What ``tournament_size=None`` meant for states saved before they recorded it.
_TOURNAMENT_BEFORE_RECORDED = 4

#: Children screened per ask by default (see EvolutionStrategy). On the strategy benchmark
#: (bench/strategies/evolution_screening.md), 4, 8 and 16 all beat unscreened children
#: on the measured tables; 8 and 16 were lower on the modelled surrogate at 100, 4 not.
SCREENED_CHILDREN = 4

#: Proposals drawn per ask before one that was never asked before is given up on. On the
#: strategy benchmark 6.7 of 100 children repeated an earlier trial without this check.
_DISTINCT_TRIES = 20


@register_strategy("evolution")
class EvolutionStrategy(ValidatingStrategy):
    """Regularized (aging) evolution, after Real et al. (2019), for several objectives.

    The population is the ``population_size`` most recent trials with a usable result
    (``COMPLETE`` with finite objectives), oldest first. While it has fewer members, asks
    are drawn at random. Afterwards each ask runs a tournament: ``tournament_size``
    distinct members are drawn at random and the best of them is the parent, ranked by

    1. feasibility: members that meet every constraint first; infeasible ones by their
       total relative violation (see
       :func:`~nascompress.strategies.constraint_violations`);
    2. Pareto non-domination rank among the feasible members of the population;
    3. crowding distance within that rank (larger first), to keep the front spread.

    The child is the parent with one or more dimensions mutated, each with probability
    ``mutation_prob`` (at least one always changes): a Categorical takes another choice;
    an Int steps by a few grid points (now and then it jumps to any other value); a Float
    moves by a Gaussian step of 0.15 of its range, clipped to the range and snapped to
    its step. Log dimensions move in log space. (This is
    :func:`~nascompress.strategies._neighbours.nearby_value`, which also finds the
    replacements of repeated proposals in ``bayesian``, ``nsga2`` and ``rl``.) A
    proposal that repeats an earlier ask (same parameters) is drawn again, with a fresh
    tournament, up to 20 times, so evaluations are not spent on points already tried;
    only when every redraw repeats one (a nearly exhausted neighbourhood) is the repeat
    proposed.

    **Screening** (``screened_children``, 4 by default): each ask draws that many
    distinct, never-asked children (each from its own tournament) and proposes the one
    that a model of the results seen so far (the last 500) predicts to lie furthest
    beyond the front found so far
    (:func:`~nascompress.strategies._screening.most_promising`: extremely randomized
    trees on the results' objective ranks; a child predicted to violate a constraint
    ranks behind every child predicted feasible). The model only chooses
    among the strategy's own children, so the search keeps the locality of mutation; it
    spends milliseconds per ask instead of trials on children the results already say
    are dominated. ``screened_children=1`` is plain regularized evolution.

    When a usable result joins a full population, the oldest member dies, however good:
    aging keeps the search moving and stops one lucky evaluation from ruling for ever.
    ``FAILED``, ``PRUNED`` and ``INVALID`` outcomes never join. Several asks may be in
    flight: each is a child of the population as it is when asked. A trial id rejected
    ``INVALID`` three times in a row gets its further proposals drawn at random.

    Args:
        population_size: members kept; also the number of random proposals that start
            the search. ``None`` (the default) sizes it to the budget: a fifth of it,
            between 8 and 50, so that the population turns over at least five times;
            16 when the budget is unknown. A state saved with a budget-sized population
            loads into a strategy whose budget differs (a resumed search with a larger
            budget) and keeps the saved size.
        tournament_size: members drawn per tournament; between 1 and
            ``population_size``. Larger means greedier. ``None`` (the default) draws 0.4
            of the population, at least 4: 4 up to a budget of 50, 8 of 20 at 100, 20 of
            50 from 250 on, 6 of 16 when the budget is unknown. A resumed search keeps
            the size its state was saved with (4 for states saved before it was
            recorded) unless one is set.
        mutation_prob: chance that each dimension mutates; ``None`` means 1 / (number
            of dimensions with more than one value).
        screened_children: children drawn per ask, of which the model's pick is
            proposed (see above); at least 1, which turns screening off. The random
            start is never screened.
    """

    name = "evolution"

    def __init__(
        self,
        *,
        population_size: int | None = None,
        tournament_size: int | None = None,
        mutation_prob: float | None = None,
        screened_children: int = SCREENED_CHILDREN,
    ) -> None:
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.mutation_prob = mutation_prob
        self.screened_children = screened_children
        self._ready = False
        self._size = 16  # replaced by setup
        self._tournament_size = _TOURNAMENT_FLOOR  # replaced by setup
        self._objectives: tuple[Objective, ...] = ()
        self._constraints: tuple[Constraint, ...] = ()
        self._dimensions: dict[str, Dimension] = {}
        self._rng = random.Random(0)  # replaced by setup's seed
        # The last MODEL_RESULTS usable results (or population_size, if larger), oldest
        # first; the population is their tail.
        self._results: list[dict[str, Any]] = []
        self._pending: dict[str, dict[str, Any]] = {}  # id -> params, ordered
        self._invalid_streaks: dict[str, int] = {}
        self._n_joined = 0
        self._asked: set[str] = set()  # fingerprints of every proposal so far

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        check_int_option("population_size", self.population_size, 2, or_none=True)
        check_int_option("screened_children", self.screened_children, 1)
        size = self._size = (self.population_size if self.population_size is not None
                             else population_for(self._budget, default=16))
        self._tournament_size = self._checked_tournament(
            _default_tournament(size) if self.tournament_size is None
            else self.tournament_size, size)
        prob = self.mutation_prob
        if prob is not None and (
            isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 < prob <= 1
        ):
            raise ValueError(
                f"strategy.mutation_prob must be a number in (0, 1] or None, but got {prob!r}"
            )
        self._dimensions = dict(space.dimensions())
        self._rng = random.Random(seed)
        self._results = []
        self._pending = {}
        self._invalid_streaks = {}
        self._n_joined = 0
        self._asked = set()
        self._ready = True

    @staticmethod
    def _checked_tournament(tournament: Any, size: int) -> int:
        if (not isinstance(tournament, int) or isinstance(tournament, bool)
                or not 1 <= tournament <= size):
            raise ValueError(
                f"strategy.tournament_size must be an integer between 1 and "
                f"population_size={size}, but got {tournament!r}"
            )
        return tournament

    @property
    def _population(self) -> list[dict[str, Any]]:
        return self._results[-self._size:]

    def _check_ready(self) -> None:
        if not self._ready:
            raise RuntimeError("EvolutionStrategy.setup(...) must be called before use")

    # ------------------------------------------------------------------ ask

    def ask(self, trial_id: str) -> dict[str, Any]:
        self._check_ready()
        if trial_id in self._pending:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")
        at_random = (len(self._results) < self._size
                     or self._invalid_streaks.get(trial_id, 0) >= _RANDOM_AFTER_INVALID)
        wanted = 1 if at_random else self.screened_children
        # The population does not change within an ask: rank it once for every draw.
        population = self._population
        keys = None if at_random else _ranking_keys(population, self._objectives)

        def draw() -> tuple[str, dict[str, Any]]:
            if at_random:
                params = {key: dim.sample(self._rng) for key, dim in self._dimensions.items()}
            else:
                params = self._mutate(self._tournament(population, keys)["params"])
            return params_fingerprint(params), params

        children, last = distinct_unasked(draw, self._asked, wanted, _DISTINCT_TRIES * wanted)
        # Every draw repeated an earlier ask: propose the last one.
        fingerprints, candidates = zip(*(children or [last]), strict=True)
        pick = 0 if len(candidates) == 1 else most_promising(
            list(candidates), self._results, self._dimensions, self._objectives,
            self._constraints, seed=self._rng.randrange(2**31))
        params = candidates[pick]
        self._asked.add(fingerprints[pick])
        self._pending[trial_id] = params
        return dict(params)

    def _tournament(self, population: Sequence[dict[str, Any]],
                    keys: Sequence[tuple[int, float, int, float]]) -> dict[str, Any]:
        """The best of ``tournament_size`` members drawn at random, by their ``keys``."""
        drawn = self._rng.sample(range(len(population)), self._tournament_size)
        # min() keeps the first of equal keys: ties go to the earlier draw.
        return population[min(drawn, key=lambda i: keys[i])]

    def _mutate(self, parent: Mapping[str, Any]) -> dict[str, Any]:
        child = dict(parent)
        mutable = [key for key, dim in self._dimensions.items() if has_choice(dim)]
        if not mutable:
            return child
        prob = self.mutation_prob if self.mutation_prob is not None else 1 / len(mutable)
        chosen = [key for key in mutable if self._rng.random() < prob]
        if not chosen:
            chosen = [self._rng.choice(mutable)]
        for key in chosen:
            child[key] = nearby_value(self._dimensions[key], child[key], self._rng)
        return child

    # ------------------------------------------------------------------ tell

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        self._check_ready()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be an Outcome, but got {outcome!r}")
        params = self._pending.pop(trial_id, None)
        if params is None:
            return
        if outcome.state == TrialState.INVALID:
            self._invalid_streaks[trial_id] = self._invalid_streaks.get(trial_id, 0) + 1
            return
        self._invalid_streaks.pop(trial_id, None)
        if not outcome.is_good(self._objectives):
            return
        values = {o.name: float(outcome.objectives[o.name]) for o in self._objectives}
        self._results.append(
            {
                "member": self._n_joined,
                "params": params,
                "objectives": values,
                "violation": sum(constraint_violations(values, self._constraints)),
            }
        )
        self._n_joined += 1
        # Aging: the population is the newest results, so the oldest member dies when
        # one joins, whatever its rank.
        del self._results[:-max(MODEL_RESULTS, self._size)]

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        self._check_ready()
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "population_size": self._size,
            "tournament_size": self._tournament_size,
            "constraints": [c.to_dict() for c in self._constraints],
            "rng": random_state_to_json(self._rng),
            "results": [dict(m) for m in self._results],
            "pending": {tid: dict(p) for tid, p in self._pending.items()},
            "invalid_streaks": dict(self._invalid_streaks),
            "n_joined": self._n_joined,
            "asked": sorted(self._asked),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._check_ready()
        check_state_header(
            state, owner="EvolutionStrategy", name=self.name, version=_STATE_VERSION,
            accepted=(1, 2, _STATE_VERSION),
        )
        size = state["population_size"]
        if size != self._size and (self.population_size is not None
                                   or isinstance(size, bool) or not isinstance(size, int)):
            # A size the user set is theirs: another saved one is refused. A budget-sized
            # one (the default) follows the saved state below.
            raise ValueError(
                f"state was saved with population_size={size!r}, but this "
                f"strategy has population_size={self._size!r}"
            )
        # A search resumed with another budget (`resume --trials`) keeps the population
        # its members were selected and aged in, and the tournament it selected them by
        # (the default's rule may have changed since); a size the user sets is theirs.
        tournament = self._checked_tournament(
            self.tournament_size if self.tournament_size is not None
            else state.get("tournament_size", _TOURNAMENT_BEFORE_RECORDED), size)
        constraints = [c.to_dict() for c in self._constraints]
        if state["constraints"] != constraints:
            raise ValueError(
                f"state was saved with constraints {state['constraints']}, but this strategy "
                f"has {constraints}"
            )
        keys = set(self._dimensions)
        names = {o.name for o in self._objectives}
        # Versions 1 and 2 kept the population only: the model starts from it.
        results = state["results"] if "results" in state else state["population"]
        for member in results:
            if set(member["params"]) != keys or set(member["objectives"]) != names:
                raise ValueError(
                    f"state was saved for a different search space or objectives: a member "
                    f"has params {sorted(member['params'])} and objectives "
                    f"{sorted(member['objectives'])}, this strategy has {sorted(keys)} and "
                    f"{sorted(names)}"
                )
        random_state_from_json(self._rng, state["rng"])
        self._tournament_size = tournament
        self._size = size
        self._results = [dict(m) for m in results]
        self._pending = {tid: dict(p) for tid, p in state["pending"].items()}
        self._invalid_streaks = {tid: int(n) for tid, n in state["invalid_streaks"].items()}
        self._n_joined = int(state["n_joined"])
        if "asked" in state:
            self._asked = set(state["asked"])
        else:  # version 1 kept no record of its asks: what it still holds is known
            held = [m["params"] for m in self._population] + list(self._pending.values())
            self._asked = {params_fingerprint(params) for params in held}


# ---------------------------------------------------------------------- ranking


def _ranking_keys(
    members: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[tuple[int, float, int, float]]:
    """A sort key per member: smaller is better (see :class:`EvolutionStrategy`)."""
    keys: list[tuple[int, float, int, float]] = [(1, m["violation"], 0, 0.0) for m in members]
    feasible = [i for i, m in enumerate(members) if m["violation"] == 0.0]
    vectors = [
        [o.as_minimised(members[i]["objectives"][o.name]) for o in objectives]
        for i in feasible
    ]
    for i, (rank, crowding) in zip(feasible, rank_and_crowding(vectors), strict=True):
        keys[i] = (0, 0.0, rank, -crowding)
    return keys


def _default_tournament(population: int) -> int:
    """The tournament size for ``tournament_size=None`` (see the constants above)."""
    return min(population, max(_TOURNAMENT_FLOOR, round(_TOURNAMENT_SHARE * population)))
