"""The elastic mobilenet supernet: exact extraction, channel sorting, training, resume."""

import math
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from nascompress.compression.plan import CompressionPlan  # noqa: E402
from nascompress.models.mobilenet import MobileNet  # noqa: E402
from nascompress.spaces import ImageCNNSpace, MobileNetSpace  # noqa: E402
from nascompress.supernet import training  # noqa: E402
from nascompress.supernet.training import (  # noqa: E402
    CHECKPOINT_FILE,
    SUPERNET_FILE,
    SupernetOptions,
    fingerprint,
    train_supernet,
)
from nascompress.training import Precision  # noqa: E402
from tests.supernet._helpers import random_params, with_batchnorm_statistics  # noqa: E402

SHAPE = (1, 8, 8)


def tiny_space(**dimensions):
    return MobileNetSpace(stages=[(8, 1), (16, 2)], max_depth=2, stem_channels=8,
                          head_channels=16, dimensions={
                              "quant/bits": {"type": "categorical", "choices": [4, 8, 32]},
                              "quant/scheme": {"type": "categorical",
                                               "choices": ["symmetric", "affine"]},
                              **dimensions})


def randomized(net):
    """Non-trivial BatchNorm statistics and kernel transforms (fresh ones are identities)."""
    with_batchnorm_statistics(net)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if ".transforms." in name:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=gen))
    return net.eval()


def crash_after_epoch(monkeypatch, epoch: int, saves: list):
    """Make the supernet's checkpoint writer raise right after it wrote ``epoch`` (each
    written epoch is appended to ``saves``); returns the real writer, to restore."""
    real_save = training._save_atomic

    def save_then_crash(path, payload):
        real_save(path, payload)
        saves.append(payload.get("epoch"))
        if payload.get("epoch") == epoch:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(training, "_save_atomic", save_then_crash)
    return real_save


def test_the_space_declares_its_elastic_keys_and_others_do_not():
    space = tiny_space()
    keys = space.elastic_dimensions()
    assert "arch/width_mult" in keys and "quant/bits" in keys and "prune/ratio" not in keys
    assert ImageCNNSpace().elastic_dimensions() == ()
    with pytest.raises(NotImplementedError, match="does not support weight sharing"):
        ImageCNNSpace().build_supernet(input_shape=SHAPE, num_classes=10)


@pytest.mark.parametrize("epochs", [2, 3, 5, 10, 21])
def test_progressive_shrinking_trains_every_dimension_by_the_last_epoch(epochs):
    # Five groups (kernel, depth, expand, width and se, bits and scheme): with fewer
    # epochs than groups after warm-up the bits used to stay at their largest for good.
    net = tiny_space().build_supernet(input_shape=SHAPE, num_classes=10)
    options = SupernetOptions(epochs=epochs, warmup_epochs=1, progressive=True)
    unlocked = [training.unlocked_keys(net.choices, epoch=e, options=options)
                for e in range(epochs)]
    assert unlocked[0] == []
    assert unlocked[-1] == list(net.choices)
    if epochs > 2:  # one epoch after warm-up is the full space at once
        assert unlocked[1] and all(k.endswith("/kernel") for k in unlocked[1])
    # Stages only ever add keys.
    assert all(set(a) <= set(b) for a, b in zip(unlocked, unlocked[1:], strict=False))
    if epochs == 21:  # enough epochs: five equal stages of four, the full space included
        assert unlocked[-5] != unlocked[-4] == unlocked[-1]


@pytest.mark.parametrize("seed", range(6))
def test_an_extracted_subnet_is_a_smaller_real_model_with_the_supernets_output(seed):
    space = tiny_space()
    net = randomized(space.build_supernet(input_shape=SHAPE, num_classes=10))
    params = random_params(space, seed)
    x = torch.randn(5, *SHAPE)
    net.set_active(params)
    expected = net(x)
    model = net.extract(params).eval()
    assert type(model) is MobileNet
    reference = space.build_model(params, input_shape=SHAPE, num_classes=10)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    assert (sum(p.numel() for p in model.parameters())
            <= sum(p.numel() for p in net.parameters()))
    # The supernet fake-quantizes with the plan's own quantizer: the shipped weights agree.
    plan = CompressionPlan.from_params(params)
    layer_bits = plan.layer_bits(model)
    if plan.quantized_layers(layer_bits):
        plan.finalize_(model, layer_bits)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_sorting_channels_keeps_the_largest_network_and_orders_by_importance():
    space = tiny_space()
    net = randomized(space.build_supernet(input_shape=SHAPE, num_classes=10))
    x = torch.randn(4, *SHAPE)
    net.set_active(net.largest())
    before = net(x)
    net.sort_channels_()
    assert torch.allclose(net(x), before, atol=1e-5)
    block = net.stages[1][0]
    importance = block.project.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_training_checkpoints_every_epoch_and_resumes_after_a_crash(tmp_path, monkeypatch,
                                                                    digits_small):
    torch.set_num_threads(1)
    space = tiny_space()
    options = SupernetOptions(epochs=3, warmup_epochs=1, batch_size=64, bn_batches=1)
    saves = []
    real_save = crash_after_epoch(monkeypatch, 2, saves)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(space, digits_small, options=options, seed=0, directory=tmp_path,
                       stream=None)
    assert saves == [1, 2] and not (tmp_path / SUPERNET_FILE).exists()
    monkeypatch.setattr(training, "_save_atomic", real_save)
    result = train_supernet(space, digits_small, options=options, seed=0,
                            directory=tmp_path, stream=None)
    assert result.resumed_from == 2
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert (tmp_path / CHECKPOINT_FILE).exists() and result.path.exists()
    # Finished: the same settings reuse it; other settings would train afresh.
    again = train_supernet(space, digits_small, options=options, seed=0,
                           directory=tmp_path, stream=None)
    assert again.seconds == 0.0 and again.history == result.history
    net = training.load_supernet(result.path, space, digits_small)
    assert training.load_supernet(result.path, space, digits_small) is net


@pytest.mark.parametrize("precision", [Precision("bf16"), Precision("fp16", scaler=True)],
                         ids=["bf16", "fp16"])
def test_mixed_precision_steps_train_checkpoint_and_resume(tmp_path, monkeypatch,
                                                          digits_small, precision):
    """The arithmetic of the CUDA path (autocast; fp16's grad scaler and its state in the
    checkpoint), run on the CPU, which autocasts too."""
    torch.set_num_threads(1)
    monkeypatch.setattr("nascompress.training.recipe.select_precision",
                        lambda device, amp: precision)
    space = tiny_space()
    options = SupernetOptions(epochs=2, warmup_epochs=1, batch_size=64, bn_batches=1)
    real_save = crash_after_epoch(monkeypatch, 1, [])
    with pytest.raises(KeyboardInterrupt):
        train_supernet(space, digits_small, options=options, seed=0, directory=tmp_path,
                       stream=None)
    first = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert (first["scaler"] is not None) == precision.scaler
    monkeypatch.setattr(training, "_save_atomic", real_save)
    result = train_supernet(space, digits_small, options=options, seed=0,
                            directory=tmp_path, stream=None)
    assert result.resumed_from == 1
    assert [(h["precision"], h["device"]) for h in result.history] == [
        (precision.name, "cpu")] * 2
    assert all(math.isfinite(h["loss"]) for h in result.history)
    # The sandwich epoch trained (a skipped or broken step would leave it untrained).
    assert result.history[-1]["val_accuracy_largest"] > 0.35  # chance: 0.1; fp32: 0.52


def test_a_gpu_asked_for_where_there_is_none_is_refused_before_training(tmp_path,
                                                                        monkeypatch,
                                                                        digits_small):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    options = SupernetOptions(epochs=1, warmup_epochs=0, batch_size=64, bn_batches=1,
                              device="cuda")
    with pytest.raises(ValueError, match=r"^evaluator.prepare_device is 'cuda', but torch "
                                         r"sees no GPU"):
        train_supernet(tiny_space(), digits_small, options=options, seed=0,
                       directory=tmp_path, stream=None)
    assert not any(tmp_path.iterdir())
    result = train_supernet(tiny_space(), digits_small, options=replace(options, device="auto"),
                            seed=0, directory=tmp_path, stream=None)
    assert [(h["device"], h["precision"]) for h in result.history] == [("cpu", "fp32")]


def test_where_and_in_what_arithmetic_it_trains_leave_the_checkpoint_resumable(digits_small):
    space = tiny_space()
    base = SupernetOptions(epochs=3)
    key = fingerprint(space, digits_small, base, 0)
    moved = replace(base, device="cpu", amp="off", workers=2, threads=4)
    assert fingerprint(space, digits_small, moved, 0) == key
    assert fingerprint(space, digits_small, replace(base, epochs=4), 0) != key


def test_bn_recalibration_uses_the_batches_asked_for(digits_small):
    space = tiny_space()
    net = space.build_supernet(input_shape=SHAPE, num_classes=10)
    model = net.extract(net.smallest())
    used = training.recalibrate_bn(model, digits_small.loader("train", batch_size=16),
                                   batches=3)
    assert used == 3 and not model.training
    assert int(model.stem[1].num_batches_tracked) == 3


@pytest.mark.ray
def test_two_ray_train_workers_train_the_supernet_data_parallel(ray_session, tmp_path,
                                                                 digits_small):
    pytest.importorskip("ray.train")
    space = tiny_space()
    options = SupernetOptions(epochs=2, warmup_epochs=1, batch_size=32, bn_batches=1,
                              workers=2)
    result = train_supernet(space, digits_small, options=options, seed=0,
                            directory=tmp_path, stream=None)
    assert [h["epoch"] for h in result.history] == [1, 2]
    batches = -(-len(digits_small.y_train) // 32)
    # Each of the 2 workers took every other batch; together they saw the epoch (the
    # odd last batch is dropped so that both take the same number of steps).
    assert all(h["images"] >= (batches // 2 * 2 - 1) * 32 for h in result.history)
    assert result.path.exists() and (tmp_path / CHECKPOINT_FILE).exists()
    net = training.load_supernet(result.path, space, digits_small)
    model = net.extract(net.largest())
    assert model(torch.zeros(2, *SHAPE)).shape == (2, 10)
    # Workers do not change the fingerprint: one worker with the same settings reuses
    # the finished file instead of training again.
    single = SupernetOptions(epochs=2, warmup_epochs=1, batch_size=32, bn_batches=1)
    assert train_supernet(space, digits_small, options=single, seed=0, directory=tmp_path,
                          stream=None).seconds == 0.0


@pytest.mark.ray
def test_more_workers_than_the_cluster_holds_is_one_line_before_training(ray_session,
                                                                         tmp_path, digits_small):
    options = SupernetOptions(epochs=1, warmup_epochs=0, batch_size=32, workers=3)
    with pytest.raises(ValueError, match=r"evaluator.workers=3 needs 3 CPUs .* has 2"):
        train_supernet(tiny_space(), digits_small, options=options, seed=0,
                       directory=tmp_path, stream=None)
    assert not (tmp_path / CHECKPOINT_FILE).exists()
