"""NSGA-II's budget-sized population, before and after: a fifth of the budget vs a tenth.

Usage (from the repository root)::

    .venv/bin/python bench/strategies/nsga2_population.py   # writes nsga2_population.md

``nsga2`` with its population set to a fifth of the budget (the earlier default, five
generations) and to a tenth (the default now, ten generations), both between 8 and 50,
against random search, 20 seeds each, on every benchmark of ``run.py`` at budgets 50,
100 and 300 (a budget above half a table is skipped). p: one-sided Mann-Whitney U of
HV against random; to rnd: evaluations to reach random's median final HV; "tenth vs
fifth": two-sided, on HV (``variant_check.py`` runs it). At a budget of 50 the two
differ little (10 against the floor of 8). Both select survivors by crowding distance,
as ``nsga2`` did when this was measured (``nsga2_selection.md`` for what came after).

How the size was chosen: on ``digits-cnn-3x`` (budgets 50 and 100) a tenth of the
budget, a higher mutation probability (0.4), less crossover (0.5) and a lower swapping
probability (0.2) were tried; the population helped most. A tenth, mutation 0.4 and
swapping 0.2 then ran on ``digits-9d-1x`` and ``digits-7d-3x``, and populations of 8,
10, 14 and 20 at a budget of 100 on all four benchmarks (each smaller one had a higher
median HV than 20 on all four), before a tenth (ten generations) was fixed. So the
other benchmarks are not untouched hold-outs: they were looked at for the direction,
not tuned on value by value.
"""

from __future__ import annotations

import sys

import run
from variant_check import check

from nascompress.strategies import NSGA2Strategy
from nascompress.strategies._base import population_for


class SizedNSGA2(NSGA2Strategy):
    """Classic ``nsga2`` (crowding distance) with a population of ``budget // turnovers``
    (between 8 and 50)."""

    def __init__(self, turnovers: int) -> None:
        self.turnovers = turnovers
        super().__init__(selection="crowding")

    @property
    def _population(self) -> int:
        return population_for(self._budget, default=16, turnovers=self.turnovers)


SIZES = {"fifth": 5, "tenth": 10}

if __name__ == "__main__":
    original = run.make_strategy
    run.make_strategy = lambda name: SizedNSGA2(SIZES[name]) if name in SIZES else original(name)
    check(stem="nsga2_population", title="nsga2: population a fifth vs a tenth of the budget",
          doc=__doc__, base=("fifth", "fifth"), variant=("tenth", "tenth"),
          seed_sets=(range(0, 20),))
    sys.exit(0)
