"""Evaluators: train, compress and measure candidates."""

from nascompress.evaluators._base import (
    RESERVED_RUN_FIELDS,
    Evaluator,
    LatencyUse,
    Prepared,
    ReportFn,
    TrialContext,
    no_report,
)
from nascompress.evaluators._registry import EVALUATORS, register_evaluator
from nascompress.evaluators.compress_train import CompressTrainEvaluator
from nascompress.evaluators.supernet import SupernetEvaluator

__all__ = [
    "EVALUATORS",
    "CompressTrainEvaluator",
    "Evaluator",
    "LatencyUse",
    "Prepared",
    "RESERVED_RUN_FIELDS",
    "ReportFn",
    "SupernetEvaluator",
    "TrialContext",
    "no_report",
    "register_evaluator",
]
