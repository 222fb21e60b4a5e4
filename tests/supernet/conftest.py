"""Fixtures shared by the supernet tests."""

import pytest


@pytest.fixture(scope="module")
def digits_small():
    """400 digits images, split 70/15/15: enough for a supernet to take a few steps."""
    pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    from nascompress.data import DatasetSplits

    bunch = load_digits()
    x = (bunch.images[:400] / 16.0).astype("float32")[:, None]
    return DatasetSplits.stratified("digits-small", x, bunch.target[:400].astype("int64"),
                                    num_classes=10, split_seed=0, fractions=(0.7, 0.15, 0.15),
                                    preprocessing={})
