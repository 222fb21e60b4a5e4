"""Search strategies: the ask/tell :class:`Strategy` contract and built-in strategies.

Importing this package imports neither ray nor torch nor optuna; the Bayesian strategy
imports optuna when it is set up.
"""

from nascompress.strategies._base import (
    FINISHED,
    TRIAL_STATES,
    Outcome,
    Strategy,
    ask_valid,
)
from nascompress.strategies._registry import STRATEGIES, register_strategy
from nascompress.strategies.bayesian import BayesianStrategy
from nascompress.strategies.random import RandomStrategy

__all__ = [
    "FINISHED",
    "STRATEGIES",
    "TRIAL_STATES",
    "BayesianStrategy",
    "Outcome",
    "RandomStrategy",
    "Strategy",
    "ask_valid",
    "register_strategy",
]
