"""The ``nsga2`` strategy: optuna's NSGA-II genetic algorithm."""

from __future__ import annotations

from collections.abc import Mapping
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


@register_strategy("nsga2")
class NSGA2Strategy(OptunaStrategy):
    """NSGA-II (optuna's ``NSGAIISampler``): a multi-objective genetic algorithm.

    The first generation is ``population_size`` random proposals; each later one is
    bred (uniform crossover, then mutation) from parents chosen by non-dominated sorting
    and crowding distance among the previous generation and its parents. With
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
            unknown. A state saved with a budget-sized population loads into a strategy
            whose own budget-sized population differs (a resumed search with a larger
            budget) and keeps the saved size.
    """

    name = "nsga2"

    def __init__(self, *, population_size: int | None = None) -> None:
        self.population_size = population_size
        self._adopted: int | None = None  # a budget-sized population taken from a state
        super().__init__()

    def _validate_options(self) -> None:
        check_int_option("population_size", self.population_size, 2, or_none=True)

    def _setup(self, space: Any, *, seed: int) -> None:
        self._adopted = None
        self._seed = seed
        super()._setup(space, seed=seed)

    @property
    def _population(self) -> int:
        if self.population_size is not None:
            return self.population_size
        if self._adopted is not None:
            return self._adopted
        return population_for(self._budget, default=16, turnovers=GENERATIONS)

    def _create_sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.NSGAIISampler(population_size=self._population, seed=seed)

    def _options_state(self) -> dict[str, Any]:
        # Generations are counted in population_size trials: another size would misread
        # the saved generations.
        return {"population_size": self._population}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = (state.get("options") or {}).get("population_size")
        study = self._require_study()
        adopt = (self.population_size is None and not study.trials
                 and isinstance(saved, int) and not isinstance(saved, bool) and saved >= 2
                 and saved != self._population)
        if not adopt:
            super().load_state_dict(state)
            return
        previous_adopted, previous_sampler = self._adopted, study.sampler
        self._adopted = saved
        # The population is fixed in the sampler (and its selection) at construction; the
        # random states are restored from the state below.
        study.sampler = self._create_sampler(self._seed)
        try:
            super().load_state_dict(state)
        except BaseException:
            self._adopted, study.sampler = previous_adopted, previous_sampler
            raise
