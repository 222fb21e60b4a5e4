"""scikit-learn's digits (8×8 grey images of 0–9), shipped inside scikit-learn: no download."""

from __future__ import annotations

import numpy as np

from nascompress.data._base import DatasetSplits
from nascompress.data._registry import register_dataset


@register_dataset("digits")
def load_digits_splits(*, split_seed: int = 0, fractions=(0.7, 0.15, 0.15)) -> DatasetSplits:
    """Digits as ``(N, 1, 8, 8)`` float32 in [0, 1] with a stratified fixed-seed split.

    Args:
        split_seed: seed of the split; the same seed always gives the same split, so
            every trial of a search (and a later re-check) sees the same data.
        fractions: train / validation / test fractions.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    return DatasetSplits.stratified(
        "digits", x, y, num_classes=10, split_seed=split_seed, fractions=fractions,
        preprocessing={"scale": "pixel / 16", "layout": "NCHW", "dtype": "float32"})
