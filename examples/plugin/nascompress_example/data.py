"""Generated data (no download): four Gaussian blobs in 16 dimensions."""

from __future__ import annotations

from nascompress.data import splits_from_arrays, stratified_split


def load_blobs(*, samples: int = 1200, seed: int = 0):
    """``samples`` points of 4 classes, shaped ``(N, 1, 4, 4)``, fixed-seed split."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=samples, n_features=16, centers=4, cluster_std=4.0,
                      random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).reshape(-1, 1, 4, 4)
    train, val, test = stratified_split(y, fractions=(0.7, 0.15, 0.15), seed=seed)
    return splits_from_arrays("example-blobs",
                              {"train": (x[train], y[train]), "val": (x[val], y[val]),
                               "test": (x[test], y[test])},
                              preprocessing={"scale": "standardised per feature"})
