"""The Dataset contract: in-memory loaders keep the trainer's order, batches are checked."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nascompress.data import (  # noqa: E402
    ArrayLoader,
    DatasetSplits,
    LoaderDataset,
    check_dataset,
    load_digits_splits,
    take,
    train_sample,
)


def test_array_loader_shuffles_exactly_as_the_trainer_always_did():
    data = load_digits_splits()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    ours, theirs = torch.Generator(), torch.Generator()
    ours.manual_seed(7)
    theirs.manual_seed(7)
    loader = data.loader("train", batch_size=64, shuffle=True, generator=ours)
    assert len(loader) == -(-len(x) // 64)
    for _ in range(2):  # a new order each epoch, drawn from the same generator
        order = torch.randperm(len(x), generator=theirs)
        expected = [(x[order[s:s + 64]], y[order[s:s + 64]]) for s in range(0, len(x), 64)]
        got = list(loader)
        assert len(got) == len(expected)
        assert all(torch.equal(a, c) and torch.equal(b, d)
                   for (a, b), (c, d) in zip(got, expected, strict=True))


def test_unshuffled_loaders_are_consecutive_slices_and_take_reads_only_what_it_needs():
    data = load_digits_splits()
    first, labels = take(data.loader("train", batch_size=100), 256)
    assert torch.equal(first, torch.from_numpy(data.x_train[:256]))
    assert torch.equal(labels, torch.from_numpy(data.y_train[:256]))

    class Counting(list):
        reads = 0

        def __iter__(self):
            for batch in super().__iter__():
                Counting.reads += 1
                yield batch

    batches = Counting([(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))] * 10)
    assert take(batches, 6)[0].shape == (6, 2) and Counting.reads == 2


def test_the_calibration_sample_mixes_classes_of_a_split_stored_in_label_order():
    # mnist5k's source file is in label order and the split keeps it: its first 256
    # training images are all zeros, which once calibrated every trial.
    labels = np.repeat(np.arange(10), 100)
    x = np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1)
    data = DatasetSplits.stratified("sorted", x, labels, num_classes=10, split_seed=0,
                                    fractions=(0.7, 0.15, 0.15), preprocessing={})
    assert len(set(take(data.loader("train", batch_size=64), 64)[1].tolist())) == 1
    inputs, drawn = train_sample(data, 64)
    assert len(set(drawn.tolist())) >= 8
    again = train_sample(data, 64)  # a fixed seed: every trial calibrates on the same images
    assert torch.equal(inputs, again[0]) and torch.equal(drawn, again[1])
    rows = {float(v) for v in data.x_train.reshape(-1)}
    assert len({float(v) for v in inputs.reshape(-1)}) == 64
    assert {float(v) for v in inputs.reshape(-1)} <= rows


def _dataset(train_batch, num_classes=3):
    good = [(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 0]))]
    return LoaderDataset({"train": [train_batch], "val": good, "test": good},
                         num_classes=num_classes, input_shape=(1, 2, 2))


@pytest.mark.parametrize(("batch", "message"), [
    ((torch.zeros(4, 1, 3, 3), torch.zeros(4, dtype=torch.long)),
     r"dataset.train inputs must have shape \(batch, \*\(1, 2, 2\)\), but got \(4, 1, 3, 3\)"),
    ((torch.full((4, 1, 2, 2), float("nan")), torch.zeros(4, dtype=torch.long)),
     "dataset.train inputs must be finite, but got 16 NaN or infinite"),
    ((torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 3, 0])),
     r"dataset.train labels must be in \[0, 3\), but got values from 0 to 3"),
    ((torch.zeros(4, 1, 2, 2), torch.tensor([0, -1, 2, 0])),
     r"dataset.train labels must be in \[0, 3\)"),
    ((torch.zeros(4, 1, 2, 2), torch.zeros(4)),
     "dataset.train labels must be integer class indices, but got torch.float32"),
    ((torch.zeros(4, 1, 2, 2), torch.zeros(3, dtype=torch.long)),
     r"dataset.train labels must have shape \(4,\), but got \(3,\)"),
    ((torch.zeros(4, 1, 2, 2),), "dataset.train batches must be \\(inputs, labels\\) pairs"),
])
def test_a_bad_first_batch_is_one_line_naming_the_split(batch, message):
    with pytest.raises(ValueError, match=message) as info:
        check_dataset(_dataset(batch))
    assert "\n" not in str(info.value)


def test_loader_dataset_refuses_one_shot_iterators_and_missing_splits():
    good = [(torch.zeros(2, 3), torch.tensor([0, 1]))]
    with pytest.raises(ValueError, match="dataset.val must be a re-iterable"):
        LoaderDataset({"train": good, "val": iter(good), "test": good}, num_classes=2)
    with pytest.raises(ValueError, match="must have a 'test' loader"):
        LoaderDataset({"train": good, "val": good}, num_classes=2)
    data = LoaderDataset({"train": good, "val": good, "test": good})
    assert data.num_classes == 2 and data.input_shape == (3,)  # read from the batches


def test_array_loader_indexed_gives_positions_of_the_shuffled_samples():
    x = torch.arange(10.0)[:, None]
    generator = torch.Generator()
    generator.manual_seed(0)
    loader = ArrayLoader(x, torch.arange(10), batch_size=3, shuffle=True, generator=generator)
    for positions, inputs, labels in loader.indexed():
        assert torch.equal(inputs[:, 0], x[positions, 0]) and torch.equal(labels, positions)
    assert np.array_equal(
        np.sort(np.concatenate([p.numpy() for p, _, _ in loader.indexed()])), np.arange(10))
