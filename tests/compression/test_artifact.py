import json
import math
import os
import struct

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nascompress.compression import (  # noqa: E402
    QuantizedWeight,
    artifact_bytes,
    enable_qat,
    finalize_quantization,
    load_artifact,
    prune_channels,
    save_artifact,
)
from nascompress.compression.artifact import (  # noqa: E402
    FORMAT_VERSION,
    MAGIC,
    _pack_codes,
    _unpack_codes,
)
from nascompress.compression.quantization import (  # noqa: E402
    activation_quant_params,
    enable_activation_quant,
    quantizable_modules,
)
from tests.compression._models import tiny_cnn  # noqa: E402


def header_of(data: bytes) -> tuple[int, dict]:
    magic, version, length = struct.unpack_from("<4sHI", data)
    assert (magic, version) == (MAGIC, FORMAT_VERSION)
    return length, json.loads(data[10:10 + length])


def test_returned_size_is_file_size_and_in_memory_size(tmp_path):
    model = tiny_cnn()
    quantized = finalize_quantization(model, bits=4)
    meta = {"bits": 4, "accuracy": 0.5}
    size = save_artifact(model, tmp_path / "m.nasc", quantized=quantized, metadata=meta)
    assert size == os.path.getsize(tmp_path / "m.nasc")
    assert size == len(artifact_bytes(model, quantized=quantized, metadata=meta))
    assert not [p for p in os.listdir(tmp_path) if p != "m.nasc"]  # no temp file left


def test_hand_counted_linear_4bit(tmp_path):
    model = nn.Linear(4, 3)
    quantized = finalize_quantization(model, bits=4)
    assert set(quantized) == {""}
    data = artifact_bytes(model, quantized=quantized)
    header_len, header = header_of(data)
    codes = math.ceil(12 * 4 / 8)  # 12 weights x 4 bits
    scales = 3 * 4
    bias = 3 * 4
    assert len(data) == 4 + 2 + 4 + header_len + codes + scales + bias == 10 + header_len + 30
    entries = {e["name"]: e for e in header["tensors"]}
    assert entries["weight"]["encoding"] == "packed" and entries["weight"]["bits"] == 4
    assert entries["weight"]["length"] == 6 and entries["weight:scale"]["length"] == 12
    assert entries["bias"] == {
        "name": "bias", "shape": [3], "encoding": "float32", "offset": 18, "length": 12,
    }
    restored, meta = load_artifact(_write(tmp_path, data), nn.Linear(4, 3))
    assert meta == {}
    assert torch.equal(restored.weight, model.weight) and torch.equal(restored.bias, model.bias)


def _write(tmp_path, data: bytes):
    path = tmp_path / "a.nasc"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("bits", [2, 3, 5, 7, 8, 16])
def test_bit_packing_round_trips_extreme_codes(bits):
    qmax = 2 ** (bits - 1) - 1
    codes = torch.tensor([-qmax, qmax, 0, 1, -1] * 3, dtype=torch.int16)
    packed = _pack_codes(codes, bits)
    assert len(packed) == math.ceil(codes.numel() * bits / 8)
    assert _unpack_codes(packed, codes.numel(), bits).tolist() == codes.tolist()


def test_pruned_quantized_model_round_trips(tmp_path, x):
    model = tiny_cnn()
    prune_channels(model, x, ratio=0.5)
    enable_qat(model, bits=4)
    model.train()
    model(x)  # move BN running statistics away from their defaults
    quantized = finalize_quantization(model, bits=4)
    model.eval()
    expected = model(x)
    size = save_artifact(model, tmp_path / "m.nasc", quantized=quantized, metadata={"run": "t"})

    template = tiny_cnn(seed=123).train()
    restored, meta = load_artifact(tmp_path / "m.nasc", template)
    assert restored is template and not restored.training
    assert meta == {"run": "t"}
    assert restored[0].out_channels == 4 and restored[1].num_features == 4
    assert restored[9].in_features == 16
    assert torch.allclose(restored(x), expected, atol=1e-5)
    assert torch.equal(restored[1].running_var, model[1].running_var)
    assert size < len(artifact_bytes(tiny_cnn(), quantized=None))


def test_float_artifact_round_trips_exactly(tmp_path, x):
    model = tiny_cnn().eval()
    save_artifact(model, tmp_path / "f.nasc", quantized=None)
    restored, _ = load_artifact(tmp_path / "f.nasc", tiny_cnn(seed=5))
    assert torch.equal(restored(x), model(x))


def test_fewer_bits_give_smaller_files():
    sizes = {}
    for bits in (4, 8):
        model = tiny_cnn()
        sizes[bits] = len(artifact_bytes(model, quantized=finalize_quantization(model, bits=bits)))
    sizes[32] = len(artifact_bytes(tiny_cnn(), quantized=None))
    assert sizes[4] < sizes[8] < sizes[32]
    # 968 quantized weights (72 + 576 + 320): 4 bits save about 492 bytes over 8 bits.
    assert 480 <= sizes[8] - sizes[4] <= 500


def test_num_batches_tracked_is_not_stored():
    _, header = header_of(artifact_bytes(tiny_cnn(), quantized=None))
    names = [e["name"] for e in header["tensors"]]
    assert "1.running_var" in names
    assert not any(n.endswith("num_batches_tracked") for n in names)


def test_stale_codes_are_refused():
    model = tiny_cnn()
    quantized = finalize_quantization(model, bits=4)
    with torch.no_grad():
        model[0].weight.add_(0.1)
    with pytest.raises(ValueError, match="after finalize_quantization"):
        artifact_bytes(model, quantized=quantized)


def test_bad_inputs_are_refused(tmp_path):
    model = tiny_cnn()
    quantized = finalize_quantization(model, bits=4)
    with pytest.raises(ValueError, match="not a module with a weight"):
        artifact_bytes(model, quantized={"2": quantized["0"]})
    with pytest.raises(TypeError, match="metadata"):
        artifact_bytes(model, quantized=quantized, metadata={"x": object()})
    enable_qat(model, bits=4)
    with pytest.raises(ValueError, match="finalize_quantization"):
        artifact_bytes(model, quantized=None)
    assert isinstance(quantized["0"], QuantizedWeight)


def test_load_rejects_foreign_files_and_architectures(tmp_path):
    bad = tmp_path / "bad.nasc"
    bad.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(ValueError, match="not a nascompress artifact"):
        load_artifact(bad, tiny_cnn())
    good = tmp_path / "good.nasc"
    save_artifact(tiny_cnn(), good, quantized=None)
    with pytest.raises(ValueError, match="does not match the template"):
        load_artifact(good, nn.Sequential(nn.Linear(4, 3)))


# -- format version 2 ----------------------------------------------------------------------


def entries_of(data: bytes) -> dict[str, dict]:
    return {e["name"]: e for e in header_of(data)[1]["tensors"]}


def rewrite(data: bytes, mutate, *, version: int = FORMAT_VERSION) -> bytes:
    """The same payload under a header changed by ``mutate(header)``."""
    length, header = header_of(data)
    mutate(header)
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<4sHI", MAGIC, version, len(raw)) + raw + data[10 + length:]


def test_hand_counted_linear_affine_4bit(tmp_path):
    model = nn.Linear(4, 3)
    quantized = finalize_quantization(model, bits=4, scheme="affine")
    data = artifact_bytes(model, quantized=quantized)
    header_len, _ = header_of(data)
    entries = entries_of(data)
    # 12 codes x 4 bits, 3 float32 scales, 3 uint8 zero-points, 3 float32 biases.
    assert len(data) == 10 + header_len + 6 + 12 + 3 + 12
    assert entries["weight"] == {
        "name": "weight", "shape": [3, 4], "encoding": "packed-affine", "bits": 4,
        "scale": "weight:scale", "zero_point": "weight:zero_point", "offset": 0, "length": 6,
    }
    assert entries["weight:zero_point"] == {
        "name": "weight:zero_point", "shape": [3], "encoding": "uint8", "offset": 18, "length": 3,
    }
    assert entries["bias"]["offset"] == 21
    restored, _ = load_artifact(_write(tmp_path, data), nn.Linear(4, 3))
    assert torch.equal(restored.weight, model.weight) and torch.equal(restored.bias, model.bias)


def test_hand_counted_linear_kmeans_2bit(tmp_path):
    model = nn.Linear(4, 3)
    quantized = finalize_quantization(model, bits=2, scheme="kmeans")
    data = artifact_bytes(model, quantized=quantized)
    header_len, _ = header_of(data)
    entries = entries_of(data)
    # 12 indices x 2 bits, a codebook of 4 float32, 3 float32 biases.
    assert len(data) == 10 + header_len + 3 + 16 + 12
    assert entries["weight"]["encoding"] == "codebook" and entries["weight"]["length"] == 3
    assert entries["weight"]["codebook"] == "weight:codebook"
    assert entries["weight:codebook"]["shape"] == [4]
    restored, _ = load_artifact(_write(tmp_path, data), nn.Linear(4, 3))
    assert torch.equal(restored.weight, model.weight)
    assert len(torch.unique(restored.weight)) <= 4


def sparse_linear(in_features: int, out_features: int, nonzeros: int) -> nn.Linear:
    """A bias-free layer with exactly ``nonzeros`` nonzero weights, spread out, all |w| >= 1."""
    model = nn.Linear(in_features, out_features, bias=False)
    n = in_features * out_features
    flat = torch.zeros(n)
    positions = torch.linspace(0, n - 1, nonzeros).round().long()
    signs = torch.where(torch.arange(nonzeros) % 2 == 0, 1.0, -1.0)
    flat[positions] = signs * (1 + torch.arange(nonzeros) / nonzeros)
    with torch.no_grad():
        model.weight.copy_(flat.reshape(out_features, in_features))
    return model


@pytest.mark.parametrize(
    ("shape", "nonzeros", "layout", "payload"),
    [
        ((64, 8), 40, "bitmap", 512 // 8 + 40 * 4),  # bitmap + float32 values
        ((64, 8), 8, "index16", 8 * 2 + 8 * 4),  # uint16 indices + float32 values
        ((300, 256), 5, "index32", 5 * 4 + 5 * 4),  # 76800 > 65536 elements: uint32
    ],
)
def test_hand_counted_sparse_float_layouts(tmp_path, shape, nonzeros, layout, payload):
    model = sparse_linear(*shape, nonzeros)
    data = artifact_bytes(model, quantized=None)
    header_len, _ = header_of(data)
    entry = entries_of(data)["weight"]
    assert (entry["sparse"], entry["nnz"], entry["length"]) == (layout, nonzeros, payload)
    assert len(data) == 10 + header_len + payload
    restored, _ = load_artifact(_write(tmp_path, data), nn.Linear(*shape, bias=False))
    assert torch.equal(restored.weight, model.weight)


def test_hand_counted_sparse_packed_codes(tmp_path):
    model = sparse_linear(64, 8, 52)
    quantized = finalize_quantization(model, bits=4)
    assert int((quantized[""].codes != 0).sum()) == 52
    data = artifact_bytes(model, quantized=quantized)
    header_len, _ = header_of(data)
    entries = entries_of(data)
    # Bitmap of 512 bits + 52 codes x 4 bits, then 8 float32 scales (always dense).
    assert entries["weight"]["sparse"] == "bitmap" and entries["weight"]["length"] == 64 + 26
    assert len(data) == 10 + header_len + 64 + 26 + 32
    restored, _ = load_artifact(_write(tmp_path, data), nn.Linear(64, 8, bias=False))
    assert torch.equal(restored.weight, model.weight)


def magnitude_prune(model: nn.Module, sparsity: float) -> None:
    with torch.no_grad():
        for _, module in quantizable_modules(model):
            w = module.weight
            threshold = w.abs().flatten().kthvalue(int(sparsity * w.numel())).values
            w[w.abs() <= threshold] = 0


@pytest.mark.parametrize("scheme", [None, "symmetric", "affine", "kmeans"])
def test_ninety_percent_sparse_weights_are_smaller_and_round_trip(tmp_path, x, scheme):
    def build(sparse: bool):
        model = tiny_cnn()
        if sparse:
            magnitude_prune(model, 0.9)
        quantized = None if scheme is None else finalize_quantization(model, bits=4,
                                                                      scheme=scheme)
        return model.eval(), quantized

    dense_model, dense_q = build(sparse=False)
    model, quantized = build(sparse=True)
    size = save_artifact(model, tmp_path / "s.nasc", quantized=quantized)
    assert size < len(artifact_bytes(dense_model, quantized=dense_q))
    entry = entries_of((tmp_path / "s.nasc").read_bytes())["4.weight"]
    n, value_bits = math.prod(entry["shape"]), 32 if scheme is None else 4
    assert entry["sparse"] == "bitmap" and entry["length"] < math.ceil(n * value_bits / 8)
    restored, _ = load_artifact(tmp_path / "s.nasc", tiny_cnn(seed=7))
    assert torch.allclose(restored(x), model(x), atol=1e-5)
    assert torch.equal(restored[4].weight == 0, model[4].weight == 0)
    assert float((model[4].weight == 0).float().mean()) > 0.89


@pytest.mark.parametrize("scheme", ["symmetric", "affine", "kmeans"])
def test_every_scheme_round_trips_after_qat(tmp_path, x, scheme):
    # Resizing pruned layers does not depend on the scheme: see the symmetric test above.
    model = tiny_cnn()
    enable_qat(model, bits=3, scheme=scheme)
    model.train()
    model(x)
    quantized = finalize_quantization(model, bits=3, scheme=scheme)
    model.eval()
    save_artifact(model, tmp_path / "m.nasc", quantized=quantized)
    restored, _ = load_artifact(tmp_path / "m.nasc", tiny_cnn(seed=3))
    assert torch.allclose(restored(x), model(x), atol=1e-5)


def test_mixed_precision_stores_unlisted_layers_as_float32(tmp_path, x):
    model = tiny_cnn()
    quantized = finalize_quantization(model, bits={"0": 8, "4": 2})
    data = artifact_bytes(model.eval(), quantized=quantized)
    entries = entries_of(data)
    assert (entries["0.weight"]["encoding"], entries["0.weight"]["bits"]) == ("packed", 8)
    assert (entries["4.weight"]["encoding"], entries["4.weight"]["bits"]) == ("packed", 2)
    assert entries["9.weight"]["encoding"] == "float32" and "9.weight:scale" not in entries
    assert entries["9.weight"]["length"] == 320 * 4
    restored, _ = load_artifact(_write(tmp_path, data), tiny_cnn(seed=1))
    assert torch.allclose(restored(x), model(x), atol=1e-5)


def test_activation_quant_round_trips_through_the_artifact(tmp_path, x):
    model = tiny_cnn()
    enable_activation_quant(model, calibration=x)
    quantized = finalize_quantization(model, bits=4, scheme="affine")
    model.eval()
    expected = model(x)
    save_artifact(model, tmp_path / "a.nasc", quantized=quantized)
    _, header = header_of((tmp_path / "a.nasc").read_bytes())
    assert header["activation_quant"] == activation_quant_params(model)
    assert set(header["activation_quant"]) == {"0", "4", "9"}

    restored, _ = load_artifact(tmp_path / "a.nasc", tiny_cnn(seed=4))
    assert activation_quant_params(restored) == activation_quant_params(model)
    assert torch.allclose(restored(x), expected, atol=1e-5)
    # A file without activation quantizers removes those the template carries.
    save_artifact(tiny_cnn(), tmp_path / "f.nasc", quantized=None)
    plain, _ = load_artifact(tmp_path / "f.nasc", restored)
    assert activation_quant_params(plain) == {}
    assert torch.equal(plain(x), tiny_cnn().eval()(x))


def test_version_1_files_still_load(tmp_path):
    # Written byte by byte as version 1 specified it: packed codes, float32 scales and bias.
    codes = torch.tensor([[1, -1, 0, 7], [-7, 2, 3, -2], [0, 0, 1, 1]], dtype=torch.int8)
    scale = torch.tensor([0.5, 0.25, 2.0])
    bias = torch.tensor([1.0, -2.0, 0.0])
    tensors = [
        {"name": "weight", "shape": [3, 4], "encoding": "packed", "bits": 4,
         "scale": "weight:scale", "offset": 0, "length": 6},
        {"name": "weight:scale", "shape": [3], "encoding": "float32", "offset": 6, "length": 12},
        {"name": "bias", "shape": [3], "encoding": "float32", "offset": 18, "length": 12},
    ]
    header = json.dumps({"metadata": {"bits": 4}, "tensors": tensors}).encode()
    payload = _pack_codes(codes, 4) + scale.numpy().tobytes() + bias.numpy().tobytes()
    path = _write(tmp_path, struct.pack("<4sHI", b"NASC", 1, len(header)) + header + payload)
    restored, meta = load_artifact(path, nn.Linear(4, 3))
    assert meta == {"bits": 4}
    assert torch.equal(restored.weight, codes.float() * scale[:, None])
    assert torch.equal(restored.bias, bias)


def test_unknown_versions_and_corrupt_sparse_entries_are_refused(tmp_path):
    data = artifact_bytes(sparse_linear(64, 8, 40), quantized=None)
    with pytest.raises(ValueError, match="version 3"):
        load_artifact(_write(tmp_path, data[:4] + struct.pack("<H", 3) + data[6:]),
                      nn.Linear(64, 8, bias=False))
    # Version 1 knew no sparse layouts.
    with pytest.raises(ValueError, match="version 1"):
        load_artifact(_write(tmp_path, rewrite(data, lambda h: None, version=1)),
                      nn.Linear(64, 8, bias=False))

    def wrong_nnz(header):
        header["tensors"][0]["nnz"] = 39

    with pytest.raises(ValueError, match="corrupt"):
        load_artifact(_write(tmp_path, rewrite(data, wrong_nnz)), nn.Linear(64, 8, bias=False))


def test_artifacts_are_deterministic():
    model = tiny_cnn()
    magnitude_prune(model, 0.8)
    quantized = finalize_quantization(model, bits=3, scheme="kmeans")
    assert artifact_bytes(model, quantized=quantized) == artifact_bytes(model, quantized=quantized)
