"""Datasets (the :class:`Dataset` contract, built-in datasets) and the dataset registry."""

from nascompress.data._base import (
    EVAL_BATCH_SIZE,
    SPLITS,
    ArrayLoader,
    Dataset,
    DatasetSplits,
    check_batch,
    check_dataset,
    eval_batch_size,
    stratified_split,
    take,
    train_sample,
)
from nascompress.data._registry import DATASETS, register_dataset
from nascompress.data.custom import (
    LoaderDataset,
    load_from_loaders,
    load_npz,
    splits_from_arrays,
)
from nascompress.data.digits import load_digits_splits
from nascompress.data.mnist5k import load_mnist5k_splits

__all__ = ["DATASETS", "EVAL_BATCH_SIZE", "SPLITS", "ArrayLoader", "Dataset", "DatasetSplits",
           "LoaderDataset",
           "check_batch", "check_dataset", "eval_batch_size", "load_digits_splits",
           "load_from_loaders",
           "load_mnist5k_splits", "load_npz", "register_dataset", "splits_from_arrays",
           "stratified_split", "take", "train_sample"]
