"""Compression building blocks: pruning, quantization, distillation, low-rank, the artifact,
and the compression plan that applies them as a trial's params say.

Pure torch functions (plus torch-pruning, numpy and, for deployment, onnx/onnxruntime);
nothing here imports the rest of nascompress, so evaluators and plug-ins can use them
directly. NNI-backed importance criteria live in :mod:`nascompress.compression.nni_pruning`
(optional extra ``nni``) and are not imported here.

Names are imported on first use (PEP 562), so ``nascompress.compression.plan``, whose
knob vocabulary the search spaces validate with, can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nascompress.compression.artifact import (
        artifact_bytes,
        load_artifact,
        save_artifact,
    )
    from nascompress.compression.distillation import (
        FeatureDistiller,
        default_feature_pairs,
        distillation_loss,
    )
    from nascompress.compression.lowrank import (
        LowRankReport,
        apply_lowrank_,
        factorize_conv_tucker2,
        factorize_linear,
    )
    from nascompress.compression.plan import (
        IMPORTANCES,
        KNOBS,
        SCHEMES,
        SUPPORTED_BITS,
        CompressionPlan,
        artifact_template,
        compressed_structure,
    )
    from nascompress.compression.pruning import (
        NNI_IMPORTANCES,
        PruningReport,
        prune_channels,
    )
    from nascompress.compression.quantization import (
        QUANTIZABLE_TYPES,
        ActivationFakeQuantize,
        FakeQuantize,
        QuantizedWeight,
        activation_quant_params,
        calibrate_affine,
        calibrate_scale,
        dequantize_affine,
        dequantize_kmeans,
        dequantize_tensor,
        disable_activation_quant,
        enable_activation_quant,
        enable_qat,
        finalize_quantization,
        install_activation_quant,
        kmeans_codebook,
        quantizable_modules,
        quantize_affine,
        quantize_kmeans,
        quantize_tensor,
    )
    from nascompress.compression.sparsity import (
        SparsityReport,
        enable_sparse_training,
        finalize_sparsity,
        magnitude_prune_,
        sparse_encoding_size,
    )

#: Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "artifact_bytes": "artifact",
    "load_artifact": "artifact",
    "save_artifact": "artifact",
    "FeatureDistiller": "distillation",
    "default_feature_pairs": "distillation",
    "distillation_loss": "distillation",
    "LowRankReport": "lowrank",
    "apply_lowrank_": "lowrank",
    "factorize_conv_tucker2": "lowrank",
    "factorize_linear": "lowrank",
    "CompressionPlan": "plan",
    "IMPORTANCES": "plan",
    "KNOBS": "plan",
    "SCHEMES": "plan",
    "SUPPORTED_BITS": "plan",
    "artifact_template": "plan",
    "compressed_structure": "plan",
    "NNI_IMPORTANCES": "pruning",
    "PruningReport": "pruning",
    "prune_channels": "pruning",
    "ActivationFakeQuantize": "quantization",
    "FakeQuantize": "quantization",
    "QUANTIZABLE_TYPES": "quantization",
    "QuantizedWeight": "quantization",
    "activation_quant_params": "quantization",
    "calibrate_affine": "quantization",
    "calibrate_scale": "quantization",
    "dequantize_affine": "quantization",
    "dequantize_kmeans": "quantization",
    "dequantize_tensor": "quantization",
    "disable_activation_quant": "quantization",
    "enable_activation_quant": "quantization",
    "enable_qat": "quantization",
    "finalize_quantization": "quantization",
    "install_activation_quant": "quantization",
    "kmeans_codebook": "quantization",
    "quantizable_modules": "quantization",
    "quantize_affine": "quantization",
    "quantize_kmeans": "quantization",
    "quantize_tensor": "quantization",
    "SparsityReport": "sparsity",
    "enable_sparse_training": "sparsity",
    "finalize_sparsity": "sparsity",
    "magnitude_prune_": "sparsity",
    "sparse_encoding_size": "sparsity",
}

__all__ = [
    "IMPORTANCES",
    "KNOBS",
    "NNI_IMPORTANCES",
    "QUANTIZABLE_TYPES",
    "SCHEMES",
    "SUPPORTED_BITS",
    "ActivationFakeQuantize",
    "CompressionPlan",
    "FakeQuantize",
    "FeatureDistiller",
    "LowRankReport",
    "PruningReport",
    "QuantizedWeight",
    "SparsityReport",
    "activation_quant_params",
    "apply_lowrank_",
    "artifact_bytes",
    "artifact_template",
    "calibrate_affine",
    "calibrate_scale",
    "compressed_structure",
    "default_feature_pairs",
    "dequantize_affine",
    "dequantize_kmeans",
    "dequantize_tensor",
    "disable_activation_quant",
    "distillation_loss",
    "enable_activation_quant",
    "enable_qat",
    "enable_sparse_training",
    "factorize_conv_tucker2",
    "factorize_linear",
    "finalize_quantization",
    "finalize_sparsity",
    "install_activation_quant",
    "kmeans_codebook",
    "load_artifact",
    "magnitude_prune_",
    "prune_channels",
    "quantizable_modules",
    "quantize_affine",
    "quantize_kmeans",
    "quantize_tensor",
    "save_artifact",
    "sparse_encoding_size",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
