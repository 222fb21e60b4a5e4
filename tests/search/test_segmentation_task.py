"""A task that is not classification: per-pixel labels, a segmentation head, the user's
metric. The runner checks only the inputs, and the whole pipeline runs."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nascompress.config import ConfigError, parse_config  # noqa: E402
from nascompress.data import DatasetSplits  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.local import run_local  # noqa: E402


def blobs(num_classes: int = 3) -> DatasetSplits:
    """8×8 images whose bright square's pixels are labelled 1 or 2 by its brightness."""
    rng = np.random.default_rng(0)
    n = 96
    x = rng.normal(0, 0.1, size=(n, 1, 8, 8)).astype(np.float32)
    y = np.zeros((n, 8, 8), dtype=np.int64)
    for i in range(n):
        r, c, cls = rng.integers(0, 5), rng.integers(0, 5), rng.integers(1, num_classes)
        x[i, 0, r:r + 3, c:c + 3] += 0.5 * cls
        y[i, r:r + 3, c:c + 3] = cls
    return DatasetSplits("blobs", x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:],
                         num_classes=num_classes)


def segmenter(num_classes: int = 3):
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.Conv2d(16, num_classes, 1))


def pixel_accuracy(model, loader, device):
    hits = total = 0
    with torch.no_grad():
        for inputs, labels in loader:
            predicted = model(torch.as_tensor(inputs).to(device)).argmax(dim=1).cpu()
            hits += int((predicted == torch.as_tensor(labels)).sum())
            total += torch.as_tensor(labels).numel()
    return hits / total


def _config(tmp_path, **evaluator):
    return parse_config({
        "trials": 3, "runner": "local", "seed": 1, "output_dir": str(tmp_path),
        "name": "seg", "strategy": {"name": "random"},
        "dataset": {"name": f"{__name__}:blobs"},
        "space": {"name": "user-model", "options": {"model": f"{__name__}:segmenter"},
                  "dimensions": {"distill/alpha": {"type": "categorical", "choices": [0.0]},
                                 "distill/feature_weight": {"type": "categorical",
                                                            "choices": [0.0]}}},
        "evaluator": {"options": {
            "epochs": 15, "finetune_epochs": 2, "teacher_epochs": 1, "batch_size": 16,
            **evaluator,
            "latency": {"min_repeats": 3, "max_repeats": 10, "warmup": 1,
                        "time_cap_s": 0.2}}},
    })


def test_a_segmentation_task_with_a_user_metric_is_searched_end_to_end(tmp_path):
    metric = {"function": f"{__name__}:pixel_accuracy", "name": "pixel_accuracy",
              "mode": "max", "unit": "fraction"}
    experiment = build_experiment(_config(tmp_path, metric=metric))
    assert [o.name for o in experiment.objectives][0] == "pixel_accuracy"
    session = run_local(experiment, stream=None)
    records = [json.loads(line) for line in
               (tmp_path / "seg" / "trials.jsonl").read_text().splitlines()]
    assert [r["state"] for r in records] == ["COMPLETE"] * 3, [r["error"] for r in records]
    for record in records:
        assert 0.0 <= record["objectives"]["pixel_accuracy"] <= 1.0
        artifact = tmp_path / "seg" / "models" / record["metrics"]["artifact"]
        assert artifact.stat().st_size == record["objectives"]["size_bytes"]
    # It learned the task: better than calling every pixel background.
    background = float((blobs().y_val == 0).mean())
    assert max(r["objectives"]["pixel_accuracy"] for r in records) > background
    assert session.records


def test_without_a_metric_the_same_data_is_refused_as_a_classification_task(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.train labels must have shape"):
        build_experiment(_config(tmp_path))
