"""Training: the built-in recipe (:class:`Recipe`, :func:`train_epochs`) and the hooks for
the user's own training function (:class:`TrainingContext`) and metric (:class:`Metric`).

The settings (:mod:`~nascompress.training.recipe`) import without torch, so reading a
config stays cheap; the trainer and the hooks are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from nascompress.training.recipe import (
    AMP_MODES,
    PHASES,
    PREPARE_DEVICES,
    Metric,
    Precision,
    Recipe,
    load_function,
    select_channels_last,
    select_precision,
    select_prepare_device,
)

_LAZY = {
    "nascompress.training.loop": (
        "DEFAULT_RECIPE", "Distillation", "PhaseStats", "accuracy", "cross_entropy",
        "predict_logits", "seed_everything", "to_device", "train_epochs"),
    "nascompress.training.hooks": (
        "TrainingContext", "UserFunctionError", "distill_loss_for", "run_training_function",
        "score_metric"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["AMP_MODES", "PHASES", "PREPARE_DEVICES", "Metric", "Precision", "Recipe",
           "load_function", "select_channels_last", "select_precision",
           "select_prepare_device", *_HOME]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
