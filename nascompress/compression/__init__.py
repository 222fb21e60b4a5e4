"""Compression building blocks: pruning, quantization, distillation and the shipped artifact.

Pure torch functions (plus torch-pruning and numpy); nothing here imports the rest of
nascompress, so evaluators and plug-ins can use them directly.
"""

from nascompress.compression.artifact import artifact_bytes, load_artifact, save_artifact
from nascompress.compression.distillation import distillation_loss
from nascompress.compression.pruning import IMPORTANCES, PruningReport, prune_channels
from nascompress.compression.quantization import (
    QUANTIZABLE_TYPES,
    FakeQuantize,
    QuantizedWeight,
    calibrate_scale,
    dequantize_tensor,
    enable_qat,
    finalize_quantization,
    quantizable_modules,
    quantize_tensor,
)

__all__ = [
    "IMPORTANCES",
    "QUANTIZABLE_TYPES",
    "FakeQuantize",
    "PruningReport",
    "QuantizedWeight",
    "artifact_bytes",
    "calibrate_scale",
    "dequantize_tensor",
    "distillation_loss",
    "enable_qat",
    "finalize_quantization",
    "load_artifact",
    "prune_channels",
    "quantizable_modules",
    "quantize_tensor",
    "save_artifact",
]
