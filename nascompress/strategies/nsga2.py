"""The ``nsga2`` strategy: optuna's NSGA-II genetic algorithm."""

from __future__ import annotations

from typing import Any

from nascompress.strategies._base import check_int_option, population_for
from nascompress.strategies._optuna import OptunaStrategy
from nascompress.strategies._registry import register_strategy


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
    trial ids rejected ``INVALID`` three times in a row (such draws join no generation).

    Args:
        population_size: trials per generation; at least 2. ``None`` (the default)
            sizes it to the budget: a fifth of it, between 8 and 50 (optuna's default),
            so that the search runs at least five generations; 16 when the budget is
            unknown.
    """

    name = "nsga2"

    def __init__(self, *, population_size: int | None = None) -> None:
        self.population_size = population_size
        super().__init__()

    def _validate_options(self) -> None:
        check_int_option("population_size", self.population_size, 2, or_none=True)

    @property
    def _population(self) -> int:
        if self.population_size is not None:
            return self.population_size
        return population_for(self._budget, default=16)

    def _create_sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.NSGAIISampler(population_size=self._population, seed=seed)

    def _options_state(self) -> dict[str, Any]:
        # Generations are counted in population_size trials: another size would misread
        # the saved generations.
        return {"population_size": self._population}
