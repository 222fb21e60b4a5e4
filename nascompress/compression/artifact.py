"""The shippable compressed model file; its byte length is the size we report.

File layout (all integers little-endian)::

    offset  size  field
    0       4     magic b"NASC"
    4       2     format version, uint16 (currently 2; version 1 files are still read)
    6       4     header length H in bytes, uint32
    10      H     header: compact UTF-8 JSON
    10+H    ...   payload: tensor bytes, back to back, no alignment padding

The header is ``{"metadata": {...}, "tensors": [entry, ...]}``, plus
``"activation_quant": {layer name: {"scale": float, "zero_point": int, "bits": int}}`` when
the model quantizes activations (see
:func:`~nascompress.compression.quantization.enable_activation_quant`; those parameters are
part of what the model computes, so they ship and :func:`load_artifact` re-installs them).

Each tensor entry has ``name`` (a ``state_dict`` key, or ``<weight key>:scale``,
``<weight key>:zero_point``, ``<weight key>:codebook`` for the parts of a quantized weight),
``shape``, ``encoding``, ``offset`` (bytes from the start of the payload) and ``length``
(bytes). Value encodings:

- ``"float32"``: raw float32 values in C order. Used for biases, BatchNorm weight/bias/
  running statistics, unquantized weights, scales and codebooks.
- ``"uint8"`` / ``"uint16"``: raw unsigned integers; the zero-points of an affine weight
  (``uint8`` up to 8 bits, which is every model; ``uint16`` above).
- ``"packed"`` (entry also has ``bits`` and ``scale``, the name of its scale entry): the
  symmetric codes ``q`` of a quantized weight, each stored as the unsigned value
  ``q + 2**(bits-1)``. The weight is ``q * scale[c]`` for output channel ``c`` (dim 0).
- ``"packed-affine"`` (also ``bits``, ``scale`` and ``zero_point``, entry names): affine
  codes ``q`` in ``[0, 2**bits - 1]``, stored as is; the weight is
  ``(q - zero_point[c]) * scale[c]``.
- ``"codebook"`` (also ``bits`` and ``codebook``, the name of a float32 entry of
  ``2**bits`` values): k-means indices ``q``, stored as is; the weight is ``codebook[q]``.

Packed values (the three packed encodings) take exactly ``bits`` bits each, least
significant bit first, back to back across byte boundaries; only the last byte of a run is
padded with zero bits.

Sparse layouts. A weight entry or float32 ``state_dict`` entry may carry ``"sparse"`` and
``"nnz"`` (the number of nonzero elements); its bytes are then a structure part followed by
the values of only the nonzero elements (C order) in the entry's value encoding:

- ``"bitmap"``: ``ceil(n / 8)`` bytes, bit ``i % 8`` (least significant first) of byte
  ``i // 8`` set when element ``i`` (C order) is nonzero.
- ``"index16"`` / ``"index32"``: the ``nnz`` flat C-order positions of the nonzero elements,
  ascending, as uint16 (used when ``n <= 65536``) or uint32.

"Nonzero" means the element's decoded value is not 0.0; every other element decodes to
0.0 (every quantization scheme represents 0 exactly). Scale, zero-point and codebook
entries are always dense. The writer picks, per tensor, the smallest of dense, bitmap and
index, counting the entry's payload bytes and its JSON bytes in the header (ties prefer
that order), so the choice is deterministic and always pays for itself.

``num_batches_tracked`` buffers are not stored (they only matter for further training).
Nothing else is stored either: no pickle, no code, so loading needs a template model of
the same architecture, whose layers :func:`load_artifact` resizes to the stored shapes.

Version 1 (read only) is the same layout with ``float32`` and ``packed`` entries only, no
sparse layouts and no activation parameters.
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

from nascompress.compression.quantization import (
    QuantizedWeight,
    activation_quant_params,
    install_activation_quant,
)

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "READABLE_VERSIONS",
    "artifact_bytes",
    "load_artifact",
    "save_artifact",
]

MAGIC = b"NASC"
FORMAT_VERSION = 2
#: Format versions :func:`load_artifact` reads.
READABLE_VERSIONS: tuple[int, ...] = (1, 2)
_PREFIX = struct.Struct("<4sHI")  # magic, version, header length
_SKIPPED_SUFFIX = "num_batches_tracked"
_PACKED_ENCODINGS = {"symmetric": "packed", "affine": "packed-affine", "kmeans": "codebook"}
_V1_ENCODINGS = {"float32", "packed"}


def artifact_bytes(
    model: nn.Module,
    *,
    quantized: Mapping[str, QuantizedWeight] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialize ``model`` in the artifact format, in memory.

    Args:
        model: The (pruned) network. Its current tensor shapes are stored, and its
            activation quantizers (if any) go into the header.
        quantized: ``{module_name: QuantizedWeight}`` as returned by
            :func:`~nascompress.compression.finalize_quantization` (any scheme, any mix of
            bit-widths); those weights are stored as packed codes plus their scales,
            zero-points or codebook, every other floating tensor as float32. ``None``
            stores everything as float32. Either may use a sparse layout when smaller.
        metadata: JSON-able mapping stored in the header (e.g. params, accuracy, bits).

    Returns:
        The file content; ``len()`` of it is the artifact size in bytes.

    Raises:
        ValueError: If ``quantized`` names a module without a matching weight or holds
            malformed codes, if the model's weights no longer equal the dequantized codes
            (trained after quantization?), if the model still carries parametrizations, or
            if the state_dict has a non-floating tensor other than ``num_batches_tracked``.
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

    def add_smallest(entry: dict[str, Any], values: np.ndarray, bits: int | None,
                     nonzero: np.ndarray) -> None:
        # Header bytes count too: a bitmap saving 3 payload bytes for 25 more bytes of
        # "sparse"/"nnz" fields in the header is no saving.
        best: tuple[int, dict[str, Any], bytes] | None = None
        for extra, data in _layouts(values, bits, nonzero):
            candidate = {**entry, **extra, "offset": offset, "length": len(data)}
            cost = len(data) + len(_json(candidate))
            if best is None or cost < best[0]:
                best = (cost, {**entry, **extra}, data)
        add(best[1], best[2])

    for key, tensor in model.state_dict().items():
        if key.endswith(_SKIPPED_SUFFIX):
            continue
        shape = list(tensor.shape)
        if key in quantized_keys:
            qw = quantized_keys[key]
            entry: dict[str, Any] = {"name": key, "shape": shape,
                                     "encoding": _PACKED_ENCODINGS[qw.scheme], "bits": qw.bits}
            parts: list[tuple[dict[str, Any], bytes]] = []
            if qw.scheme in ("symmetric", "affine"):
                entry["scale"] = f"{key}:scale"
                parts.append(({"name": entry["scale"], "shape": list(qw.scale.shape),
                               "encoding": "float32"}, _float32_bytes(qw.scale)))
            if qw.scheme == "affine":
                entry["zero_point"] = f"{key}:zero_point"
                dtype, layout = ("uint8", "<u1") if qw.bits <= 8 else ("uint16", "<u2")
                raw = qw.zero_point.detach().cpu().numpy().astype(layout).tobytes()
                parts.append(({"name": entry["zero_point"], "shape": list(qw.zero_point.shape),
                               "encoding": dtype}, raw))
            if qw.scheme == "kmeans":
                entry["codebook"] = f"{key}:codebook"
                parts.append(({"name": entry["codebook"], "shape": list(qw.codebook.shape),
                               "encoding": "float32"}, _float32_bytes(qw.codebook)))
            nonzero = (qw.dequantize() != 0).cpu().numpy().ravel()
            add_smallest(entry, _unsigned_codes(qw), qw.bits, nonzero)
            for part_entry, data in parts:
                add(part_entry, data)
        elif tensor.is_floating_point():
            values = tensor.detach().cpu().to(torch.float32).contiguous().numpy().ravel()
            add_smallest({"name": key, "shape": shape, "encoding": "float32"}, values, None,
                         values != 0)
        else:
            raise ValueError(
                f"cannot store non-floating tensor {key!r} of dtype {tensor.dtype} in an artifact"
            )

    header_obj: dict[str, Any] = {"metadata": dict(metadata or {}), "tensors": entries}
    activations = activation_quant_params(model)
    if activations:
        header_obj["activation_quant"] = activations
    try:
        header = _json(header_obj)
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
    """Load an artifact (format version 1 or 2) into a model of the same architecture.

    ``template`` is usually freshly built (unpruned, so possibly wider). Its Conv, Linear
    and BatchNorm layers are resized to the stored shapes (``in/out_channels``,
    ``in/out_features``, ``num_features``; a depthwise conv's ``groups`` follows its
    channels), their parameters and buffers replaced, and quantized weights dequantized.
    Activation quantizers stored in the file are installed (and any the template had are
    removed), so the model computes what the saved one computed.

    Args:
        path: Artifact file.
        template: Model to fill; modified in place and returned, in eval mode, on the CPU.

    Returns:
        ``(model, metadata)``.

    Raises:
        ValueError: If the file is not a valid artifact, or its tensors do not match the
            template's state_dict keys or cannot be resized into its layers, or its
            activation parameters name layers the template lacks.
    """
    with open(path, "rb") as f:
        data = f.read()
    where = os.fspath(path)
    metadata, tensors, activations = _parse(data, where)

    expected = {k for k in template.state_dict() if not k.endswith(_SKIPPED_SUFFIX)}
    if set(tensors) != expected:
        missing = sorted(expected - set(tensors))
        extra = sorted(set(tensors) - expected)
        raise ValueError(
            f"artifact {where!r} does not match the template: "
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
    try:
        install_activation_quant(template, activations)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"artifact {where!r} has unusable activation parameters: {exc}") from exc
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
    # Packing keeps 16 bits at most; a codebook has 2**bits float entries, so 8 at most.
    high = 8 if qw.scheme == "kmeans" else 16
    if isinstance(qw.bits, bool) or not isinstance(qw.bits, int) or not 2 <= qw.bits <= high:
        raise ValueError(
            f"quantized[{name!r}].bits must be an int in 2..{high} for scheme "
            f"{qw.scheme!r}, but got bits={qw.bits!r}"
        )
    codes = qw.codes.to(torch.int64)
    if qw.scheme == "symmetric":
        low, high = -(2 ** (qw.bits - 1) - 1), 2 ** (qw.bits - 1) - 1
    else:
        low, high = 0, 2**qw.bits - 1
    if codes.numel() and (int(codes.min()) < low or int(codes.max()) > high):
        raise ValueError(f"quantized[{name!r}] has codes outside [{low}, {high}]")
    if qw.scheme == "affine":
        zero_point = qw.zero_point.to(torch.int64)
        if zero_point.numel() and (int(zero_point.min()) < 0 or int(zero_point.max()) > high):
            raise ValueError(f"quantized[{name!r}] has zero-points outside [0, {high}]")
    if qw.scheme == "kmeans" and tuple(qw.codebook.shape) != (2**qw.bits,):
        raise ValueError(
            f"quantized[{name!r}].codebook must have shape ({2**qw.bits},), "
            f"but got {tuple(qw.codebook.shape)}"
        )
    # The file must compute what the evaluated model computes: refuse stale codes.
    if not torch.allclose(weight.detach().float().cpu(), qw.dequantize(), rtol=1e-5, atol=1e-7):
        raise ValueError(
            f"the weight of {name!r} differs from its dequantized codes; was the model changed "
            "after finalize_quantization?"
        )
    return f"{name}.weight" if name else "weight"


def _unsigned_codes(qw: QuantizedWeight) -> np.ndarray:
    codes = qw.codes.detach().cpu().to(torch.int64).numpy().ravel()
    return codes + 2 ** (qw.bits - 1) if qw.scheme == "symmetric" else codes


def _layouts(
    values: np.ndarray, bits: int | None, nonzero: np.ndarray
) -> list[tuple[dict[str, Any], bytes]]:
    """Candidate ``(extra entry fields, bytes)`` for dense, bitmap and index layouts."""
    n = values.size
    candidates = [({}, _value_bytes(values, bits))]
    nnz = int(nonzero.sum())
    if 0 < n and nnz < n:
        kept = _value_bytes(values[nonzero], bits)
        bitmap = np.packbits(nonzero, bitorder="little").tobytes()
        candidates.append(({"sparse": "bitmap", "nnz": nnz}, bitmap + kept))
        if n <= 2**32:
            label, dtype = ("index16", "<u2") if n <= 2**16 else ("index32", "<u4")
            index = np.flatnonzero(nonzero).astype(dtype).tobytes()
            candidates.append(({"sparse": label, "nnz": nnz}, index + kept))
    return candidates


def _value_bytes(values: np.ndarray, bits: int | None) -> bytes:
    if bits is None:
        return values.astype("<f4").tobytes()
    return _pack_unsigned(values, bits)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _float32_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def _pack_codes(codes: torch.Tensor, bits: int) -> bytes:
    """Symmetric codes, offset to unsigned, in ``bits`` bits each."""
    signed = codes.detach().cpu().to(torch.int64).numpy().ravel()
    return _pack_unsigned(signed + 2 ** (bits - 1), bits)


def _unpack_codes(data: bytes, count: int, bits: int) -> np.ndarray:
    return _unpack_unsigned(data, count, bits) - 2 ** (bits - 1)


def _pack_unsigned(values: np.ndarray, bits: int) -> bytes:
    as_bytes = np.asarray(values).ravel().astype("<u2").view(np.uint8).reshape(-1, 2)
    # Row i holds the 16 bits of value i, least significant first; keep the low `bits`.
    bit_rows = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits]
    return np.packbits(bit_rows.ravel(), bitorder="little").tobytes()


def _unpack_unsigned(data: bytes, count: int, bits: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    bit_rows = np.unpackbits(raw, count=count * bits, bitorder="little").reshape(count, bits)
    padded = np.zeros((count, 16), dtype=np.uint8)
    padded[:, :bits] = bit_rows
    return np.packbits(padded, axis=1, bitorder="little").view("<u2").ravel().astype(np.int64)


def _parse(data: bytes, where: str) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """``(metadata, {state_dict key: float32 tensor}, activation parameters)``."""
    if len(data) < _PREFIX.size:
        raise ValueError(f"{where!r} is not a nascompress artifact: too short")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"{where!r} is not a nascompress artifact: magic {magic!r}")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"{where!r} has artifact format version {version}; this code reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    start = _PREFIX.size + header_len
    try:
        header = json.loads(data[_PREFIX.size:start].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where!r} has a corrupt header: {exc}") from exc
    try:
        decoder = _Decoder(header, data[start:], where, version)
        tensors = decoder.tensors()
        activations = header.get("activation_quant", {}) if version >= 2 else {}
        metadata = header.get("metadata", {})
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{where!r} has a corrupt header: {exc!r}") from exc
    if not isinstance(activations, dict) or not isinstance(metadata, dict):
        raise ValueError(f"{where!r} has a corrupt header: metadata or activation_quant")
    return metadata, tensors, activations


class _Decoder:
    """Decodes the tensor entries of one parsed artifact (see the module docstring)."""

    def __init__(self, header: dict, payload: bytes, where: str, version: int) -> None:
        self.entries = {entry["name"]: entry for entry in header["tensors"]}
        self.payload = payload
        self.where = where
        self.version = version

    def tensors(self) -> dict[str, torch.Tensor]:
        parts = {entry[field] for entry in self.entries.values()
                 for field in ("scale", "zero_point", "codebook") if field in entry}
        return {name: self.weight(entry) for name, entry in self.entries.items()
                if name not in parts}

    def corrupt(self, entry: dict, why: str) -> ValueError:
        return ValueError(f"{self.where!r} is corrupt: entry {entry.get('name')!r} {why}")

    def chunk(self, entry: dict) -> bytes:
        lo, hi = entry["offset"], entry["offset"] + entry["length"]
        if hi > len(self.payload):
            raise ValueError(f"{self.where!r} is truncated: {entry['name']!r} ends past the file")
        return self.payload[lo:hi]

    def part(self, entry: dict, field: str, encodings: tuple[str, ...]) -> torch.Tensor:
        """A dense scale / zero-point / codebook entry named by ``entry[field]``."""
        part = self.entries[entry[field]]
        if part["encoding"] not in encodings or "sparse" in part:
            raise self.corrupt(part, f"must be dense {' or '.join(encodings)}")
        dtype = {"float32": "<f4", "uint8": "<u1", "uint16": "<u2"}[part["encoding"]]
        count = math.prod(part["shape"])
        raw = self.chunk(part)
        if len(raw) != count * np.dtype(dtype).itemsize:
            raise self.corrupt(part, f"has {len(raw)} bytes for {count} values")
        array = np.frombuffer(raw, dtype=dtype).astype(np.float32 if dtype == "<f4" else np.int32)
        return torch.from_numpy(array.reshape(part["shape"]))

    def weight(self, entry: dict) -> torch.Tensor:
        encoding = entry["encoding"]
        if self.version == 1 and (encoding not in _V1_ENCODINGS or "sparse" in entry):
            raise self.corrupt(entry, f"uses {encoding!r}/sparse, unknown in version 1")
        if encoding == "float32":
            bits = None
        elif encoding in _PACKED_ENCODINGS.values():
            bits = entry["bits"]
            if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
                raise self.corrupt(entry, f"has bits={bits!r}")
        else:
            raise ValueError(f"{self.where!r} uses unknown encoding {encoding!r}")
        shape = entry["shape"]
        n = math.prod(shape)
        nonzero, count, raw = self.layout(entry, n)
        if bits is None:
            if len(raw) != 4 * count:
                raise self.corrupt(entry, f"has {len(raw)} value bytes for {count} float32")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            full = np.zeros(n, dtype=np.float32)
            full[nonzero] = values
            return torch.from_numpy(full.reshape(shape))
        if len(raw) != math.ceil(count * bits / 8):
            raise self.corrupt(entry, f"has {len(raw)} value bytes for {count} {bits}-bit codes")
        codes = np.empty(n, dtype=np.int64)
        codes[:] = self.zero_codes(entry, n, bits)
        codes[nonzero] = _unpack_unsigned(raw, count, bits)
        codes = codes.reshape(shape)
        if encoding == "packed":
            qw = QuantizedWeight(torch.from_numpy(codes - 2 ** (bits - 1)),
                                 self.part(entry, "scale", ("float32",)), bits)
        elif encoding == "packed-affine":
            qw = QuantizedWeight(torch.from_numpy(codes), self.part(entry, "scale", ("float32",)),
                                 bits, scheme="affine",
                                 zero_point=self.part(entry, "zero_point", ("uint8", "uint16")))
        else:
            qw = QuantizedWeight(torch.from_numpy(codes), None, bits, scheme="kmeans",
                                 codebook=self.part(entry, "codebook", ("float32",)))
        return qw.dequantize()

    def layout(self, entry: dict, n: int) -> tuple[np.ndarray | slice, int, bytes]:
        """``(where the stored values go, how many, their bytes)`` of a dense/sparse entry."""
        raw = self.chunk(entry)
        layout = entry.get("sparse")
        if layout is None:
            return slice(None), n, raw
        nnz = entry["nnz"]
        if isinstance(nnz, bool) or not isinstance(nnz, int) or not 0 <= nnz <= n:
            raise self.corrupt(entry, f"has nnz={nnz!r} for {n} elements")
        if layout == "bitmap":
            size = math.ceil(n / 8)
            mask = np.unpackbits(np.frombuffer(raw[:size], dtype=np.uint8), count=n,
                                 bitorder="little").astype(bool)
            if len(raw) < size or int(mask.sum()) != nnz:
                raise self.corrupt(entry, "has a bitmap that disagrees with nnz")
            return mask, nnz, raw[size:]
        if layout in ("index16", "index32"):
            dtype = "<u2" if layout == "index16" else "<u4"
            size = nnz * np.dtype(dtype).itemsize
            index = np.frombuffer(raw[:size], dtype=dtype).astype(np.int64)
            if index.size != nnz or (nnz and (index[-1] >= n or np.any(np.diff(index) <= 0))):
                raise self.corrupt(entry, "has indices out of order or out of range")
            return index, nnz, raw[size:]
        raise ValueError(f"{self.where!r} uses unknown sparse layout {layout!r}")

    def zero_codes(self, entry: dict, n: int, bits: int) -> np.ndarray | int:
        """The unsigned code that decodes to 0.0 for every element (sparse fill value)."""
        encoding = entry["encoding"]
        if encoding == "packed" or "sparse" not in entry:
            return 2 ** (bits - 1)  # overwritten for dense entries
        if encoding == "packed-affine":
            zero_point = self.part(entry, "zero_point", ("uint8", "uint16")).numpy()
            if zero_point.ndim == 0:
                return int(zero_point)
            return np.repeat(zero_point.astype(np.int64), n // max(zero_point.size, 1))
        zeros = np.flatnonzero(self.part(entry, "codebook", ("float32",)).numpy() == 0)
        if zeros.size == 0:
            raise self.corrupt(entry, "is sparse but its codebook has no 0.0")
        return int(zeros[0])


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
