import dataclasses
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nascompress.compression import PruningReport, enable_qat, prune_channels  # noqa: E402


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
    )


@pytest.fixture
def x():
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_half_ratio_removes_channels_and_flatten_linear_follows(x):
    model = tiny_cnn()
    before = n_params(model)
    report = prune_channels(model, x, ratio=0.5)

    assert isinstance(report, PruningReport)
    assert model[0].out_channels == 4 and model[1].num_features == 4
    assert model[4].in_channels == 4 and model[4].out_channels == 4
    # Flatten -> Linear: each pruned channel removes its 2x2 spatial block of inputs.
    assert model[9].in_features == 4 * 2 * 2
    assert model[9].out_features == 10  # classifier kept by default
    assert model(x).shape == (4, 10)
    assert report.params_before == before
    assert report.params_after == n_params(model) < before
    assert report.macs_after < report.macs_before
    assert report.channels == {"0": [8, 4], "4": [8, 4], "9": [10, 10]}
    assert json.loads(json.dumps(dataclasses.asdict(report)))["ratio"] == 0.5


def test_zero_ratio_leaves_model_untouched(x):
    model = tiny_cnn()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = prune_channels(model, x, ratio=0.0)
    assert report.params_before == report.params_after == n_params(model)
    assert report.macs_before == report.macs_after
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_l1_prunes_the_weakest_channels(x):
    model = tiny_cnn()
    with torch.no_grad():
        # Channels 0-3 of the first block carry nothing anywhere in their group.
        model[0].weight[:4] = 0.0
        model[1].weight[:4] = 0.0
        model[1].bias[:4] = 0.0
        model[4].weight[:, :4] = 0.0
    kept = model[0].weight[4:].detach().clone()
    prune_channels(model, x, ratio=0.5, importance="l1")
    assert torch.equal(model[0].weight, kept)


def test_report_ops_do_not_depend_on_batch_size(x):
    a = prune_channels(tiny_cnn(), x[:1], ratio=0.5)
    b = prune_channels(tiny_cnn(), x, ratio=0.5)
    assert (a.macs_before, a.macs_after) == (b.macs_before, b.macs_after)


@pytest.mark.parametrize("ratio", [0.9, 0.99])
def test_high_ratio_keeps_one_channel_per_layer(x, ratio):
    # Plain torch-pruning rounds 8 * 0.1 down to zero kept channels and then prunes nothing.
    model = tiny_cnn()
    report = prune_channels(model, x, ratio=ratio)
    assert model[0].out_channels == 1 and model[4].out_channels == 1
    assert report.channels["0"] == [8, 1]
    assert model(x).shape == (4, 10)


def test_float_noise_in_ratio_does_not_change_counts(x):
    model = nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU(), nn.Flatten(), nn.Linear(360, 10))
    # 10 * (1 - 0.7) == 3.0000000000000004; 0.7000000000000001 must keep 3 as well.
    prune_channels(model, torch.randn(1, 1, 8, 8), ratio=0.7000000000000001,
                   ignored_layers=[model[3]])
    assert model[0].out_channels == 3


def test_global_pruning_and_l2_shrink_the_model(x):
    model = tiny_cnn()
    report = prune_channels(model, x, ratio=0.5, importance="l2", global_pruning=True)
    assert report.importance == "l2"
    assert report.params_after < report.params_before
    assert sum(after for _, after in report.channels.values()) < 26
    assert model(x).shape == (4, 10)


def test_explicit_ignored_layers_replace_the_default(x):
    model = tiny_cnn()
    prune_channels(model, x, ratio=0.5, ignored_layers=[model[0], model[9]])
    assert model[0].out_channels == 8
    assert model[4].out_channels == 4


def test_modes_and_frozen_flags_are_restored(x):
    model = tiny_cnn()
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    prune_channels(model, x, ratio=0.5)
    assert model.training and model[4].training and not model[1].training
    assert not model[0].weight.requires_grad
    assert model[4].weight.requires_grad


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, math.nan])
def test_bad_ratio_raises(x, ratio):
    with pytest.raises(ValueError, match="ratio"):
        prune_channels(tiny_cnn(), x, ratio=ratio)


def test_unknown_importance_lists_options(x):
    with pytest.raises(ValueError, match=r"importance.*'l1', 'l2'"):
        prune_channels(tiny_cnn(), x, ratio=0.5, importance="taylor")


def test_parametrized_model_is_refused(x):
    model = tiny_cnn()
    enable_qat(model, bits=8)
    with pytest.raises(ValueError, match="parametrization"):
        prune_channels(model, x, ratio=0.5)
