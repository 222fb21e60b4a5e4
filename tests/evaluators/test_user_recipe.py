"""Streamed data, the user's training function and metric, through the evaluator."""

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

from nascompress.data import LoaderDataset, check_dataset, load_digits_splits  # noqa: E402
from nascompress.evaluators import CompressTrainEvaluator, TrialContext  # noqa: E402
from nascompress.spaces import ImageCNNSpace  # noqa: E402
from nascompress.training import UserFunctionError  # noqa: E402

FAST = {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1, "batch_size": 64,
        "latency_runtime": "torch",
        "latency": {"min_repeats": 3, "max_repeats": 5, "warmup": 1, "time_cap_s": 0.1}}
PARAMS = {"arch/depth": 1, "arch/width": 8, "arch/kernel": 3, "prune/ratio": 0.25,
          "quant/bits": 8, "distill/alpha": 0.5, "distill/temperature": 2.0}
CALLS: list[dict] = []


class Augmented(Dataset):
    """Digits with a random flip and noise on every read: the train split only."""

    def __init__(self, x, y):
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        image = self.x[i]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image + 0.05 * torch.randn_like(image), self.y[i]


def digits_loaders():
    data = load_digits_splits()

    def plain(split):
        x, y = data.arrays(split)
        return DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                          batch_size=100)

    return {"train": DataLoader(Augmented(data.x_train, data.y_train), batch_size=64,
                                shuffle=True),
            "val": plain("val"), "test": plain("test")}


def recording_train(ctx):
    """A user recipe: SGD, the pipeline's loss, checkpoints and epoch reports."""
    CALLS.append({"phase": ctx.phase, "epochs": ctx.epochs, "device": ctx.device,
                  "distilling": ctx.distill_loss is not None, "seed": ctx.seed,
                  "lr": ctx.lr, "precision": ctx.precision.name})
    optimizer = torch.optim.SGD(ctx.model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(ctx.epochs):
        ctx.model.train()
        for inputs, labels in ctx.train_loader:
            inputs, labels = ctx.to_device(inputs, labels)
            loss = ctx.loss(ctx.model(inputs), inputs, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.checkpoint()
        ctx.epoch_end(epoch)


def raising_train(ctx):
    raise ValueError("my recipe broke")


def returns_something(ctx):
    return 42


def mean_confidence(model, loader, device):
    total, count = 0.0, 0
    for inputs, _ in loader:
        probs = model(inputs.to(device)).softmax(dim=1)
        total += float(probs.max(dim=1).values.sum())
        count += len(inputs)
    return total / count


def not_a_number(model, loader, device):
    return "high"


@pytest.fixture(scope="module")
def streamed():
    data = LoaderDataset(digits_loaders(), name="digits-stream", num_classes=10)
    check_dataset(data)
    return data


def _run(evaluator, data, tmp_path, params=PARAMS, report=None):
    space = ImageCNNSpace()
    evaluator.validate()
    prepared = evaluator.prepare(space=space, dataset=data, seed=0, workdir=tmp_path)
    context = TrialContext(trial_id="t", seed=1, artifact_dir=tmp_path, shared=prepared.shared)
    kwargs = {"report": report} if report else {}
    return prepared, evaluator.evaluate(params, space=space, dataset=data, context=context,
                                        **kwargs)


def test_streamed_augmented_loaders_train_distil_and_compress_end_to_end(streamed, tmp_path):
    reports = []
    evaluator = CompressTrainEvaluator(**FAST)
    prepared, result = _run(evaluator, streamed, tmp_path,
                            report=lambda step, m: reports.append(m))
    # Streamed data has no fixed sample positions: the teacher runs on each batch.
    assert "teacher_logits_train" not in prepared.shared
    assert 0.0 <= result["accuracy"] <= 1.0 and result["accuracy"] > 0.3
    assert result["size_bytes"] == (tmp_path / result["artifact"]).stat().st_size
    assert result["train_images_per_s"] > 0 and result["finetune_images_per_s"] > 0
    assert result["train_precision"] == "fp32"
    assert [sorted(m)[-1] for m in reports] == ["val_accuracy", "val_accuracy"]


def test_a_user_training_function_runs_every_phase_with_the_pipeline_pieces(streamed,
                                                                             tmp_path):
    CALLS.clear()
    reports = []
    evaluator = CompressTrainEvaluator(
        **FAST, recipe={"function": f"{__name__}:recording_train"})
    _, result = _run(evaluator, streamed, tmp_path, report=lambda s, m: reports.append(s))
    assert [c["phase"] for c in CALLS] == ["teacher", "train", "finetune"]
    assert [c["distilling"] for c in CALLS] == [False, True, True]
    assert CALLS[1]["lr"] == evaluator.lr and CALLS[2]["lr"] == evaluator.finetune_lr
    assert {c["device"] for c in CALLS} == {"cpu"} and CALLS[1]["seed"] == 1
    assert reports == [1, 2]  # its epoch_end calls reached the trial's report
    assert result["accuracy"] > 0.3 and "train_images_per_s" not in result


def test_one_phase_can_have_its_own_function_and_in_memory_data_works_too(tmp_path):
    CALLS.clear()
    evaluator = CompressTrainEvaluator(**FAST,
                                       recipe={"finetune": f"{__name__}:recording_train"})
    _, result = _run(evaluator, load_digits_splits(), tmp_path)
    assert [c["phase"] for c in CALLS] == ["finetune"]  # the others: the built-in trainer
    assert CALLS[0]["distilling"]  # the live teacher, though the table exists
    assert "train_images_per_s" in result and "finetune_images_per_s" not in result


def test_a_raising_user_function_fails_the_trial_with_its_error(streamed, tmp_path):
    evaluator = CompressTrainEvaluator(**FAST, recipe={"train": f"{__name__}:raising_train"})
    params = {**PARAMS, "distill/alpha": 0.0}
    with pytest.raises(UserFunctionError, match=(
            r"evaluator.recipe.train '.*:raising_train' raised ValueError: my recipe broke")):
        _run(evaluator, streamed, tmp_path, params=params)
    evaluator = CompressTrainEvaluator(**FAST,
                                       recipe={"train": f"{__name__}:returns_something"})
    with pytest.raises(TypeError, match="must train ctx.model in place and return None, "
                                        "but got int"):
        _run(evaluator, streamed, tmp_path, params=params)


@pytest.mark.parametrize(("options", "message"), [
    ({"recipe": {"train": "no_such_module_xyz:fn"}},
     r"evaluator.recipe.train must be an importable function, but got "
     r"'no_such_module_xyz:fn' \(cannot import module"),
    ({"recipe": {"function": "math:pi"}},
     r"evaluator.recipe.function must be a callable, but got 'math:pi' \(a float\)"),
    ({"metric": {"function": "math:nope", "name": "m"}},
     "evaluator.metric.function must be an importable function"),
    ({"metric": {"function": "math:fsum", "name": "m", "mode": "up"}},
     "evaluator.metric.mode must be 'max' or 'min', but got 'up'"),
    ({"recipe": ["adam"]}, r"evaluator.recipe must be a mapping, but got \['adam'\]"),
])
def test_bad_hooks_are_refused_before_any_compute(options, message):
    with pytest.raises(ValueError, match=message) as info:
        CompressTrainEvaluator(**FAST, **options).validate()
    assert "\n" not in str(info.value)


def test_a_user_metric_replaces_accuracy_everywhere(tmp_path):
    reports = []
    metric = {"function": f"{__name__}:mean_confidence", "name": "confidence",
              "mode": "max", "unit": "fraction"}
    evaluator = CompressTrainEvaluator(**FAST, metric=metric)
    evaluator.validate()
    assert [o.name for o in evaluator.objectives()] == ["confidence", "size_bytes",
                                                        "latency_ms"]
    assert evaluator.objectives()[0].unit == "fraction"
    assert "val_confidence" in evaluator.intermediate_metrics()
    prepared, result = _run(evaluator, load_digits_splits(), tmp_path,
                            report=lambda s, m: reports.append(m))
    assert 0.0 < result["confidence"] <= 1.0 and "accuracy" not in result
    assert "confidence_before_compression" in result
    assert all("val_confidence" in m for m in reports)
    assert "val_confidence" in prepared.record["teacher"]
    assert evaluator.settings()["metric"]["name"] == "confidence"


def test_a_metric_returning_a_non_number_fails_the_trial(tmp_path):
    evaluator = CompressTrainEvaluator(**FAST, metric={
        "function": f"{__name__}:not_a_number", "name": "score"})
    with pytest.raises(TypeError, match=r"evaluator.metric.function '.*:not_a_number' must "
                                        r"return a finite real number, but got 'high'"):
        _run(evaluator, load_digits_splits(), tmp_path,
             params={**PARAMS, "distill/alpha": 0.0})


def test_recipe_options_are_recorded_and_change_the_result(tmp_path):
    data = load_digits_splits()
    params = {**PARAMS, "distill/alpha": 0.0}
    base = CompressTrainEvaluator(**FAST)
    sgd = CompressTrainEvaluator(**FAST, recipe={"optimizer": "sgd", "nesterov": True,
                                                 "label_smoothing": 0.1,
                                                 "warmup_epochs": 1})
    assert sgd.settings()["recipe"]["optimizer"] == "sgd"
    assert base.settings()["recipe"]["optimizer"] == "adam"
    a = _run(base, data, tmp_path / "a", params=params)[1]
    b = _run(sgd, data, tmp_path / "b", params=params)[1]
    assert a["accuracy_before_compression"] != b["accuracy_before_compression"]
