import dataclasses
import importlib.util
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nascompress.compression import PruningReport, enable_qat, prune_channels  # noqa: E402
from nascompress.compression.pruning import IMPORTANCES  # noqa: E402
from nascompress.compression.sparsity import magnitude_prune_  # noqa: E402
from tests.compression._models import n_params, tiny_cnn, wide_cnn  # noqa: E402


@pytest.fixture
def batch_size():
    return 4  # images in the x fixture of conftest.py


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
    prune_channels(
        model, torch.randn(1, 1, 8, 8), ratio=0.7000000000000001, ignored_layers=[model[3]]
    )
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
    with pytest.raises(ValueError, match=r"importance.*'l1', 'l2', 'taylor', 'fpgm'.*'bogus'"):
        prune_channels(tiny_cnn(), x, ratio=0.5, importance="bogus")


def test_parametrized_model_is_refused(x):
    model = tiny_cnn()
    enable_qat(model, bits=8)
    with pytest.raises(ValueError, match="parametrization"):
        prune_channels(model, x, ratio=0.5)


# --- criteria, iterative schedule, per-layer ratios -------------------------------------


@pytest.mark.parametrize("importance", IMPORTANCES)
def test_every_criterion_prunes_and_keeps_the_model_runnable(x, calibration, importance):
    model = wide_cnn()
    report = prune_channels(model, x, ratio=0.5, importance=importance, calibration=calibration)
    assert report.importance == importance
    assert report.channels == {"0": [8, 4], "4": [16, 8], "9": [10, 10]}
    assert report.params_after == n_params(model) < report.params_before
    assert report.macs_after < report.macs_before
    assert model(x).shape == (4, 10)
    assert all(p.grad is None for p in model.parameters())  # no calibration gradients left


def test_taylor_without_calibration_names_the_parameter(x):
    with pytest.raises(ValueError, match="calibration"):
        prune_channels(wide_cnn(), x, ratio=0.5, importance="taylor")


def test_malformed_calibration_is_refused(x):
    with pytest.raises(ValueError, match="calibration"):
        prune_channels(
            wide_cnn(),
            x,
            ratio=0.5,
            importance="taylor",
            calibration=(x, torch.zeros(3, dtype=torch.long)),
        )


def _flat_downstream(model: nn.Sequential) -> None:
    # Equal next-layer weights for every channel of block 1, so its group importance is
    # decided by the first conv's filters alone (BatchNorm scales are all 1 already).
    with torch.no_grad():
        model[4].weight.fill_(0.1)


def test_l1_removes_the_filters_with_the_smallest_l1_norm(x):
    model = wide_cnn()
    _flat_downstream(model)
    scales = torch.tensor([5.0, 1.0, 7.0, 2.0, 8.0, 3.0, 6.0, 4.0])
    with torch.no_grad():
        model[0].weight.copy_(torch.sign(model[0].weight) * scales.view(8, 1, 1, 1))
    expected = model[0].weight[[0, 2, 4, 6]].detach().clone()  # L1 norms 45, 63, 72, 54
    prune_channels(model, x, ratio=0.5, importance="l1")
    assert torch.equal(model[0].weight, expected)


def _redundant_filters(model: nn.Sequential) -> None:
    """Filters 0-3: four copies of one large filter; 4-7: small, distinct one-hot filters.

    L1 keeps the large copies. FPGM sums each filter's distance to the others: a copy sits
    at distance 0 from three of them, so the copies are the most replaceable and go.
    """
    _flat_downstream(model)
    with torch.no_grad():
        weight = torch.zeros(8, 1, 3, 3)
        weight[:4] = 1.0
        for i in range(4):
            weight[4 + i].view(-1)[2 * i] = 0.5
        model[0].weight.copy_(weight)


def test_fpgm_and_l1_disagree_on_redundant_filters(x):
    l1_model, fpgm_model = wide_cnn(), wide_cnn()
    _redundant_filters(l1_model)
    _redundant_filters(fpgm_model)
    original = l1_model[0].weight.detach().clone()
    prune_channels(l1_model, x, ratio=0.5, importance="l1")
    prune_channels(fpgm_model, x, ratio=0.5, importance="fpgm")
    assert torch.equal(l1_model[0].weight, original[:4])
    assert torch.equal(fpgm_model[0].weight, original[4:])


def test_taylor_removes_channels_the_loss_does_not_see(x, calibration):
    model = wide_cnn()
    with torch.no_grad():
        # Channels 0-3 have the largest filters but feed nothing downstream: zero gradient,
        # zero Taylor score, while magnitude would keep them.
        model[0].weight[:4] *= 100.0
        model[4].weight[:, :4] = 0.0
    kept = model[0].weight[4:].detach().clone()
    prune_channels(model, x, ratio=0.5, importance="taylor", calibration=calibration)
    assert torch.equal(model[0].weight, kept)


def test_iterative_pruning_calls_finetune_after_every_step_and_matches_one_shot(x):
    one_shot = wide_cnn()
    report_one = prune_channels(one_shot, x, ratio=0.7)

    seen = []

    def finetune(model, step):
        seen.append((step, model[0].out_channels, model[4].out_channels, model.training))
        # A real update: the optimizer is built here because pruning replaced the parameters.
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss = model(x).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    model = wide_cnn()
    model.train()
    report = prune_channels(model, x, ratio=0.7, iterative_steps=3, finetune=finetune)

    assert [s[0] for s in seen] == [1, 2, 3]  # after each step, the last one included
    assert [s[1:3] for s in seen] == [(6, 12), (4, 8), (2, 4)]
    assert all(s[3] for s in seen)  # training mode restored for fine-tuning
    assert report.channels == report_one.channels == {"0": [8, 2], "4": [16, 4], "9": [10, 10]}
    assert report.iterative_steps == 3 and report_one.iterative_steps == 1
    assert model(x).shape == (4, 10)


def test_iterative_taylor_recomputes_gradients_each_step(x, calibration):
    steps = []
    model = wide_cnn()
    prune_channels(
        model,
        x,
        ratio=0.5,
        importance="taylor",
        calibration=calibration,
        iterative_steps=2,
        finetune=lambda m, step: steps.append(step),
    )
    assert steps == [1, 2]
    assert model[0].out_channels == 4 and model[4].out_channels == 8


def test_finetune_that_adds_parametrizations_is_caught(x):
    def finetune(model, step):
        enable_qat(model, bits=8)

    with pytest.raises(ValueError, match="parametrization"):
        prune_channels(wide_cnn(), x, ratio=0.5, iterative_steps=2, finetune=finetune)


@pytest.mark.parametrize("steps", [0, -1])
def test_bad_iterative_steps_raise(x, steps):
    with pytest.raises(ValueError, match="iterative_steps"):
        prune_channels(wide_cnn(), x, ratio=0.5, iterative_steps=steps)


def test_non_callable_finetune_raises(x):
    with pytest.raises(TypeError, match="finetune"):
        prune_channels(wide_cnn(), x, ratio=0.5, finetune="yes")


def test_layer_ratios_override_the_uniform_ratio(x):
    model = wide_cnn()
    report = prune_channels(model, x, ratio=0.25, layer_ratios={"4": 0.75})
    assert report.channels == {"0": [8, 6], "4": [16, 4], "9": [10, 10]}
    assert report.layer_ratios == {"4": 0.75}
    assert model(x).shape == (4, 10)


def test_layer_ratios_alone_prune_only_the_named_layers(x):
    report = prune_channels(wide_cnn(), x, ratio=0.0, layer_ratios={"4": 0.5})
    assert report.channels == {"0": [8, 8], "4": [16, 8], "9": [10, 10]}


def test_layer_ratios_under_global_pruning(x):
    model = wide_cnn()
    report = prune_channels(model, x, ratio=0.5, global_pruning=True, layer_ratios={"0": 0.25})
    assert report.global_pruning is True
    assert report.channels["0"] == [8, 6]  # its own ranking scope
    assert report.channels["4"] == [16, 8]  # alone in the global scope
    payload = json.loads(json.dumps(dataclasses.asdict(report)))
    assert payload["global_pruning"] is True and payload["iterative_steps"] == 1


def test_global_iterative_pruning_reaches_the_total_count(x):
    model = wide_cnn()
    report = prune_channels(model, x, ratio=0.5, global_pruning=True, iterative_steps=3)
    # 24 prunable channels, 12 kept overall; how they split depends on the ranking.
    assert report.channels["0"][1] + report.channels["4"][1] == 12
    assert model(x).shape == (4, 10)


@pytest.mark.parametrize(
    ("layer_ratios", "match"),
    [
        ({"nope": 0.5}, "layer_ratios"),
        ({"1": 0.5}, "layer_ratios"),
        ({"4": 1.0}, r"layer_ratios\['4'\]"),
        ({"9": 0.5}, "ignored"),
    ],
)
def test_bad_layer_ratios_raise(x, layer_ratios, match):
    with pytest.raises(ValueError, match=match):
        prune_channels(wide_cnn(), x, ratio=0.5, layer_ratios=layer_ratios)


def test_sparsity_masks_must_be_finalized_before_channel_pruning(x):
    model = wide_cnn()
    magnitude_prune_(model, sparsity=0.5)
    with pytest.raises(ValueError, match="finalize_sparsity"):
        prune_channels(model, x, ratio=0.5)


def test_nni_importance_without_nni_says_how_to_install(x):
    if importlib.util.find_spec("nni") is not None:
        pytest.skip("nni is installed; see test_nni_pruning.py")
    with pytest.raises(ImportError, match=r"pip install 'nascompress\[nni\]'"):
        prune_channels(wide_cnn(), x, ratio=0.5, importance="nni-l1")
