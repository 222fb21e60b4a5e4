"""Bring your own data: arrays on disk (``.npz``) or a factory returning torch loaders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nascompress.data._base import SPLITS, Dataset, DatasetSplits, stratified_split
from nascompress.data._registry import register_dataset


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


class LoaderDataset(Dataset):
    """User loaders as a :class:`Dataset`: batches are streamed, never gathered.

    Each split is a ``torch.utils.data.DataLoader`` or any re-iterable of ``(inputs,
    labels)`` batches, used as given: its batch size, sampler, workers and transforms
    (augment the train split only) are the user's. On CUDA a ``DataLoader`` is switched
    to pinned memory so the trainer's non-blocking copies overlap compute; choose its
    ``num_workers`` for the machine (``factory_kwargs`` can pass it).

    Args:
        loaders: ``{"train": ..., "val": ..., "test": ...}``.
        name: recorded in ``run.json``.
        num_classes: class count. ``None``: ``len(loader.dataset.classes)`` when the
            train loader's dataset has ``classes`` (torchvision's do), else one pass over
            the labels of every split (give it to skip that pass).
        input_shape: one example's shape; ``None``: read from the first train batch.
        preprocessing: what export manifests record about the inputs.
    """

    def __init__(self, loaders: Mapping[str, Any], *, name: str = "loaders",
                 num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                 preprocessing: Mapping[str, Any] | None = None) -> None:
        if not isinstance(loaders, Mapping):
            raise ValueError(f"loaders must be a mapping of split name to loader, but got "
                             f"{type(loaders).__name__}")
        for split in SPLITS:
            if split not in loaders:
                raise ValueError(f"loaders must have a {split!r} loader, but got only "
                                 f"{sorted(loaders)}")
            if not isinstance(loaders[split], Iterable) or isinstance(
                    loaders[split], Iterator):
                raise ValueError(
                    f"dataset.{split} must be a re-iterable of (inputs, labels) batches "
                    f"(a DataLoader, a list), but got {type(loaders[split]).__name__}")
        self.loaders = {split: loaders[split] for split in SPLITS}
        self.name = name
        self.preprocessing = dict(preprocessing or {})
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self.num_classes = num_classes if num_classes is not None else self._count_classes()

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self._input_shape is None:
            batch = next(iter(self.loaders["train"]), None)
            if batch is None:
                raise ValueError("dataset.train must yield at least one batch, but yielded "
                                 "none")
            self._input_shape = tuple(int(d) for d in np.shape(batch[0])[1:])
        return self._input_shape

    def _count_classes(self) -> int:
        classes = getattr(getattr(self.loaders["train"], "dataset", None), "classes", None)
        if classes is not None:
            return len(classes)
        top = -1
        for split in SPLITS:
            for batch in self.loaders[split]:
                labels = np.asarray(batch[1])
                if labels.size:
                    top = max(top, int(labels.max()))
        return top + 1

    def loader(self, split: str, *, batch_size: int | None = None, shuffle: bool = False,
               generator: Any = None, device: str = "cpu") -> Any:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, but got {split!r}")
        given = self.loaders[split]
        if str(device).startswith("cuda") and getattr(given, "pin_memory", True) is False:
            # Pinned host memory is what makes the trainer's non_blocking copies async.
            given.pin_memory = True
        return given

    def describe(self) -> dict[str, Any]:
        sizes = {}
        for split in SPLITS:
            inner = getattr(self.loaders[split], "dataset", None)
            try:
                sizes[split] = len(inner) if inner is not None else None
            except TypeError:  # an iterable-style dataset has no length
                sizes[split] = None
        return {**super().describe(), "sizes": sizes, "streamed": True}


@register_dataset("loaders")
def load_from_loaders(
    *, factory: str, factory_kwargs: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> LoaderDataset:
    """A dataset from a factory returning ``{"train": loader, "val": ..., "test": ...}``.

    Each loader yields ``(inputs, labels)`` batches (a ``torch.utils.data.DataLoader``
    or any re-iterable); they are streamed every epoch, never gathered into arrays
    (see :class:`LoaderDataset`). Put augmentation in the train loader only.

    Args:
        factory: ``"package.module:function"``.
        factory_kwargs: keyword arguments for it.
        num_classes: class count; see :class:`LoaderDataset`.
    """
    from nascompress.registry import import_object

    make = import_object(factory, "dataset.options.factory")
    if not callable(make):
        raise ValueError(f"dataset.options.factory must name a callable, but got {factory!r} "
                         f"({type(make).__name__})")
    loaders = make(**dict(factory_kwargs or {}))
    if not isinstance(loaders, Mapping):
        raise ValueError(
            f"dataset.options.factory: {factory!r} must return a mapping of split name to "
            f"loader, but returned {type(loaders).__name__}"
        )
    missing = [split for split in SPLITS if split not in loaders]
    if missing:
        raise ValueError(f"dataset.options.factory: {factory!r} returned no {missing[0]!r}")
    return LoaderDataset(loaders, name=factory.rpartition(":")[2], num_classes=num_classes,
                         preprocessing={"source": factory})
