"""A search over user loaders: bad batches and bad hooks stop it before compute; a user
training function that raises fails its trial, and the search goes on."""

import json

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from nascompress.config import ConfigError, parse_config  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.local import run_local  # noqa: E402

KIND = {"value": "good"}


def loaders(kind="good"):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=g)
    y = torch.arange(96) % 4
    if kind == "nan":
        x[5, 0, 2, 2] = float("nan")
    if kind == "label":
        y[3] = 7
    if kind == "shape":
        x = x[:, :, :6]

    def make(n):
        return DataLoader(TensorDataset(x[:n], y[:n]), batch_size=32)

    return {"train": make(96), "val": DataLoader(TensorDataset(torch.rand(32, 1, 8, 8),
                                                               torch.arange(32) % 4),
                                                 batch_size=32),
            "test": make(64)}


def session_name(session):
    return session.experiment.run_name


def raising_train(ctx):
    raise RuntimeError("out of ideas")


def _config(tmp_path, *, kind="good", evaluator=None, trials=2):
    return parse_config({
        "name": f"streamed-{kind}", "trials": trials, "runner": "local", "seed": 1,
        "output_dir": str(tmp_path),
        "strategy": {"name": "random"},
        "space": {"name": "image-cnn"},
        "dataset": {"name": "loaders", "options": {
            "factory": f"{__name__}:loaders", "factory_kwargs": {"kind": kind},
            "num_classes": 4}},
        "evaluator": {"options": {
            "epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1,
            "latency": {"min_repeats": 3, "max_repeats": 5, "warmup": 1, "time_cap_s": 0.1},
            **(evaluator or {})}},
    })


@pytest.mark.parametrize(("kind", "message"), [
    ("nan", "dataset.train inputs must be finite, but got 1 NaN or infinite value"),
    ("label", r"dataset.train labels must be in \[0, 4\), but got values from 0 to 7"),
    ("shape", r"dataset.val inputs must have shape \(batch, \*\(1, 6, 8\)\), but got "
              r"\(32, 1, 8, 8\)"),
])
def test_bad_batches_are_a_config_error_naming_the_split(tmp_path, kind, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_experiment(_config(tmp_path, kind=kind))
    assert "\n" not in str(info.value)


def test_a_bad_import_path_is_a_config_error_before_compute(tmp_path):
    config = _config(tmp_path, evaluator={"recipe": {"train": "nowhere_at_all:fit"}})
    with pytest.raises(ConfigError, match="evaluator.recipe.train must be an importable"):
        build_experiment(config)


def test_a_raising_training_function_fails_its_trials_and_the_search_records_them(tmp_path):
    config = _config(tmp_path, evaluator={"recipe": {"train": f"{__name__}:raising_train"}})
    session = run_local(build_experiment(config), stream=None)
    records = session.records
    written = [json.loads(line) for line in
               (tmp_path / session_name(session) / "trials.jsonl").read_text().splitlines()]
    assert [r["state"] for r in written] == [r["state"] for r in records]  # all on disk
    assert len(records) == 2 and {r["state"] for r in records} == {"FAILED"}
    assert all("RuntimeError: out of ideas" in r["error"]
               and "evaluator.recipe.train" in r["error"] for r in records)
