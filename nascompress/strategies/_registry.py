"""The strategy registry (see :mod:`nascompress.registry`)."""

from nascompress.registry import Registry
from nascompress.strategies._base import Strategy

STRATEGIES: Registry[Strategy] = Registry("strategies")
register_strategy = STRATEGIES.register
