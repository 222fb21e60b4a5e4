"""``rl``'s policy update: after every second tell (2) against after every tell (1).

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/strategies/rl_batch.py  # writes rl_batch.md/.json

``rl`` with ``batch_size=2`` (the default before) and ``batch_size=1`` (the policy takes
its ``epochs`` Adam steps after every tell), learning rate and everything else at
their defaults, against random search, on every benchmark of ``run.py`` at budgets 50,
100 and 300 (a budget above half a table is skipped), on seeds 0-19 (``run.py``'s) and
on seeds 20-39.

Why: ``rl`` needed 42-50 of 100 evaluations to reach random search's final hypervolume
on seeds 0-19 but 38-64 on seeds 20-39 (``rl_lr.md``): half the budget is not reached
reliably. Within a budget of 100, a policy that learns after every other result has
had 50 updates.

How it was chosen, on seeds 0-19 at 50 and 100 only (``run.py --strategies
rl,rl+epochs=4,rl+entropy_weight=0.02,rl+batch_size=1 --budgets 50,100``; every
benchmark). Evaluations to random's HV at 100, default / ``epochs=4`` /
``entropy_weight=0.02`` / ``batch_size=1``: ``digits-cnn-3x`` 42 / 40 / 38 / 37;
``digits-9d-1x`` 48 / 42 / 46 / 40; ``digits-7d-3x`` 44 / 44 / 47 / 43;
``mnist5k-cnn-6d`` 50 / 43 / 44 / 44; ``mnist5k-mbv3-ws`` 42 / 40 / 44 / 36; surrogate
47 / 55 / 50 / 41. No median HV differed significantly from the default's (two-sided
p >= 0.13 for ``batch_size=1``). ``batch_size=1`` was the candidate: the fewest
evaluations on five of the six. Seeds 20-39 and budget 300 were run once, after the
choice.

Reading: **not adopted; ``batch_size`` stays 2.** On seeds 20-39 evaluations to random's
HV at 100 went 45 to 40 (``digits-cnn-3x``), 51 to 56 (``digits-9d-1x``), 58 to 54
(``digits-7d-3x``), 64 to 54 (``mnist5k-cnn-6d``), 38 to 35 (``mnist5k-mbv3-ws``): still
above half on three tables. No cell gained significantly, and three lost (two-sided
p < 0.05): ``mnist5k-mbv3-ws`` at 100 on seeds 20-39 (0.902 against 0.917, p 0.015),
``digits-7d-3x`` at 300 on seeds 20-39 (0.990 against 0.993, p 0.029) and the surrogate
at 300 on seeds 0-19 (0.945 against 0.962, p 0.017); at 50 on ``digits-9d-1x`` (seeds
20-39) it no longer beat random (p 0.149). A guess, not measured: a policy updated
after every tell settles sooner, which costs more late than it gains early.

"""

from __future__ import annotations

import sys

from variant_check import check

if __name__ == "__main__":
    check(stem="rl_batch", title="rl: policy update after every second tell against every tell",
          doc=__doc__, base=("batch 2", "rl"), variant=("batch 1", "rl+batch_size=1"))
    sys.exit(0)
