"""The built-in evaluation passes' batch size: cache-sized on the CPU (no torch needed)."""

import numpy as np
import pytest

from nascompress.data import EVAL_BATCH_SIZE, DatasetSplits, eval_batch_size


@pytest.mark.parametrize(("shape", "expected"), [
    ((1, 8, 8), 512),       # digits: 64 values per image, the largest batch
    ((1, 28, 28), 32),      # mnist: 784 values; 41 fit, the power of two below is 32
    ((3, 32, 32), 16),      # 3,072 values: 10 fit, held at the smallest batch
    ((3, 224, 224), 16),
    ((20,), 512),           # tabular rows
])
def test_cpu_batches_hold_a_bounded_number_of_input_values(shape, expected):
    assert eval_batch_size(shape) == expected
    assert eval_batch_size(shape, "cpu") == expected


def test_accelerators_keep_the_large_batch():
    assert eval_batch_size((1, 28, 28), "cuda") == EVAL_BATCH_SIZE
    assert eval_batch_size((3, 224, 224), "cuda:1") == EVAL_BATCH_SIZE


def test_an_unbatched_loader_uses_it_and_an_explicit_batch_size_wins():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 3, size=100)
    data = DatasetSplits(name="t", x_train=x, y_train=y, x_val=x, y_val=y, x_test=x,
                         y_test=y, num_classes=3)
    assert data.loader("val").batch_size == 32
    assert [len(b[1]) for b in data.loader("val")] == [32, 32, 32, 4]
    assert data.loader("val", batch_size=64).batch_size == 64
