import numpy as np
import pytest

from nascompress.data import DATASETS, check_dataset, load_npz

torch = pytest.importorskip("torch")


def test_npz_with_x_and_y_is_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(200, 3, 4, 4)), y=np.arange(200) % 4)
    data = DATASETS.resolve("npz")(path=str(path))
    assert data.input_shape == (3, 4, 4) and data.num_classes == 4
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 200
    assert data.x_train.dtype == np.float32


def test_npz_with_explicit_splits(tmp_path):
    path = tmp_path / "s.npz"
    arrays = {f"{k}_{s}": (np.zeros((5, 2)) if k == "x" else np.array([0, 1, 2, 0, 1]))
              for k in "xy" for s in ("train", "val", "test")}
    np.savez(path, **arrays)
    assert load_npz(path=str(path)).num_classes == 3


@pytest.mark.parametrize(
    ("arrays", "message"),
    [({"inputs": np.zeros(3)}, "must hold 'x' and 'y'"),
     ({"x": np.zeros((4, 2)), "y": np.array([0.5, 1, 0, 1])}, "labels must be integers")],
)
def test_bad_npz_files_name_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_npz(path=str(path))
    with pytest.raises(ValueError, match="does not exist"):
        load_npz(path=str(tmp_path / "missing.npz"))


def make_loaders():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    def loader(n):
        return DataLoader(TensorDataset(torch.randn(n, 1, 8, 8), torch.arange(n) % 10),
                          batch_size=16)

    return {"train": loader(100), "val": loader(30), "test": loader(30)}


def test_a_factory_of_torch_loaders_is_streamed_not_gathered():
    data = DATASETS.resolve("loaders")(factory=f"{__name__}:make_loaders")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert not hasattr(data, "x_train")  # nothing was gathered into arrays
    assert data.describe()["sizes"] == {"train": 100, "val": 30, "test": 30}
    train = data.loader("train")
    assert isinstance(train, torch.utils.data.DataLoader)  # the user's own loader
    assert sum(len(y) for _, y in train) == 100 == sum(len(y) for _, y in train)  # per epoch
    check_dataset(data)
