"""The evaluator registry (see :mod:`nascompress.registry`)."""

from nascompress.evaluators._base import Evaluator
from nascompress.registry import Registry

EVALUATORS: Registry[Evaluator] = Registry("evaluators")
register_evaluator = EVALUATORS.register
