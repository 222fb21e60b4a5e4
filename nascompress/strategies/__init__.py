"""Search strategies: the ask/tell :class:`Strategy` contract and built-in strategies.

Built-ins: ``random``, ``grid``, ``evolution`` (regularized evolution), ``bayesian``
(optuna's Gaussian process for budgets up to 100 trials, TPE above; ``sampler`` fixes
one; ``bayesian-gp`` is the GP at any budget),
``nsga2`` (optuna NSGA-II) and ``rl`` (REINFORCE policy gradient in torch). Importing
this package imports neither ray nor torch nor optuna; the optuna-backed strategies
import optuna, and ``rl`` torch, when they are set up.
"""

from nascompress.strategies._base import (
    FINISHED,
    TRIAL_STATES,
    Outcome,
    Strategy,
    ask_valid,
    check_constraints,
    constraint_violations,
    setup_strategy,
)
from nascompress.strategies._registry import STRATEGIES, register_strategy
from nascompress.strategies.bayesian import BayesianGPStrategy, BayesianStrategy
from nascompress.strategies.evolution import EvolutionStrategy
from nascompress.strategies.grid import GridStrategy
from nascompress.strategies.nsga2 import NSGA2Strategy
from nascompress.strategies.random import RandomStrategy
from nascompress.strategies.rl import RLStrategy

__all__ = [
    "FINISHED",
    "STRATEGIES",
    "TRIAL_STATES",
    "BayesianGPStrategy",
    "BayesianStrategy",
    "EvolutionStrategy",
    "GridStrategy",
    "NSGA2Strategy",
    "Outcome",
    "RLStrategy",
    "RandomStrategy",
    "Strategy",
    "ask_valid",
    "check_constraints",
    "constraint_violations",
    "register_strategy",
    "setup_strategy",
]
