"""The built-in recipe: defaults are the old trainer exactly; options; GPU choices."""

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from nascompress.data import ArrayLoader  # noqa: E402
from nascompress.settings import SettingError  # noqa: E402
from nascompress.training import (  # noqa: E402
    Precision,
    Recipe,
    select_channels_last,
    select_precision,
    select_prepare_device,
    train_epochs,
)
from nascompress.training.loop import make_optimizer  # noqa: E402


def _data(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_the_default_recipe_is_the_old_adam_cosine_loop_bit_for_bit():
    x, y = _data()
    ours, theirs = _model(), _model()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    train_epochs(ours, ArrayLoader(x, y, batch_size=16, shuffle=True, generator=g1),
                 epochs=3, lr=0.01)
    # The loop every search ran before recipes existed.
    optimizer = torch.optim.Adam(theirs.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 3 * 4)
    for _ in range(3):
        theirs.train()
        order = torch.randperm(len(x), generator=g2)
        for start in range(0, len(x), 16):
            idx = order[start:start + 16]
            loss = F.cross_entropy(theirs(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_sgd_nesterov_weight_decay_and_adamw_are_built_as_asked():
    params = list(_model().parameters())
    sgd = make_optimizer(Recipe(optimizer="sgd", momentum=0.8, nesterov=True,
                                          weight_decay=5e-4), params, 0.1)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8
    assert sgd.defaults["weight_decay"] == 5e-4
    adamw = make_optimizer(Recipe(optimizer="adamw", weight_decay=0.05), params, 1e-3)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05


def test_warmup_then_cosine_and_constant_schedules():
    x, y = _data(40)
    seen = []

    def record_lr(model):
        def hook():
            seen.append(optimizers[-1].param_groups[0]["lr"])
        return hook

    optimizers = []
    original = torch.optim.Adam.__init__

    def capture(self, *args, **kwargs):
        original(self, *args, **kwargs)
        optimizers.append(self)

    model = _model()
    torch.optim.Adam.__init__ = capture
    try:
        train_epochs(model, ArrayLoader(x, y, batch_size=10), epochs=4, lr=1.0,
                     recipe=Recipe(warmup_epochs=1), on_batch_end=record_lr(model))
    finally:
        torch.optim.Adam.__init__ = original
    # lr after each step: a ramp over the 4 warm-up steps (the first ran at 0.25), then a
    # cosine over the 12 others.
    assert seen[:5] == pytest.approx([0.5, 0.75, 1.0, 1.0,
                                      0.5 * (1 + math.cos(math.pi / 12))])
    assert seen[-1] == pytest.approx(0.0, abs=1e-12)
    seen.clear()
    torch.optim.Adam.__init__ = capture
    try:
        train_epochs(_model(), ArrayLoader(x, y, batch_size=10), epochs=2, lr=0.3,
                     recipe=Recipe(schedule="constant"), on_batch_end=record_lr(None))
    finally:
        torch.optim.Adam.__init__ = original
    assert seen == [0.3] * 8


def test_label_smoothing_changes_training_and_zero_is_plain_cross_entropy():
    x, y = _data()
    runs = {}
    for smoothing in (0.0, 0.2):
        model = _model()
        train_epochs(model, ArrayLoader(x, y, batch_size=16), epochs=2, lr=0.05,
                     recipe=Recipe(label_smoothing=smoothing))
        runs[smoothing] = torch.cat([p.flatten() for p in model.parameters()])
    assert not torch.equal(runs[0.0], runs[0.2])


def test_cpu_training_ignores_amp_and_reports_its_throughput():
    x, y = _data()
    stats = train_epochs(_model(), ArrayLoader(x, y, batch_size=16), epochs=2, lr=0.01,
                         recipe=Recipe(amp="fp16", channels_last="auto"))
    assert stats.precision == "fp32" and not stats.channels_last
    assert stats.images == 100 and stats.images_per_s > 0


@pytest.mark.parametrize(("device", "amp", "bf16", "expected"), [
    ("cpu", "auto", True, Precision("fp32", False)),
    ("cpu", "bf16", True, Precision("fp32", False)),
    ("cuda", "auto", True, Precision("bf16", False)),
    ("cuda", "auto", False, Precision("fp16", True)),
    ("cuda", "fp16", True, Precision("fp16", True)),
    ("cuda:1", "bf16", True, Precision("bf16", False)),
    ("cuda", "off", True, Precision("fp32", False)),
])
def test_mixed_precision_is_chosen_per_device(device, amp, bf16, expected):
    chosen = select_precision(device, amp, bf16_supported=bf16)
    assert chosen == expected
    assert chosen.dtype == {"fp32": None, "bf16": torch.bfloat16,
                            "fp16": torch.float16}[expected.name]


def test_bf16_on_a_gpu_without_it_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="evaluator.recipe.amp must be 'auto', 'fp16' or "
                                         "'off' on this GPU"):
        select_precision("cuda", "bf16", bf16_supported=False)


@pytest.mark.parametrize(("setting", "cuda", "expected"), [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"),
    ("cuda", True, "cuda"),
])
def test_the_driver_prepares_on_its_gpu_when_it_has_one(setting, cuda, expected):
    assert select_prepare_device(setting, cuda_available=cuda) == expected


def test_a_prepare_device_that_cannot_be_had_is_one_line_naming_the_field():
    with pytest.raises(ValueError, match=r"^evaluator.prepare_device is 'cuda', but torch "
                                         r"sees no GPU on this machine; set it to 'auto'"):
        select_prepare_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match=r"^evaluator.prepare_device must be one of "
                                         r"\('auto', 'cpu', 'cuda'\), but got 'gpu'$"):
        select_prepare_device("gpu", cuda_available=True)


@pytest.mark.parametrize(("device", "option", "rank", "expected"), [
    ("cpu", "auto", 4, False), ("cuda", "auto", 4, True), ("cuda", "auto", 2, False),
    ("cuda", False, 4, False), ("cpu", True, 4, True), ("cpu", True, 3, False),
])
def test_channels_last_is_for_image_batches_on_cuda_by_default(device, option, rank,
                                                               expected):
    assert select_channels_last(device, option, rank) is expected


@pytest.mark.parametrize(("options", "message"), [
    ({"optimizer": "rmsprop"}, "evaluator.recipe.optimizer must be 'adam', 'adamw' or 'sgd'"),
    ({"nesterov": True}, "evaluator.recipe.nesterov must be false unless optimizer is 'sgd'"),
    ({"label_smoothing": 1.0}, "evaluator.recipe.label_smoothing must be < 1, but got 1.0"),
    ({"warmup_epochs": -1}, "evaluator.recipe.warmup_epochs must be >= 0, but got -1"),
    ({"channels_last": "yes"}, "evaluator.recipe.channels_last must be 'auto', true or false"),
    ({"train": "no_colon"}, "evaluator.recipe.train must be an import path"),
    ({"amp": "fp8"}, "evaluator.recipe.amp must be"),
])
def test_bad_recipe_options_are_one_line_naming_the_field(options, message):
    with pytest.raises(SettingError, match=message) as info:
        Recipe(**options)
    assert "\n" not in str(info.value)
