"""The shippable compressed model file; its byte length is the size we report.

File layout (all integers little-endian)::

    offset  size  field
    0       4     magic b"NASC"
    4       2     format version, uint16 (currently 1)
    6       4     header length H in bytes, uint32
    10      H     header: compact UTF-8 JSON
    10+H    ...   payload: tensor bytes, back to back, no alignment padding

The header is ``{"metadata": {...}, "tensors": [entry, ...]}``. Each entry has ``name``
(a ``state_dict`` key, or ``<weight key>:scale`` for scales), ``shape``, ``encoding``,
``offset`` (bytes from the start of the payload) and ``length`` (bytes). Encodings:

- ``"float32"``: raw little-endian float32 values in C order. Used for biases, BatchNorm
  weight/bias/running statistics, unquantized weights and the scales of quantized weights.
- ``"packed"`` (entry also has ``bits`` and ``scale``, the name of its scale entry): the
  integer codes ``q`` of a quantized Conv/Linear weight, C order, each stored as the
  unsigned value ``q + 2**(bits-1)`` in exactly ``bits`` bits, least significant bit
  first, values back to back across byte boundaries; only the last byte is padded with
  zero bits. The weight is ``q * scale[c]`` for output channel ``c`` (dimension 0).

``num_batches_tracked`` buffers are not stored (they only matter for further training).
Nothing else is stored either: no pickle, no code, so loading needs a template model of
the same architecture, whose layers :func:`load_artifact` resizes to the stored shapes.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from nascompress.compression.quantization import QuantizedWeight, dequantize_tensor

__all__ = ["FORMAT_VERSION", "MAGIC", "artifact_bytes", "load_artifact", "save_artifact"]

MAGIC = b"NASC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHI")  # magic, version, header length
_SKIPPED_SUFFIX = "num_batches_tracked"


def artifact_bytes(
    model: nn.Module,
    *,
    quantized: Mapping[str, QuantizedWeight] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialize ``model`` in the artifact format, in memory.

    Args:
        model: The (pruned) network. Its current tensor shapes are stored.
        quantized: ``{module_name: QuantizedWeight}`` as returned by
            :func:`~nascompress.compression.finalize_quantization`; those weights are stored
            as packed codes plus scales, every other floating tensor as float32. ``None``
            stores everything as float32.
        metadata: JSON-able mapping stored in the header (e.g. params, accuracy, bits).

    Returns:
        The file content; ``len()`` of it is the artifact size in bytes.

    Raises:
        ValueError: If ``quantized`` names a module without a matching weight, if the
            model's weights no longer equal the dequantized codes (trained after
            quantization?), if the model still carries parametrizations, or if the
            state_dict has a non-floating tensor other than ``num_batches_tracked``.
        TypeError: If ``metadata`` is not a JSON-able mapping.
    """
    quantized = dict(quantized or {})
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, but got {type(metadata).__name__}")
    parametrized = [name for name, m in model.named_modules() if parametrize.is_parametrized(m)]
    if parametrized:
        raise ValueError(
            f"model must not carry parametrizations, but got them on {parametrized}; "
            "call finalize_quantization first"
        )
    modules = dict(model.named_modules())
    quantized_keys: dict[str, QuantizedWeight] = {}
    for name, qw in quantized.items():
        quantized_keys[_check_quantized(name, qw, modules.get(name))] = qw

    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0

    def add(entry: dict[str, Any], data: bytes) -> None:
        nonlocal offset
        entry.update(offset=offset, length=len(data))
        entries.append(entry)
        chunks.append(data)
        offset += len(data)

    for key, tensor in model.state_dict().items():
        if key.endswith(_SKIPPED_SUFFIX):
            continue
        shape = list(tensor.shape)
        if key in quantized_keys:
            qw = quantized_keys[key]
            scale_key = f"{key}:scale"
            add(
                {"name": key, "shape": shape, "encoding": "packed", "bits": qw.bits,
                 "scale": scale_key},
                _pack_codes(qw.codes, qw.bits),
            )
            add(
                {"name": scale_key, "shape": list(qw.scale.shape), "encoding": "float32"},
                _float32_bytes(qw.scale),
            )
        elif tensor.is_floating_point():
            add({"name": key, "shape": shape, "encoding": "float32"}, _float32_bytes(tensor))
        else:
            raise ValueError(
                f"cannot store non-floating tensor {key!r} of dtype {tensor.dtype} in an artifact"
            )

    header_obj = {"metadata": dict(metadata or {}), "tensors": entries}
    try:
        header = json.dumps(header_obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-able (finite numbers only): {exc}") from exc
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(chunks)


def save_artifact(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    quantized: Mapping[str, QuantizedWeight] | None,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Write ``model`` as an artifact file (see the module docstring for the format).

    Args:
        model: The (pruned) network.
        path: Destination file; parent folders must exist. Written atomically (temporary
            file in the same folder, then rename).
        quantized: As for :func:`artifact_bytes`; pass ``None`` explicitly for float32.
        metadata: JSON-able mapping stored in the header.

    Returns:
        Bytes written, equal to ``os.path.getsize(path)``.

    Raises:
        ValueError: See :func:`artifact_bytes`.
        TypeError: See :func:`artifact_bytes`.
    """
    data = artifact_bytes(model, quantized=quantized, metadata=metadata)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(data)


def load_artifact(path: str | os.PathLike, template: nn.Module) -> tuple[nn.Module, dict]:
    """Load an artifact into a model of the same architecture.

    ``template`` is usually freshly built (unpruned, so possibly wider). Its Conv, Linear
    and BatchNorm layers are resized to the stored shapes (``in/out_channels``,
    ``in/out_features``, ``num_features``; a depthwise conv's ``groups`` follows its
    channels), their parameters and buffers replaced, and quantized weights dequantized.

    Args:
        path: Artifact file.
        template: Model to fill; modified in place and returned, in eval mode, on the CPU.

    Returns:
        ``(model, metadata)``.

    Raises:
        ValueError: If the file is not a valid artifact, or its tensors do not match the
            template's state_dict keys or cannot be resized into its layers.
    """
    with open(path, "rb") as f:
        data = f.read()
    metadata, tensors = _parse(data, os.fspath(path))

    expected = {k for k in template.state_dict() if not k.endswith(_SKIPPED_SUFFIX)}
    if set(tensors) != expected:
        missing = sorted(expected - set(tensors))
        extra = sorted(set(tensors) - expected)
        raise ValueError(
            f"artifact {os.fspath(path)!r} does not match the template: "
            f"missing {missing}, unexpected {extra}"
        )
    for module_name, module in template.named_modules():
        prefix = f"{module_name}." if module_name else ""
        own = {
            name: tensors[prefix + name]
            for name, _ in _own_tensors(module)
            if prefix + name in tensors
        }
        if own:
            _load_into(module_name or "<root>", module, own)
    template.eval()
    return template, metadata


def _check_quantized(name: str, qw: QuantizedWeight, module: nn.Module | None) -> str:
    if not isinstance(qw, QuantizedWeight):
        raise TypeError(
            f"quantized[{name!r}] must be a QuantizedWeight, but got {type(qw).__name__}"
        )
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"quantized names {name!r}, which is not a module with a weight")
    if tuple(qw.codes.shape) != tuple(weight.shape):
        raise ValueError(
            f"quantized[{name!r}] codes have shape {tuple(qw.codes.shape)}, "
            f"but the weight has shape {tuple(weight.shape)}"
        )
    qmax = 2 ** (qw.bits - 1) - 1
    if int(qw.codes.abs().max()) > qmax:
        raise ValueError(f"quantized[{name!r}] has codes outside [-{qmax}, {qmax}]")
    # The file must compute what the evaluated model computes: refuse stale codes.
    if not torch.allclose(
        weight.detach().float().cpu(), dequantize_tensor(qw.codes, qw.scale), rtol=1e-5, atol=1e-7
    ):
        raise ValueError(
            f"the weight of {name!r} differs from its dequantized codes; was the model changed "
            "after finalize_quantization?"
        )
    return f"{name}.weight" if name else "weight"


def _float32_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def _pack_codes(codes: torch.Tensor, bits: int) -> bytes:
    unsigned = (codes.detach().cpu().to(torch.int32).numpy().ravel() + 2 ** (bits - 1))
    as_bytes = unsigned.astype("<u2").view(np.uint8).reshape(-1, 2)
    # Row i holds the 16 bits of value i, least significant first; keep the low `bits`.
    bit_rows = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits]
    return np.packbits(bit_rows.ravel(), bitorder="little").tobytes()


def _unpack_codes(data: bytes, count: int, bits: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    bit_rows = np.unpackbits(raw, count=count * bits, bitorder="little").reshape(count, bits)
    padded = np.zeros((count, 16), dtype=np.uint8)
    padded[:, :bits] = bit_rows
    unsigned = np.packbits(padded, axis=1, bitorder="little").view("<u2").ravel()
    return unsigned.astype(np.int32) - 2 ** (bits - 1)


def _parse(data: bytes, where: str) -> tuple[dict, dict[str, torch.Tensor]]:
    if len(data) < _PREFIX.size:
        raise ValueError(f"{where!r} is not a nascompress artifact: too short")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"{where!r} is not a nascompress artifact: magic {magic!r}")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{where!r} has artifact format version {version}; this code reads {FORMAT_VERSION}"
        )
    start = _PREFIX.size + header_len
    try:
        header = json.loads(data[_PREFIX.size:start].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where!r} has a corrupt header: {exc}") from exc
    payload = data[start:]

    def chunk(entry: dict) -> bytes:
        lo, hi = entry["offset"], entry["offset"] + entry["length"]
        if hi > len(payload):
            raise ValueError(f"{where!r} is truncated: {entry['name']!r} ends past the file")
        return payload[lo:hi]

    floats: dict[str, torch.Tensor] = {}
    packed: list[dict] = []
    for entry in header["tensors"]:
        if entry["encoding"] == "float32":
            array = np.frombuffer(chunk(entry), dtype="<f4").astype(np.float32)
            floats[entry["name"]] = torch.from_numpy(array.reshape(entry["shape"]))
        elif entry["encoding"] == "packed":
            packed.append(entry)
        else:
            raise ValueError(f"{where!r} uses unknown encoding {entry['encoding']!r}")
    for entry in packed:
        count = math.prod(entry["shape"])
        codes = _unpack_codes(chunk(entry), count, entry["bits"]).reshape(entry["shape"])
        scale = floats.pop(entry["scale"])
        floats[entry["name"]] = dequantize_tensor(torch.from_numpy(codes), scale)
    return header.get("metadata", {}), floats


def _own_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor | None]]:
    return list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))


def _load_into(name: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    if isinstance(module, nn.modules.conv._ConvNd) and "weight" in tensors:
        shape = tensors["weight"].shape
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        if module.transposed:  # weight is [in, out / groups, ...]
            module.in_channels = shape[0]
            module.out_channels = shape[1] * module.groups
        elif depthwise:
            module.in_channels = module.out_channels = module.groups = shape[0]
        else:
            module.out_channels = shape[0]
            module.in_channels = shape[1] * module.groups
    elif isinstance(module, nn.Linear) and "weight" in tensors:
        module.out_features, module.in_features = tensors["weight"].shape
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.num_features = next(iter(tensors.values())).shape[0]
    else:
        for key, tensor in tensors.items():
            current = getattr(module, key)
            if current is not None and current.shape != tensor.shape:
                raise ValueError(
                    f"cannot resize {key!r} of module {name!r} ({type(module).__name__}) from "
                    f"{tuple(current.shape)} to {tuple(tensor.shape)}"
                )
    params = dict(module.named_parameters(recurse=False))
    for key, tensor in tensors.items():
        if key in params:
            setattr(module, key, nn.Parameter(tensor, requires_grad=params[key].requires_grad))
        else:
            setattr(module, key, tensor)  # a registered buffer stays a buffer
