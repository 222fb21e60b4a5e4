"""Cache keys: a measurement is reused for any model of the same structure.

Dense kernels do the same work whatever the weight values, so two trials that differ
only in training (distillation settings, sparsity masks, bit-widths below 8 that all run
on the int8 path) are timed once. A key covers the model's structure, the runtime and its
version, the resolved device and the whole :class:`~nascompress.latency.measure.LatencySetup`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from nascompress.latency.measure import LatencySetup


def onnx_structure_hash(model: bytes | str | os.PathLike[str]) -> str:
    """SHA-256 of an ONNX model with the values of its weight tensors left out.

    Initializers keep their names, shapes and data types; their data is dropped, except
    for int64 tensors (shapes, axes: they change what the graph computes). Node
    attributes, including constant tensors, are kept.
    """
    import onnx

    data = Path(model).read_bytes() if not isinstance(model, bytes) else model
    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    for tensor in proto.graph.initializer:
        if tensor.data_type == onnx.TensorProto.INT64:
            continue
        for name in ("raw_data", "float_data", "int32_data", "string_data", "double_data",
                     "uint64_data"):
            tensor.ClearField(name)
    # Their order follows the module's parameter registration, which re-registering a
    # parameter (sparsity masks, fake quantization) changes without changing the graph.
    ordered = sorted(proto.graph.initializer, key=lambda t: t.name)
    proto.graph.ClearField("initializer")
    proto.graph.initializer.extend(ordered)
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def torch_structure_hash(model) -> str:
    """SHA-256 of a module's printed structure and its tensors' names, shapes and types."""
    parts = [repr(model)]
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cache_key(model_key: str, *, runtime: str, setup: LatencySetup, device: str) -> str:
    """The cache key of one measurement: model structure, runtime and version, setup."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        version = ort.__version__
    else:
        import torch

        version = torch.__version__
    text = json.dumps({"model": model_key, "runtime": runtime, "version": version,
                       "device": device, "setup": setup.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()

