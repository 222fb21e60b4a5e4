import pytest

torch = pytest.importorskip("torch")
import numpy as np  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from nascompress.compression import (  # noqa: E402
    QuantizedWeight,
    calibrate_scale,
    dequantize_tensor,
    enable_qat,
    finalize_quantization,
    quantizable_modules,
    quantize_tensor,
)


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
    return torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def weight():
    # Heavy tails make clipping worthwhile, as in real layers.
    g = torch.Generator().manual_seed(2)
    return torch.randn(6, 5, 3, 3, generator=g) ** 3


def test_quantizable_modules_are_conv_and_linear_in_order():
    model = nn.Sequential(nn.Conv1d(2, 3, 1), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(3, 2))
    assert [(name, type(m)) for name, m in quantizable_modules(model)] == [
        ("0", nn.Conv1d),
        ("3", nn.Linear),
    ]
    assert [name for name, _ in quantizable_modules(tiny_cnn())] == ["0", "4", "9"]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_codes_in_range_and_error_within_half_step(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    scale = calibrate_scale(weight, bits)
    codes = quantize_tensor(weight, scale, bits)
    assert scale.shape == (6,) and scale.dtype == torch.float32 and bool((scale > 0).all())
    assert codes.dtype == torch.int8 and codes.shape == weight.shape
    assert int(codes.abs().max()) <= qmax
    s = scale[:, None, None, None]
    err = (dequantize_tensor(codes, scale) - weight).abs()
    inside = weight.abs() <= qmax * s
    assert bool(((err <= s / 2 + 1e-6) | ~inside).all())
    assert bool(inside.float().mean() > 0.9)  # the bound is checked on most values


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_calibration_beats_max_abs_scaling(weight, bits):
    qmax = 2 ** (bits - 1) - 1

    def sq_error(scale):
        fake = dequantize_tensor(quantize_tensor(weight, scale, bits), scale)
        return ((fake - weight) ** 2).flatten(1).sum(1)

    max_abs_scale = weight.abs().flatten(1).amax(1) / qmax
    calibrated, naive = sq_error(calibrate_scale(weight, bits)), sq_error(max_abs_scale)
    assert bool((calibrated <= naive + 1e-6).all())
    if bits <= 4:
        assert float(calibrated.sum()) < float(naive.sum())


def test_zero_channel_gets_unit_scale_and_zero_codes():
    w = torch.zeros(2, 3)
    w[1] = torch.tensor([0.5, -1.0, 0.25])
    scale = calibrate_scale(w, 4)
    assert scale[0] == 1.0
    assert torch.equal(quantize_tensor(w, scale, 4)[0], torch.zeros(3, dtype=torch.int8))


def test_wide_codes_use_int16():
    w = torch.randn(3, 4)
    scale = calibrate_scale(w, 12)
    codes = quantize_tensor(w, scale, 12)
    assert codes.dtype == torch.int16 and int(codes.abs().max()) <= 2047


def test_bad_scale_shape_raises(weight):
    with pytest.raises(ValueError, match="scale"):
        quantize_tensor(weight, torch.ones(5), 4)


def test_eight_bits_barely_change_outputs(x):
    model = tiny_cnn().eval()
    reference = model(x).detach()
    result = finalize_quantization(model, bits=8)
    out = model(x).detach()
    assert set(result) == {"0", "4", "9"}
    assert (out - reference).abs().max() < 0.01 * reference.abs().max()
    assert out.argmax(1).tolist() == reference.argmax(1).tolist()


def test_finalize_writes_dequantized_weights(x):
    model = tiny_cnn()
    result = finalize_quantization(model, bits=3)
    for name, module in quantizable_modules(model):
        qw = result[name]
        assert isinstance(qw, QuantizedWeight) and qw.bits == 3
        assert int(qw.codes.abs().max()) <= 3
        assert torch.equal(module.weight.detach(), qw.dequantize())
    assert model[9].bias.dtype == torch.float32
    # 3-bit weights take at most 7 distinct values per output channel.
    assert all(len(torch.unique(row)) <= 7 for row in model[4].weight.detach().flatten(1))


def test_qat_trains_through_the_fake_quantizer(x):
    model = tiny_cnn()
    latent = model[4].weight
    enable_qat(model, bits=4)
    assert parametrize.is_parametrized(model[4], "weight")
    assert model[4].parametrizations.weight.original is latent  # optimizers stay valid
    # The weight the forward pass sees sits on the 4-bit grid of the calibrated scale.
    scale = calibrate_scale(latent.detach(), 4)
    steps = model[4].weight.detach() / scale[:, None, None, None]
    assert torch.allclose(steps, steps.round(), atol=1e-4)

    before = latent.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), torch.arange(16) % 10)
    loss.backward()
    assert latent.grad is not None and float(latent.grad.abs().sum()) > 0  # STE passes grads
    optimizer.step()
    assert not torch.equal(latent.detach(), before)


def test_finalize_after_qat_removes_parametrizations_and_matches_qat_outputs(x):
    model = tiny_cnn()
    enable_qat(model, bits=4)
    enable_qat(model, bits=3)  # replaces, does not stack
    assert len(model[0].parametrizations.weight) == 1
    model.eval()
    qat_out = model(x).detach()
    keys = set(tiny_cnn().state_dict())
    result = finalize_quantization(model, bits=3)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert set(model.state_dict()) == keys
    assert all(qw.bits == 3 for qw in result.values())
    assert torch.allclose(model(x), qat_out, atol=1e-6)


@pytest.mark.parametrize("bits", [0, 1, 9, 33])
def test_bad_bits_raise_value_error(bits):
    with pytest.raises(ValueError, match="bits"):
        finalize_quantization(tiny_cnn(), bits=bits)
    with pytest.raises(ValueError, match="bits"):
        enable_qat(tiny_cnn(), bits=bits)


def test_bits_type_checked_but_numpy_ints_accepted():
    with pytest.raises(TypeError, match="bits"):
        finalize_quantization(tiny_cnn(), bits=4.0)
    with pytest.raises(TypeError, match="bits"):
        finalize_quantization(tiny_cnn(), bits=True)
    assert finalize_quantization(tiny_cnn(), bits=np.int64(4))["0"].bits == 4
