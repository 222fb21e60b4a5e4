import dataclasses
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nascompress.compression import (  # noqa: E402
    artifact_bytes,
    enable_qat,
    load_artifact,
    prune_channels,
    save_artifact,
)
from nascompress.compression.lowrank import (  # noqa: E402
    LowRankReport,
    apply_lowrank_,
    factorize_conv_tucker2,
    factorize_linear,
)
from tests.compression._models import image_cnn, n_params  # noqa: E402


@pytest.fixture
def batch_size():
    return 4  # images in the x fixture of conftest.py


def test_full_rank_linear_reproduces_output():
    torch.manual_seed(0)
    layer = nn.Linear(12, 7)
    factors = factorize_linear(layer, rank=7)
    inputs = torch.randn(5, 12)
    assert [type(m) for m in factors] == [nn.Linear, nn.Linear]
    assert factors[0].bias is None and factors[1].bias is not None
    torch.testing.assert_close(factors(inputs), layer(inputs), atol=1e-4, rtol=0)


@pytest.mark.parametrize("bias", [False, True])
def test_full_rank_tucker2_reproduces_output(bias):
    torch.manual_seed(0)
    layer = nn.Conv2d(6, 20, 3, stride=2, padding=1, dilation=1, bias=bias)
    factors = factorize_conv_tucker2(layer, in_rank=6, out_rank=20)
    inputs = torch.randn(2, 6, 9, 9)
    assert [m.kernel_size for m in factors] == [(1, 1), (3, 3), (1, 1)]
    assert factors[1].stride == (2, 2) and factors[1].padding == (1, 1)
    assert (factors[2].bias is not None) == bias
    torch.testing.assert_close(factors(inputs), layer(inputs), atol=1e-4, rtol=0)


def test_full_rank_tucker2_when_out_channels_exceed_unfolding_rank():
    # c_out = 12 > c_in * k * k = 4: the output basis needs the SVD's full U.
    torch.manual_seed(0)
    layer = nn.Conv2d(1, 12, 2, bias=False)
    factors = factorize_conv_tucker2(layer, in_rank=1, out_rank=12)
    inputs = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(factors(inputs), layer(inputs), atol=1e-4, rtol=0)


def test_linear_error_decreases_with_rank():
    torch.manual_seed(0)
    layer = nn.Linear(16, 12)
    inputs = torch.randn(32, 16)
    with torch.no_grad():
        errors = [
            float((factorize_linear(layer, rank=r)(inputs) - layer(inputs)).pow(2).mean())
            for r in (1, 3, 6, 9, 12)
        ]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-8


def test_tucker2_weight_error_decreases_with_rank_and_hooi_helps():
    torch.manual_seed(0)
    layer = nn.Conv2d(8, 12, 3, padding=1, bias=False)

    def weight_error(in_rank, out_rank, hooi_iters=2):
        f = factorize_conv_tucker2(layer, in_rank=in_rank, out_rank=out_rank, hooi_iters=hooi_iters)
        rebuilt = torch.einsum(
            "qphw,pi,oq->oihw", f[1].weight, f[0].weight[:, :, 0, 0], f[2].weight[:, :, 0, 0]
        )
        return float((rebuilt - layer.weight).detach().pow(2).sum())

    errors = [weight_error(r, r + r // 2) for r in (1, 2, 4, 6, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-8
    assert weight_error(3, 4, hooi_iters=3) <= weight_error(3, 4, hooi_iters=0) + 1e-9


def test_factorization_keeps_device_dtype_mode_and_frozen_flags():
    layer = nn.Conv2d(8, 8, 3).double().eval()
    layer.weight.requires_grad_(False)
    factors = factorize_conv_tucker2(layer, in_rank=4, out_rank=4)
    assert all(p.dtype == torch.float64 and not p.requires_grad for p in factors.parameters())
    assert not factors.training


def test_apply_lowrank_shrinks_tiny_cnn_by_predicted_count(x):
    model = image_cnn(depth=2, width=16)
    before = n_params(model)
    report = apply_lowrank_(model, rank_ratio=0.5, skip_classifier=False)

    # First conv: c_in = 1 is below the Tucker-2 threshold. Second conv 16 -> 16, k = 3:
    # ranks 8 / 8 give 16*8 + 8*8*9 + 8*16 = 832 instead of 2304. Head Linear(64, 10):
    # rank round(0.5 * 10) = 5 gives 5 * (64 + 10) + 10 = 380 instead of 650.
    assert set(report.layers) == {"4", "9"}
    assert report.layers["4"] == {
        "kind": "tucker2",
        "ranks": [8, 8],
        "params_before": 2304,
        "params_after": 832,
    }
    assert report.layers["9"] == {
        "kind": "svd",
        "ranks": [5],
        "params_before": 650,
        "params_after": 380,
    }
    assert report.params_before == before
    assert report.params_after == n_params(model) == before - (2304 - 832) - (650 - 380)
    assert isinstance(model[0], nn.Conv2d)
    assert model(x).shape == (4, 10)
    json.dumps(dataclasses.asdict(report))


def test_apply_lowrank_skips_classifier_by_default(x):
    model = image_cnn(depth=2, width=16)
    report = apply_lowrank_(model, rank_ratio=0.5)
    assert set(report.layers) == {"4"}
    assert isinstance(model[9], nn.Linear)
    assert report.params_after < report.params_before
    assert model(x).shape == (4, 10)


def test_layer_that_would_not_shrink_is_left_alone():
    model = image_cnn(depth=2, width=16)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    # Full rank never saves parameters: r * (in + out) >= in * out at r = min(in, out).
    report = apply_lowrank_(model, rank_ratio=1.0, skip_classifier=False)
    assert report.layers == {}
    assert report.params_after == report.params_before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    # A narrow Linear: rank 2 of Linear(4, 3) costs 2 * 7 = 14 > 12 weights.
    narrow = nn.Sequential(nn.Linear(4, 3))
    assert apply_lowrank_(narrow, rank_ratio=0.6, skip_classifier=False).layers == {}
    assert isinstance(narrow[0], nn.Linear)


def test_skip_names_and_grouped_and_pointwise_convs_are_left_alone():
    model = nn.Sequential(
        nn.Conv2d(16, 16, 3, padding=1),
        nn.Conv2d(16, 16, 3, padding=1, groups=4),
        nn.Conv2d(16, 16, 1),
        nn.Conv2d(16, 16, 3, padding=1),
    )
    report = apply_lowrank_(model, rank_ratio=0.25, skip=["3"])
    assert set(report.layers) == {"0"}
    assert isinstance(model[0], nn.Sequential)
    assert all(isinstance(model[i], nn.Conv2d) for i in (1, 2, 3))


def test_min_rank_floors_tiny_ranks():
    model = nn.Sequential(nn.Linear(40, 30), nn.Linear(30, 2))
    report = apply_lowrank_(model, rank_ratio=0.01, min_rank=3)
    assert report.layers["0"]["ranks"] == [3]
    assert model[0][0].out_features == 3


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5, math.nan])
def test_bad_rank_ratio_raises_naming_it(ratio):
    with pytest.raises(ValueError, match="rank_ratio"):
        apply_lowrank_(image_cnn(width=16), rank_ratio=ratio)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="rank_ratio"):
        apply_lowrank_(image_cnn(width=16), rank_ratio=True)
    with pytest.raises(ValueError, match="min_rank"):
        apply_lowrank_(image_cnn(width=16), rank_ratio=0.5, min_rank=0)
    with pytest.raises(ValueError, match="nope"):
        apply_lowrank_(image_cnn(width=16), rank_ratio=0.5, skip=["nope"])
    with pytest.raises(ValueError, match="rank"):
        factorize_linear(nn.Linear(4, 3), rank=4)
    with pytest.raises(ValueError, match="out_rank"):
        factorize_conv_tucker2(nn.Conv2d(4, 4, 3), in_rank=2, out_rank=0)
    with pytest.raises(ValueError, match="groups"):
        factorize_conv_tucker2(nn.Conv2d(4, 4, 3, groups=2), in_rank=2, out_rank=2)


def test_parametrized_model_is_refused():
    model = image_cnn(width=16)
    enable_qat(model, bits=4)
    with pytest.raises(ValueError, match="parametrizations"):
        apply_lowrank_(model, rank_ratio=0.5)


def test_factorized_model_can_be_channel_pruned(x):
    model = image_cnn(depth=3, width=16)
    apply_lowrank_(model, rank_ratio=0.5, skip_classifier=False)
    report = prune_channels(model, x, ratio=0.5)
    assert report.params_after < report.params_before
    # torch-pruning follows the dependencies through the factors: rank channels shrink too.
    assert report.channels["4.0"] == [8, 4]
    assert report.channels["4.2"] == [16, 8]
    assert model(x).shape == (4, 10)


def pruned_factorized_cnn(x: torch.Tensor) -> nn.Sequential:
    model = image_cnn(depth=2, width=16)
    apply_lowrank_(model, rank_ratio=0.5, skip_classifier=False)
    prune_channels(model, x, ratio=0.25)
    return model.eval()


def test_factorized_model_exports(x):
    model = pruned_factorized_cnn(x)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


def test_factorized_model_round_trips_through_artifact(x, tmp_path):
    model = pruned_factorized_cnn(x)
    path = tmp_path / "model.nasc"
    size = save_artifact(model, path, quantized=None)
    assert size == len(artifact_bytes(model))
    # The layers chosen depend on shapes only, so the same call rebuilds the template.
    template = image_cnn(seed=1, depth=2, width=16)
    apply_lowrank_(template, rank_ratio=0.5, skip_classifier=False)
    loaded, _ = load_artifact(path, template)
    torch.testing.assert_close(loaded(x), model(x))


def test_report_is_a_dataclass_with_defaults():
    report = LowRankReport(rank_ratio=0.5, params_before=3, params_after=2)
    assert report.layers == {}
