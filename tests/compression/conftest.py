"""Fixtures of the compression tests: a batch of images and calibration data for it."""

import pytest


@pytest.fixture
def batch_size() -> int:
    """Images in ``x``; a test module overrides this fixture to change it."""
    return 8


@pytest.fixture
def x(batch_size):
    pytest.importorskip("torch")
    from tests.compression._models import image_batch

    return image_batch(batch_size)


@pytest.fixture
def calibration(x):
    """``(inputs, labels)`` for the criteria that need a loss."""
    torch = pytest.importorskip("torch")
    return x, torch.arange(len(x)) % 10
