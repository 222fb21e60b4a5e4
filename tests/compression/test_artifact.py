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
    return torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))


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
