"""The dataset registry (see :mod:`nascompress.registry`)."""

from collections.abc import Callable

from nascompress.data._base import Dataset
from nascompress.registry import Registry

DATASETS: Registry[Callable[..., Dataset]] = Registry("datasets")
register_dataset = DATASETS.register
