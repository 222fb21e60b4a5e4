"""Bring your own data: arrays on disk (``.npz``) or a factory returning torch loaders."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nascompress.data._base import DatasetSplits, stratified_split
from nascompress.data._registry import register_dataset

SPLITS = ("train", "val", "test")


@register_dataset("npz")
def load_npz(
    *,
    path: str,
    split_seed: int = 0,
    fractions=(0.7, 0.15, 0.15),
    num_classes: int | None = None,
) -> DatasetSplits:
    """A dataset from a ``.npz`` file (loaded with ``allow_pickle=False``).

    The file holds either ``x`` and ``y`` (split here with a stratified fixed-seed split)
    or ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``, ``y_test``. Inputs
    are ``(N, *input_shape)`` and are cast to float32 as they are (normalise them
    beforehand); labels are integer class indices.

    Args:
        path: the ``.npz`` file.
        split_seed: seed of the split when the file has only ``x`` and ``y``.
        fractions: train / validation / test fractions for that split.
        num_classes: class count; default ``max(label) + 1``.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"dataset.options.path: file {path!r} does not exist")
    with np.load(file, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    if {"x", "y"} <= set(arrays):
        train, val, test = stratified_split(arrays["y"], fractions=tuple(fractions),
                                            seed=split_seed)
        splits = {name: (arrays["x"][idx], arrays["y"][idx])
                  for name, idx in zip(SPLITS, (train, val, test), strict=True)}
    elif all(f"{kind}_{name}" in arrays for kind in "xy" for name in SPLITS):
        splits = {name: (arrays[f"x_{name}"], arrays[f"y_{name}"]) for name in SPLITS}
    else:
        raise ValueError(
            f"dataset.options.path: {path!r} must hold 'x' and 'y', or x_/y_ arrays for "
            f"train, val and test; it holds {sorted(arrays)}"
        )
    return splits_from_arrays(Path(path).stem, splits, num_classes=num_classes,
                              preprocessing={"source": str(file), "split_seed": split_seed})


def splits_from_arrays(
    name: str,
    splits: Mapping[str, tuple[Any, Any]],
    *,
    num_classes: int | None = None,
    preprocessing: Mapping[str, Any] | None = None,
) -> DatasetSplits:
    """Validate and pack ``{"train": (x, y), "val": ..., "test": ...}`` arrays."""
    packed = {}
    for split in SPLITS:
        if split not in splits:
            raise ValueError(f"dataset: the {split!r} split is missing")
        x, y = (np.asarray(a) for a in splits[split])
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"dataset: the {split!r} split has {len(x)} inputs and {len(y)} labels; "
                "they must be equal and non-zero"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"dataset: {split!r} labels must be integers, got {y.dtype}")
        packed[split] = (x.astype(np.float32), y.astype(np.int64))
    shapes = {split: packed[split][0].shape[1:] for split in SPLITS}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"dataset: input shapes differ between splits: {shapes}")
    classes = num_classes or int(max(int(packed[s][1].max()) for s in SPLITS) + 1)
    return DatasetSplits(
        name=name,
        x_train=packed["train"][0], y_train=packed["train"][1],
        x_val=packed["val"][0], y_val=packed["val"][1],
        x_test=packed["test"][0], y_test=packed["test"][1],
        num_classes=classes,
        preprocessing={"dtype": "float32", **dict(preprocessing or {})},
    )


@register_dataset("loaders")
def load_from_loaders(
    *, factory: str, factory_kwargs: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> DatasetSplits:
    """A dataset from a factory returning ``{"train": loader, "val": ..., "test": ...}``.

    Each loader yields ``(inputs, labels)`` batches (a ``torch.utils.data.DataLoader``
    or any iterable). The batches are gathered into arrays once per worker process:
    meant for datasets that fit in memory, as the built-in evaluator trains from arrays.

    Args:
        factory: ``"package.module:function"``.
        factory_kwargs: keyword arguments for it.
        num_classes: class count; default ``max(label) + 1``.
    """
    from nascompress.registry import import_object

    make = import_object(factory, "dataset.options.factory")
    loaders = make(**dict(factory_kwargs or {}))
    if not isinstance(loaders, Mapping):
        raise ValueError(
            f"dataset.options.factory: {factory!r} must return a mapping of split name to "
            f"loader, but returned {type(loaders).__name__}"
        )
    splits = {}
    for split in SPLITS:
        if split not in loaders:
            raise ValueError(f"dataset.options.factory: {factory!r} returned no {split!r}")
        xs, ys = [], []
        for inputs, labels in loaders[split]:
            xs.append(np.asarray(inputs))
            ys.append(np.asarray(labels))
        if not xs:
            raise ValueError(f"dataset: the {split!r} loader yielded no batches")
        splits[split] = (np.concatenate(xs), np.concatenate(ys))
    return splits_from_arrays(factory.rpartition(":")[2], splits, num_classes=num_classes,
                              preprocessing={"source": factory})
