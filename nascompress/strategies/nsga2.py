"""The ``nsga2`` strategy: optuna's NSGA-II (with NSGA-III survivors from three objectives)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from nascompress.strategies._base import check_int_option, params_fingerprint, population_for
from nascompress.strategies._optuna import OptunaStrategy
from nascompress.strategies._registry import register_strategy
from nascompress.strategies._screening import (
    MODEL_RESULTS,
    distinct_unasked,
    most_promising,
)

#: Generations a search of a known budget runs at least (the default population is the
#: budget divided by this, between 8 and 50). NSGA-II is generational: the parents of a
#: generation are fixed when it starts, so a result steers the search only from the next
#: generation on, and the whole first generation is random. With a fifth of the budget
#: per generation (five generations) it did not beat random search at 100 evaluations on
#: the measured table ``digits-cnn-3x`` (bench/strategies, 20 seeds: p = 0.054) nor on
#: the surrogate (p = 0.197); every smaller population tried (8 to 14 at a budget of 100)
#: did better on all four benchmarks.
GENERATIONS = 10

#: How survivors are chosen among parents and children of equal non-domination rank.
#: ``crowding``: NSGA-II's crowding distance. ``reference-points``: NSGA-III's niching
#: around reference directions (Deb & Jain, 2014; optuna's ``NSGAIIISampler``, the same
#: crossover and mutation). Crowding distance spreads a population poorly with three or
#: more objectives, and our searches have three by default (accuracy, size, latency): on
#: the measured table ``mnist5k-cnn-6d`` a population of ten kept losing the
#: low-latency end of the front, and NSGA-II did not beat random search at 100
#: evaluations (p = 0.063, 20 seeds). With reference points it beats random at 100 on
#: every measured table, on seeds 0-19 and on fresh seeds 20-39
#: (bench/strategies/nsga2_selection.md).
SELECTIONS = ("crowding", "reference-points")

#: Objectives from which the default selection is ``reference-points``.
REFERENCE_POINTS_FROM = 3

#: Children bred per ask by default, of which the model's pick is proposed (see
#: ``screened_children``).
SCREENED_CHILDREN = 4

#: Breeding attempts per wanted child before screening settles for fewer distinct ones.
_DISTINCT_TRIES = 4


@register_strategy("nsga2")
class NSGA2Strategy(OptunaStrategy):
    """NSGA-II (optuna's ``NSGAIISampler``): a multi-objective genetic algorithm.

    The first generation is ``population_size`` random proposals; each later one is
    bred (uniform crossover, then mutation) from parents chosen by non-dominated sorting
    among the previous generation and its parents; among equally ranked ones, by
    crowding distance (NSGA-II) or, by default from three objectives on, by NSGA-III's
    reference points (optuna's ``NSGAIIISampler``; see ``selection``). With
    constraints, selection uses constrained domination: feasible results beat infeasible
    ones, and among infeasible ones the smaller total violation wins. A generation is
    complete when ``population_size`` of its trials are ``COMPLETE`` (failed, pruned and
    invalid ones do not count); trials asked before then belong to it, so with parallel
    trials a generation can end up larger than ``population_size``.

    **Screening** (``screened_children``, 4 by default): after the first generation each
    ask breeds that many distinct never-asked children (optuna's crossover and mutation,
    from the same parents) and proposes the one that a model of every result so far
    predicts to lie furthest beyond the feasible front found so far, as ``evolution``
    does (:func:`~nascompress.strategies._screening.most_promising`). The model sees
    the results of the generation being bred too, which NSGA-II itself only uses from
    the next generation on. ``screened_children=1`` is optuna's NSGA-II unchanged.

    Outcomes map to optuna trials as for ``bayesian`` (see
    :class:`~nascompress.strategies.BayesianStrategy`), including the random fallback for
    trial ids rejected ``INVALID`` three times in a row (such draws join no generation),
    and repeats are replaced as there: re-asked twice, then a never-asked neighbour.

    Args:
        population_size: trials per generation; at least 2. ``None`` (the default)
            sizes it to the budget: a tenth of it, between 8 and 50 (optuna's default),
            so that the search runs at least ten generations; 16 when the budget is
            unknown.
        selection: ``"crowding"`` (classic NSGA-II) or ``"reference-points"`` (NSGA-III
            survivor selection, for three or more objectives). ``None`` (the default)
            picks ``"reference-points"`` with three or more objectives and
            ``"crowding"`` with fewer.
        screened_children: children bred per ask, of which the model's pick is
            proposed; at least 1 (1: no screening). The first generation is random and
            never screened.

    A state saved with default options loads into a strategy whose own defaults differ
    (a resumed search with a larger budget, or a state saved before ``selection``
    existed, which selected by crowding) and keeps the saved population size and
    selection, so that the resumed search is the one that was saved.
    """

    name = "nsga2"

    def __init__(self, *, population_size: int | None = None,
                 selection: str | None = None,
                 screened_children: int = SCREENED_CHILDREN) -> None:
        self.population_size = population_size
        self.selection = selection
        self.screened_children = screened_children
        self._adopted: dict[str, Any] = {}  # default options taken from a saved state
        super().__init__()

    def _validate_options(self) -> None:
        check_int_option("population_size", self.population_size, 2, or_none=True)
        check_int_option("screened_children", self.screened_children, 1)
        if self.selection is not None and self.selection not in SELECTIONS:
            raise ValueError(
                f"strategy.selection must be one of {', '.join(map(repr, SELECTIONS))} or "
                f"None (chosen by the number of objectives), but got {self.selection!r}"
            )

    def _setup(self, space: Any, *, seed: int) -> None:
        self._adopted = {}
        self._seed = seed
        super()._setup(space, seed=seed)

    def _chosen(self, option: str, default: Callable[[], Any]) -> Any:
        """An option's value: the user's, else one adopted from a saved state, else the
        default for this search."""
        value = getattr(self, option)
        if value is not None:
            return value
        return self._adopted[option] if option in self._adopted else default()

    @property
    def _population(self) -> int:
        return self._chosen("population_size", lambda: population_for(
            self._budget, default=16, turnovers=GENERATIONS))

    @property
    def _selection(self) -> str:
        return self._chosen("selection", lambda: (
            "reference-points" if len(self._objectives) >= REFERENCE_POINTS_FROM
            else "crowding"))

    def _create_sampler(self, seed: int) -> Any:
        import optuna

        sampler = (optuna.samplers.NSGAIIISampler if self._selection == "reference-points"
                   else optuna.samplers.NSGAIISampler)
        sampler = sampler(population_size=self._population, seed=seed)
        if self.screened_children > 1:
            self._screen_children_of(sampler)
        return sampler

    def _screen_children_of(self, sampler: Any) -> None:
        """Make ``sampler`` breed :attr:`screened_children` children per ask and propose
        the one :func:`most_promising` picks.

        optuna's NSGA-II breeds through a pluggable child-generation strategy; it is
        wrapped here rather than replaced, so crossover and mutation stay optuna's. The
        breeding strategy, the random sampler that fills mutated parameters and the
        sampler's random state are private attributes: where an optuna release moves
        them, the search runs unscreened and says so.
        """
        breed = getattr(sampler, "_child_generation_strategy", None)
        fill = getattr(sampler, "_random_sampler", None)
        rng = getattr(getattr(sampler, "_rng", None), "rng", None)
        if not callable(breed) or fill is None or not hasattr(rng, "randint"):
            warnings.warn(
                "this optuna's NSGA-II sampler does not expose its breeding; nsga2 "
                "proposes its children unscreened", RuntimeWarning, stacklevel=4)
            return
        sampler._child_generation_strategy = _ScreenedBreeding(self, breed, fill, rng)

    def _screened_child(self, study: Any, search_space: dict[str, Any], parents: list[Any],
                        breed: Any, fill: Any, rng: Any) -> dict[str, Any]:
        """Breed up to :attr:`screened_children` distinct never-asked children and return
        the one the model of the results so far predicts to be best."""
        if any(key not in search_space and not distribution.single()
               for key, distribution in self._distributions.items()):
            return breed(study, search_space, parents)  # not all bred: not screened

        def draw() -> tuple[str, tuple[dict[str, Any], dict[str, Any]]]:
            child = dict(breed(study, search_space, parents))
            # Parameters that mutation dropped are drawn uniformly, as the sampler would
            # draw them after this returns; drawn here so that the model sees them.
            for name, distribution in search_space.items():
                if name not in child:
                    child[name] = fill.sample_independent(study, None, name, distribution)
            params = self._full_params(child)
            return params_fingerprint(params), (child, params)

        found, last = distinct_unasked(draw, self._asked_keys, self.screened_children,
                                       _DISTINCT_TRIES * self.screened_children)
        bred = [pair for _, pair in found]
        if len(bred) < 2:  # none or one never asked: the repeat check handles a repeat
            return (bred[0] if bred else last[1])[0]
        pick = most_promising(
            [params for _, params in bred], self._model_results(study),
            self._dimensions, self._objectives, self._constraints,
            seed=int(rng.randint(2**31)))
        return bred[pick][0]

    def _full_params(self, child: Mapping[str, Any]) -> dict[str, Any]:
        """A bred child as the space's values, with the single-valued dimensions (which
        optuna leaves out of breeding) at their value."""
        values = {}
        for key, distribution in self._distributions.items():
            if key in child:
                values[key] = child[key]
            else:  # single-valued (checked by the caller)
                values[key] = (distribution.choices[0] if hasattr(distribution, "choices")
                               else distribution.low)
        return {key: self._to_value(key, value) for key, value in values.items()}

    def _model_results(self, study: Any) -> list[dict[str, Any]]:
        """The last :data:`MODEL_RESULTS` real results, as :func:`most_promising` takes them."""
        from optuna.trial import TrialState as OptunaTrialState

        finished = study.get_trials(deepcopy=False, states=(OptunaTrialState.COMPLETE,))
        names = [o.name for o in self._objectives]
        return [
            {"params": self._params_of(t), "objectives": dict(zip(names, t.values, strict=True))}
            for t in finished[-MODEL_RESULTS:]
            if set(t.params) == set(self._distributions)
        ]

    def _options_state(self) -> dict[str, Any]:
        # Generations are counted in population_size trials, and the parents cached by
        # one selection are not the other's: another value would misread the state.
        return {"population_size": self._population, "selection": self._selection}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = dict(state.get("options") or {})
        if saved:
            # States saved before the option existed selected by crowding distance.
            saved.setdefault("selection", "crowding")
            state = {**state, "options": saved}
        study = self._require_study()
        adopt = {}
        if not study.trials:
            size = saved.get("population_size")
            if (self.population_size is None and isinstance(size, int)
                    and not isinstance(size, bool) and size >= 2 and size != self._population):
                adopt["population_size"] = size
            selection = saved.get("selection")
            if (self.selection is None and selection in SELECTIONS
                    and selection != self._selection):
                adopt["selection"] = selection
        if not adopt:
            super().load_state_dict(state)
            return
        previous_adopted, previous_sampler = self._adopted, study.sampler
        self._adopted = {**self._adopted, **adopt}
        # The population and the selection are fixed in the sampler at construction; the
        # random states are restored from the state below.
        study.sampler = self._new_sampler(self._seed)
        try:
            super().load_state_dict(state)
        except BaseException:
            self._adopted, study.sampler = previous_adopted, previous_sampler
            raise


class _ScreenedBreeding:
    """optuna's child-generation strategy, screened by an :class:`NSGA2Strategy`.

    A class rather than a closure, so that the sampler (and the strategy with it) pickles:
    Ray Tune pickles the searcher.
    """

    def __init__(self, strategy: NSGA2Strategy, breed: Any, fill: Any, rng: Any) -> None:
        self.strategy, self.breed, self.fill, self.rng = strategy, breed, fill, rng

    def __call__(self, study: Any, search_space: dict[str, Any],
                 parents: list[Any]) -> dict[str, Any]:
        return self.strategy._screened_child(study, search_space, parents, self.breed,
                                             self.fill, self.rng)
