"""The :class:`Dataset` contract, and in-memory arrays as one implementation of it."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The splits every dataset has, in the order they are checked.
SPLITS = ("train", "val", "test")
#: Batch size of the built-in evaluation passes (validation, test re-checks) on an
#: accelerator, and the largest one on the CPU (see :func:`eval_batch_size`).
EVAL_BATCH_SIZE = 512
#: On the CPU, an evaluation batch holds at most this many input values: a batch of
#: 28x28 images through a small MobileNet ran 2-5x slower at 512 than at 32-64 images
#: (its activations leave the cache), while 8x8 digits gained a little from 512.
CPU_EVAL_BATCH_VALUES = 32_768
#: The smallest evaluation batch on the CPU, however large one input is.
CPU_EVAL_BATCH_MIN = 16


def eval_batch_size(input_shape: tuple[int, ...], device: str = "cpu") -> int:
    """The built-in evaluation passes' batch size for inputs of ``input_shape``.

    :data:`EVAL_BATCH_SIZE` on an accelerator; on the CPU the largest power of two whose
    batch holds at most :data:`CPU_EVAL_BATCH_VALUES` input values, between
    :data:`CPU_EVAL_BATCH_MIN` and :data:`EVAL_BATCH_SIZE`. The batch size does not
    change a score, only how fast it is computed.
    """
    if str(device) != "cpu":
        return EVAL_BATCH_SIZE
    values = max(1, math.prod(input_shape))
    size = CPU_EVAL_BATCH_MIN
    while size * 2 <= EVAL_BATCH_SIZE and size * 2 * values <= CPU_EVAL_BATCH_VALUES:
        size *= 2
    return size


class Dataset(ABC):
    """Where a search's data comes from: batches of ``(inputs, labels)`` per split.

    The whole contract; the evaluators, the search's checks and export rely on nothing
    else:

    * :meth:`loader` returns an iterable of ``(inputs, labels)`` batches for a split
      (``"train"``, ``"val"`` or ``"test"``): ``inputs`` a float tensor shaped
      ``(batch, *input_shape)``, ``labels`` an int64 tensor ``(batch,)`` of class indices
      in ``[0, num_classes)``. It is iterated once per epoch, so it must be re-iterable
      (a ``torch.utils.data.DataLoader`` is). Data is streamed batch by batch; nothing
      gathers a split into one array. Augmentation belongs to the train split's loader
      alone: the validation and test splits score candidates and must not be random.
    * The test split is held back: searches score on ``val``; only the final re-check
      of picked models reads ``test``.
    * :attr:`input_shape` (one example, without the batch dimension) and
      :attr:`num_classes`; :attr:`name` and :attr:`preprocessing` (how inputs were made,
      copied into export manifests); :meth:`describe` (recorded in ``run.json``).
    * :func:`check_dataset` validates the first batch of every split before a search
      spends compute (shape, finite inputs, labels in range) and names the split.

    In-memory arrays (:class:`DatasetSplits`) and user loaders
    (:class:`~nascompress.data.LoaderDataset`) are the two built-in implementations.
    """

    #: Attributes every dataset has (set by the implementation).
    name: str
    num_classes: int
    preprocessing: dict[str, Any]

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape, without the batch dimension."""

    @abstractmethod
    def loader(
        self,
        split: str,
        *,
        batch_size: int | None = None,
        shuffle: bool = False,
        generator: Any = None,
        device: str = "cpu",
    ) -> Iterable[tuple[Any, Any]]:
        """Batches of ``split``, re-iterable every epoch.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: wanted batch size; a dataset whose loaders are built by the user
                keeps theirs.
            shuffle: a new order every epoch (the built-in trainer asks for it on
                ``train``); user loaders keep their own sampler.
            generator: ``torch.Generator`` for that order, so a seeded trial repeats.
            device: where the training runs. In-memory data is moved there once; a
                ``DataLoader`` gets pinned memory on CUDA (transfers are non-blocking).
        """

    def describe(self) -> dict[str, Any]:
        """JSON-able summary recorded in ``run.json``."""
        return {"name": self.name, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "preprocessing": dict(self.preprocessing)}


class ArrayLoader:
    """Batches of in-memory tensors, in a new random order every epoch when shuffling.

    The order is ``torch.randperm(n, generator=generator)`` drawn when iteration starts
    and the batches are consecutive slices of it: the order the trainer has always used,
    so seeded searches repeat their results exactly.
    """

    def __init__(self, x, y, *, batch_size: int, shuffle: bool = False,
                 generator: Any = None) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return max(1, math.ceil(len(self.x) / self.batch_size))

    def indexed(self) -> Iterator[tuple[Any, Any, Any]]:
        """``(positions, inputs, labels)``: where each batch's samples sit in the split.

        What lets per-sample tables computed once (a teacher's logits) follow the
        shuffled order.
        """
        import torch

        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                yield idx, self.x[idx], self.y[idx]
        else:
            for start in range(0, n, self.batch_size):
                end = start + self.batch_size
                yield slice(start, end), self.x[start:end], self.y[start:end]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for _, x, y in self.indexed():
            yield x, y


@dataclass
class DatasetSplits(Dataset):
    """Arrays for one dataset, already split and preprocessed (a :class:`Dataset`).

    Inputs are float32 arrays shaped ``(N, *input_shape)``; labels int64 ``(N,)``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # Tensors per (split, device), made once: moving a split to a GPU every phase of
    # every trial would repeat the same copy.
    _tensors: dict[tuple[str, str], Any] = field(default_factory=dict, init=False,
                                                 repr=False, compare=False)

    @classmethod
    def stratified(cls, name: str, x: np.ndarray, y: np.ndarray, *, num_classes: int,
                   split_seed: int, fractions, preprocessing: dict[str, Any]) -> DatasetSplits:
        """``x``, ``y`` split per class at ``fractions`` (train, val, test), fixed by
        ``split_seed``; the split is recorded in ``preprocessing``."""
        train, val, test = stratified_split(y, fractions=tuple(fractions), seed=split_seed)
        return cls(name=name, x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val],
                   x_test=x[test], y_test=y[test], num_classes=num_classes,
                   preprocessing={**preprocessing, "split_seed": split_seed,
                                  "fractions": list(fractions)})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(inputs, labels)`` arrays of ``split``."""
        _check_split(split)
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def tensors(self, split: str, device: str = "cpu"):
        """``split`` as tensors on ``device`` (shared memory with the arrays on the CPU)."""
        import torch

        key = (split, str(device))
        if key not in self._tensors:
            x, y = self.arrays(split)
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            if str(device) != "cpu":
                x, y = x.to(device), y.to(device)
            self._tensors[key] = (x, y)
        return self._tensors[key]

    def loader(self, split: str, *, batch_size: int | None = None, shuffle: bool = False,
               generator: Any = None, device: str = "cpu") -> ArrayLoader:
        x, y = self.tensors(split, device)
        batch_size = batch_size or eval_batch_size(self.input_shape, device)
        return ArrayLoader(x, y, batch_size=batch_size, shuffle=shuffle, generator=generator)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)},
            "preprocessing": self.preprocessing,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tensors"] = {}  # device tensors stay in the process that made them
        return state


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, but got {split!r}")


def take(loader: Iterable[tuple[Any, Any]], count: int):
    """The first ``count`` samples of ``loader`` as ``(inputs, labels)`` CPU tensors.

    Reads only as many batches as it needs (calibration data, example inputs).
    """
    import torch

    xs, ys, have = [], [], 0
    for inputs, labels in loader:
        inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels)
        xs.append(inputs[:count - have].cpu())
        ys.append(labels[:count - have].cpu())
        have += len(xs[-1])
        if have >= count:
            break
    if not xs:
        raise ValueError("loader must yield at least one batch, but yielded none")
    if len(xs) == 1:
        return xs[0], ys[0]
    return torch.cat(xs), torch.cat(ys)


def train_sample(dataset: Dataset, count: int, *, seed: int = 0):
    """``count`` training samples in a seeded random order, as ``(inputs, labels)`` CPU
    tensors: the calibration set of pruning importance, activation ranges and int8 ONNX.

    Not the split's first samples: a split stored in label order (``mnist5k``'s is, as
    its source file is) would calibrate on one class. The seed is fixed, not the
    trial's, so every trial of a search calibrates on the same images. A dataset whose
    loaders the user built keeps its own sampler (``Dataset.loader``).
    """
    import torch

    return take(dataset.loader("train", batch_size=count, shuffle=True,
                               generator=torch.Generator().manual_seed(seed)), count)


def check_batch(split: str, batch: Any, *, input_shape: tuple[int, ...],
                num_classes: int, class_labels: bool = True) -> None:
    """Raise ``ValueError`` naming ``dataset.<split>`` when a batch breaks the contract.

    With ``class_labels=False`` (a task scored by the user's metric) the labels may be
    anything with one entry per input: masks, boxes, token ids.
    """
    import torch

    where = f"dataset.{split}"
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(f"{where} batches must be (inputs, labels) pairs, but got "
                         f"{type(batch).__name__}"
                         + (f" of length {len(batch)}" if isinstance(batch, tuple | list)
                            else ""))
    inputs, labels = batch
    try:
        inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{where} batches must hold tensors or arrays, but got: {exc}") from None
    shape = tuple(inputs.shape[1:])
    if inputs.dim() < 1 or shape != tuple(input_shape):
        raise ValueError(f"{where} inputs must have shape (batch, *{tuple(input_shape)}), "
                         f"but got {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise ValueError(f"{where} inputs must be floating point, but got {inputs.dtype}")
    if not bool(torch.isfinite(inputs).all()):
        bad = int((~torch.isfinite(inputs)).sum())
        raise ValueError(f"{where} inputs must be finite, but got {bad} NaN or infinite "
                         f"value(s) in the first batch")
    if not class_labels:
        if labels.dim() < 1 or len(labels) != len(inputs):
            raise ValueError(f"{where} labels must have one entry per input ({len(inputs)}), "
                             f"but got shape {tuple(labels.shape)}")
        return
    if labels.dim() != 1 or len(labels) != len(inputs):
        raise ValueError(f"{where} labels must have shape ({len(inputs)},), but got "
                         f"{tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{where} labels must be integer class indices, but got "
                         f"{labels.dtype}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{where} labels must be in [0, {num_classes}), but got values "
                         f"from {int(labels.min())} to {int(labels.max())}")


def check_dataset(dataset: Dataset, *, class_labels: bool = True) -> None:
    """Validate the first batch of every split (see :func:`check_batch`).

    Raises:
        ValueError: one line naming the split and what is wrong with it.
    """
    shape = tuple(dataset.input_shape)
    classes = dataset.num_classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"dataset.num_classes must be an integer >= 1, but got {classes!r}")
    for split in SPLITS:
        batch = next(iter(dataset.loader(split)), None)
        if batch is None:
            raise ValueError(f"dataset.{split} must yield at least one batch, but yielded none")
        check_batch(split, batch, input_shape=shape, num_classes=classes,
                    class_labels=class_labels)


def stratified_split(
    y: np.ndarray, *, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a per-class shuffled train/val/test split (deterministic for a seed)."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            f"fractions must be three positive numbers summing to 1, but got {fractions!r}"
        )
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        parts[0] += idx[:n_train].tolist()
        parts[1] += idx[n_train:n_train + n_val].tolist()
        parts[2] += idx[n_train + n_val:].tolist()
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]
