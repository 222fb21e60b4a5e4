"""The ``nsga2`` strategy: optuna's NSGA-II (with NSGA-III survivors from three objectives)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nascompress.strategies._base import check_int_option, population_for
from nascompress.strategies._optuna import OptunaStrategy
from nascompress.strategies._registry import register_strategy

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

    A state saved with default options loads into a strategy whose own defaults differ
    (a resumed search with a larger budget, or a state saved before ``selection``
    existed, which selected by crowding) and keeps the saved population size and
    selection, so that the resumed search is the one that was saved.
    """

    name = "nsga2"

    def __init__(self, *, population_size: int | None = None,
                 selection: str | None = None) -> None:
        self.population_size = population_size
        self.selection = selection
        self._adopted: dict[str, Any] = {}  # default options taken from a saved state
        super().__init__()

    def _validate_options(self) -> None:
        check_int_option("population_size", self.population_size, 2, or_none=True)
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
        return sampler(population_size=self._population, seed=seed)

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
        study.sampler = self._create_sampler(self._seed)
        try:
            super().load_state_dict(state)
        except BaseException:
            self._adopted, study.sampler = previous_adopted, previous_sampler
            raise
