"""``nsga2``'s children screened by a model of the results: 1 (off) against 4.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/strategies/nsga2_screening.py  # .md/.json

``nsga2`` with ``screened_children=1`` (optuna's NSGA-II breeding, the default before)
and with the default now (4: after the first generation each ask breeds four distinct
never-asked children with optuna's crossover and mutation and proposes the one that
extremely randomized trees, fitted on every result so far, predict to lie furthest
beyond the front; ``nascompress/strategies/_screening.py``, as ``evolution`` does)
against random search, on every benchmark of ``run.py`` at budgets 50, 100 and 300 (a
budget above half a table is skipped), on seeds 0-19 (``run.py``'s) and on seeds 20-39.

Why: NSGA-II breeds a whole generation from parents fixed when it starts, blind to the
results of the generation being bred; ``nsga2`` needed 58-77 of 100 evaluations to reach
random search's final hypervolume on the measured tables, and did not beat random at 50
on three of them.

How it was chosen, on seeds 0-19 at 50 and 100 only (``run.py --strategies
nsga2+screened_children=K --budgets 50,100``, K = 1, 2, 4, 8; every benchmark). Median
HV at 100 and evaluations to random's HV, K = 1 / 2 / 4 / 8: ``digits-cnn-3x`` 0.978 (58)
/ 0.981 (53) / 0.993 (45) / 0.994 (46); ``digits-9d-1x`` 0.985 (61) / 0.991 (51) / 0.993
(48) / 0.994 (45); ``digits-7d-3x`` 0.969 (58) / 0.969 (60) / 0.975 (54) / 0.973 (58);
``mnist5k-cnn-6d`` 0.941 (77) / 0.962 (56) / 0.989 (54) / 0.980 (58); ``mnist5k-mbv3-ws``
0.856 (72) / 0.908 (53) / 0.895 (59) / 0.940 (50); the modelled ``surrogate`` 0.821 (94)
/ 0.837 (77) / 0.852 (50) / 0.810 (>100). 8 was best on two tables and worst of all on
the surrogate; 4 was kept: never far from the best on the tables and the best on the
surrogate, and the same as ``evolution``'s. Seeds 20-39 and budget 300 were run once,
after the choice.

Reading: screening made ``nsga2`` better on the measured tables: a higher median than
unscreened in every cell but one (``mnist5k-cnn-6d`` at 50 on seeds 20-39: 0.901 against
0.907, p 0.78), significantly (two-sided p < 0.05) at 100 in 9 of 10 cells
(``digits-cnn-3x`` on seeds 20-39: p 0.064) and at 300 in 4 of 4. It now beats random
on every measured table at 50, 100 and 300 on both seed sets (the largest p 0.019, at
50 on ``digits-cnn-3x``); unscreened it missed four cells at 50. Evaluations to random's
final HV at 100: 45-59 on the measured tables on seeds 0-19 (45 ``digits-cnn-3x``, 48
``digits-9d-1x``, 54 ``digits-7d-3x``, 54 ``mnist5k-cnn-6d``, 59 ``mnist5k-mbv3-ws``) and
46-58 on seeds 20-39 (unscreened 58-77 and 54-75): half the budget on two and three of
five tables. On the modelled surrogate the median is higher in all six cells (none
significantly) and it beats random at 100 on both seed sets (p 0.009 and 0.010;
unscreened 0.143 on seeds 0-19), not at 50 on seeds 0-19 (p 0.299). Unlike
``evolution``'s screening, nothing was lost on the surrogate. Cost: 15-38 ms per ask
and tell (the model fit, on two shared cores), against about 1 ms unscreened.

"""

from __future__ import annotations

import sys

from variant_check import check

if __name__ == "__main__":
    check(stem="nsga2_screening",
          title="nsga2: children unscreened against 4 screened by a model",
          doc=__doc__, base=("unscreened", "nsga2+screened_children=1"),
          variant=("4 screened", "nsga2"))
    sys.exit(0)
