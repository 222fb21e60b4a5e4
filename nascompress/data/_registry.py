"""The dataset registry (see :mod:`nascompress.registry`)."""

from collections.abc import Callable

from nascompress.data._base import DatasetSplits
from nascompress.registry import Registry

DATASETS: Registry[Callable[..., DatasetSplits]] = Registry("datasets")
register_dataset = DATASETS.register
