"""Built-in datasets and the dataset registry."""

from nascompress.data._base import DatasetSplits, stratified_split
from nascompress.data._registry import DATASETS, register_dataset
from nascompress.data.digits import load_digits_splits

__all__ = ["DATASETS", "DatasetSplits", "load_digits_splits", "register_dataset",
           "stratified_split"]
