"""Candidate models for the latency benchmark: varied ``image-cnn`` structures as ONNX.

Latency depends on the structure, not on the trained weights, so the models are built
untrained (factorized and pruned as their params say, exactly as a trial's compressed
model is shaped) and exported to ONNX: float32 as is, int8 through the same static QDQ
quantization the evaluator uses.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nascompress.compression.onnx_export import export_onnx, quantize_onnx_int8
from nascompress.data import load_digits_splits
from nascompress.latency.predictor import compressed_structure, model_features
from nascompress.spaces import ImageCNNSpace

SPACE = ImageCNNSpace()


def dataset():
    return load_digits_splits()


def sample_params(n: int, *, seed: int, int8_share: float = 0.0) -> list[dict[str, Any]]:
    """``n`` distinct valid structures of the image-cnn space (no duplicates)."""
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        params = {
            "arch/depth": rng.randint(1, 3),
            "arch/width": rng.choice([8, 16, 32, 64]),
            "arch/kernel": rng.choice([3, 5]),
            "prune/ratio": rng.choice([0.0, 0.1, 0.25, 0.4, 0.5, 0.6]),
            "lowrank/ratio": rng.choice([1.0, 1.0, 0.5, 0.25]),
            "quant/bits": 8 if rng.random() < int8_share else 32,
        }
        if int(params["arch/width"] * (1 - params["prune/ratio"])) < SPACE.min_channels:
            continue  # the space's own joint constraint
        key = tuple(sorted(params.items()))
        if key in seen:
            continue
        seen.add(key)
        out.append(params)
    return out


def build(params: dict[str, Any], data, *, seed: int = 0):
    torch.manual_seed(seed)
    return compressed_structure(SPACE, params, input_shape=data.input_shape,
                                num_classes=data.num_classes).eval()


def onnx_bytes(params: dict[str, Any], data, *, seed: int = 0) -> tuple[bytes, dict, str]:
    """(ONNX bytes, layer features, kind) of one candidate."""
    model = build(params, data, seed=seed)
    features = model_features(model, data.input_shape)
    example = torch.from_numpy(data.x_val[:1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, example, path)
        kind = "fp32"
        if params.get("quant/bits", 32) < 32:
            int8 = Path(tmp) / "m.int8.onnx"
            quantize_onnx_int8(path, int8, calibration=np.asarray(data.x_train[:128]))
            path, kind = int8, "int8"
        return path.read_bytes(), features, kind
