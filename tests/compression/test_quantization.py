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
from nascompress.compression.quantization import (  # noqa: E402
    ActivationFakeQuantize,
    activation_quant_params,
    calibrate_affine,
    dequantize_affine,
    dequantize_kmeans,
    disable_activation_quant,
    enable_activation_quant,
    install_activation_quant,
    kmeans_codebook,
    quantize_affine,
    quantize_kmeans,
)
from tests.compression._models import tiny_cnn  # noqa: E402


@pytest.fixture
def batch_size():
    return 16  # images in the x fixture of conftest.py


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


# -- affine --------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_affine_codes_in_range_and_error_within_half_step(weight, bits):
    levels = 2**bits - 1
    scale, zero_point = calibrate_affine(weight, bits)
    codes = quantize_affine(weight, scale, zero_point, bits)
    assert scale.shape == zero_point.shape == (6,) and zero_point.dtype == torch.int32
    assert codes.dtype == torch.uint8 and codes.shape == weight.shape
    assert int(codes.max()) <= levels and int(zero_point.min()) >= 0
    assert int(zero_point.max()) <= levels
    s = scale[:, None, None, None]
    z = zero_point[:, None, None, None].float()
    err = (dequantize_affine(codes, scale, zero_point) - weight).abs()
    inside = (weight >= -z * s) & (weight <= (levels - z) * s)
    assert bool(((err <= s / 2 + 1e-6) | ~inside).all())
    # 2 bits clip hardest (4 codes): the search trades 15% clipped tails for a finer grid.
    assert bool(inside.float().mean() > (0.8 if bits == 2 else 0.9))


def test_affine_uses_the_range_of_lopsided_channels():
    # All-positive channel: zero-point 0, and all 2**bits codes cover [0, max].
    w = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                      [-0.3, 0.0, 0.3, 0.6, 0.9, 0.0, 0.0, 0.0]])
    scale, zero_point = calibrate_affine(w, 3)
    assert int(zero_point[0]) == 0 and float(scale[0]) == pytest.approx(0.1)
    fake = dequantize_affine(quantize_affine(w, scale, zero_point, 3), scale, zero_point)
    assert torch.allclose(fake[0], w[0], atol=1e-6)  # exactly on the grid
    assert bool((fake[w == 0] == 0).all())  # 0 is exact in every channel
    sym_scale = calibrate_scale(w, 3)
    sym = dequantize_tensor(quantize_tensor(w, sym_scale, 3), sym_scale)
    assert float(((fake - w) ** 2).sum()) < float(((sym - w) ** 2).sum())


def test_affine_zero_channel_and_bad_zero_point():
    w = torch.zeros(2, 3)
    w[1] = torch.tensor([0.5, -1.0, 0.25])
    scale, zero_point = calibrate_affine(w, 4)
    assert float(scale[0]) == 1.0 and int(zero_point[0]) == 0
    with pytest.raises(ValueError, match="zero_point"):
        quantize_affine(w, scale, torch.tensor([0, 16]), 4)
    with pytest.raises(TypeError, match="zero_point"):
        quantize_affine(w, scale, torch.tensor([0.0, 1.0]), 4)


# -- k-means -------------------------------------------------------------------------------


@pytest.fixture
def gaussian():
    return torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("bits", [2, 3])
def test_kmeans_beats_symmetric_at_low_bits(gaussian, bits):
    codebook = kmeans_codebook(gaussian, bits)
    fake = dequantize_kmeans(quantize_kmeans(gaussian, codebook), codebook)
    scale = calibrate_scale(gaussian, bits)
    uniform = dequantize_tensor(quantize_tensor(gaussian, scale, bits), scale)
    assert codebook.shape == (2**bits,) and bool((codebook[1:] >= codebook[:-1]).all())
    assert len(torch.unique(fake)) <= 2**bits
    assert float(((fake - gaussian) ** 2).mean()) < float(((uniform - gaussian) ** 2).mean())
    assert torch.equal(kmeans_codebook(gaussian, bits), codebook)  # deterministic


def test_kmeans_assigns_nearest_entry_of_any_codebook_order():
    codebook = torch.tensor([0.5, -1.0, 2.0, 0.0])
    codes = quantize_kmeans(torch.tensor([[1.9, -0.7], [0.2, 0.3]]), codebook)
    assert codes.dtype == torch.uint8 and codes.tolist() == [[2, 1], [3, 0]]
    with pytest.raises(ValueError, match="codebook"):
        quantize_kmeans(torch.ones(2, 2), torch.ones(3))


def test_kmeans_keeps_pruned_zeros_and_lloyd_does_not_hurt(gaussian):
    w = gaussian.clone()
    w[w.abs() < 1.0] = 0  # about 68% zeros, as unstructured pruning leaves them
    codebook = kmeans_codebook(w, 3)
    fake = dequantize_kmeans(quantize_kmeans(w, codebook), codebook)
    assert 0.0 in codebook.tolist() and bool((fake[w == 0] == 0).all())
    start = kmeans_codebook(w, 3, iterations=0)

    def mse(book):
        return float(((dequantize_kmeans(quantize_kmeans(w, book), book) - w) ** 2).mean())

    assert mse(codebook) <= mse(start)
    with pytest.raises(ValueError, match="iterations"):
        kmeans_codebook(w, 3, iterations=-1)


def test_finalize_kmeans_has_at_most_two_to_the_bits_values_per_layer(x):
    model = tiny_cnn()
    result = finalize_quantization(model, bits=2, scheme="kmeans")
    for name, module in quantizable_modules(model):
        qw = result[name]
        assert qw.scheme == "kmeans" and qw.scale is None and qw.codebook.shape == (4,)
        assert len(torch.unique(module.weight.detach())) <= 4
        assert torch.equal(module.weight.detach(), qw.dequantize())


@pytest.mark.parametrize("scheme", ["affine", "kmeans"])
def test_qat_with_other_schemes_trains_and_matches_finalize(x, scheme):
    model = tiny_cnn()
    latent = model[4].weight
    enable_qat(model, bits=3, scheme=scheme)
    assert model[4].parametrizations.weight[0].scheme == scheme
    loss = nn.functional.cross_entropy(model(x), torch.arange(16) % 10)
    loss.backward()
    assert latent.grad is not None and float(latent.grad.abs().sum()) > 0
    model.eval()
    qat_out = model(x).detach()
    result = finalize_quantization(model, bits=3, scheme=scheme)
    assert all(qw.scheme == scheme and qw.bits == 3 for qw in result.values())
    assert torch.allclose(model(x), qat_out, atol=1e-6)


def test_quantized_weight_keeps_its_old_constructor():
    qw = QuantizedWeight(torch.tensor([[1, -1]], dtype=torch.int8), torch.tensor([0.5]), 2)
    assert qw.scheme == "symmetric" and qw.zero_point is None and qw.codebook is None
    assert qw.dequantize().tolist() == [[0.5, -0.5]]
    with pytest.raises(ValueError, match="zero_point"):
        QuantizedWeight(qw.codes, qw.scale, 2, scheme="affine")
    with pytest.raises(ValueError, match="scheme"):
        QuantizedWeight(qw.codes, qw.scale, 2, scheme="ternary")


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        finalize_quantization(tiny_cnn(), bits=4, scheme="log2")
    with pytest.raises(ValueError, match="scheme"):
        enable_qat(tiny_cnn(), bits=4, scheme="")


# -- mixed precision -----------------------------------------------------------------------


def test_mixed_precision_leaves_unlisted_layers_float(x):
    model = tiny_cnn()
    middle = model[4].weight.detach().clone()
    enable_qat(model, bits={"0": 2, "4": 4, "9": 8})
    enable_qat(model, bits={"0": 2, "9": 8})  # "4" drops out and gets its float weight back
    assert not parametrize.is_parametrized(model[4])
    assert [p[0].bits for p in (model[0].parametrizations.weight,
                                model[9].parametrizations.weight)] == [2, 8]
    result = finalize_quantization(model, bits={"0": 2, "9": 8})
    assert {name: qw.bits for name, qw in result.items()} == {"0": 2, "9": 8}
    assert torch.equal(model[4].weight.detach(), middle)
    assert len(torch.unique(model[0].weight.detach()[0])) <= 3
    assert not any(parametrize.is_parametrized(m) for m in model.modules())


def test_mixed_precision_validation_names_modules_and_bits():
    with pytest.raises(ValueError, match=r"\['1', 'nope'\]"):
        finalize_quantization(tiny_cnn(), bits={"0": 4, "1": 4, "nope": 4})
    with pytest.raises(ValueError, match=r"bits\['4'\].*9"):
        enable_qat(tiny_cnn(), bits={"0": 4, "4": 9})
    with pytest.raises(ValueError, match=r"bits\['0'\]"):
        finalize_quantization(tiny_cnn(), bits={"0": 1})
    with pytest.raises(TypeError, match=r"bits\['0'\]"):
        finalize_quantization(tiny_cnn(), bits={"0": 4.0})
    assert finalize_quantization(tiny_cnn(), bits={}) == {}


# -- activations ---------------------------------------------------------------------------


def test_activation_quant_calibrates_inputs_of_every_layer(x):
    model = tiny_cnn().train()
    reference = model.eval()(x).detach()
    model.train()
    seen = {}
    model[4].register_forward_pre_hook(lambda m, args: seen.update(x=args[0].detach()))
    params = enable_activation_quant(model, calibration=x)
    assert model.training and model[1].training  # flags restored after calibration
    assert list(params) == ["0", "4", "9"] == list(activation_quant_params(model))
    for p in params.values():
        assert p["bits"] == 8 and 0 <= p["zero_point"] <= 255 and p["scale"] > 0
    assert params["4"]["zero_point"] == 0  # the input of "4" follows a ReLU: no negatives
    model.eval()
    out = model(x).detach()
    assert not torch.equal(out, reference)
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()
    # The probe was registered first, so it runs first and sees the float input.
    p = params["4"]
    grid = torch.clamp(torch.round(seen["x"] / p["scale"]) + p["zero_point"], 0, 255)
    assert float((grid - p["zero_point"]).abs().max()) > 100  # the range is used


def test_activation_quant_ste_and_removal(x):
    model = tiny_cnn()
    enable_activation_quant(model, bits=4, calibration=x)
    enable_qat(model, bits=4)  # hooks survive the parametrization's class swap
    assert list(activation_quant_params(model)) == ["0", "4", "9"]
    inputs = x.clone().requires_grad_(True)
    model(inputs).sum().backward()
    assert inputs.grad is not None and float(inputs.grad.abs().sum()) > 0
    model.eval()
    quantized_out = model(x).detach()
    params = activation_quant_params(model)
    disable_activation_quant(model)
    assert activation_quant_params(model) == {}
    assert not torch.equal(model(x), quantized_out)
    install_activation_quant(model, params)
    assert torch.equal(model(x), quantized_out)


def test_activation_quant_validation(x):
    with pytest.raises(ValueError, match="bits"):
        enable_activation_quant(tiny_cnn(), bits=9, calibration=x)
    with pytest.raises(TypeError, match="calibration"):
        enable_activation_quant(tiny_cnn(), calibration=x.numpy())
    with pytest.raises(ValueError, match="not quantizable"):
        install_activation_quant(tiny_cnn(), {"2": {"scale": 1.0, "zero_point": 0, "bits": 8}})
    with pytest.raises(ValueError, match="zero_point"):
        install_activation_quant(tiny_cnn(), {"0": {"scale": 1.0, "zero_point": 16, "bits": 4}})
    with pytest.raises(ValueError, match="scale"):
        ActivationFakeQuantize(scale=0.0, zero_point=0, bits=8)
