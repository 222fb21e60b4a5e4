"""Compression building blocks: pruning, quantization, distillation, low-rank, the artifact.

Pure torch functions (plus torch-pruning, numpy and, for deployment, onnx/onnxruntime);
nothing here imports the rest of nascompress, so evaluators and plug-ins can use them
directly. NNI-backed importance criteria live in :mod:`nascompress.compression.nni_pruning`
(optional extra ``nni``) and are not imported here.
"""

from nascompress.compression.artifact import artifact_bytes, load_artifact, save_artifact
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
from nascompress.compression.pruning import (
    IMPORTANCES,
    NNI_IMPORTANCES,
    PruningReport,
    prune_channels,
)
from nascompress.compression.quantization import (
    QUANTIZABLE_TYPES,
    SCHEMES,
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

__all__ = [
    "IMPORTANCES",
    "NNI_IMPORTANCES",
    "QUANTIZABLE_TYPES",
    "SCHEMES",
    "ActivationFakeQuantize",
    "FakeQuantize",
    "FeatureDistiller",
    "LowRankReport",
    "PruningReport",
    "QuantizedWeight",
    "SparsityReport",
    "activation_quant_params",
    "apply_lowrank_",
    "artifact_bytes",
    "calibrate_affine",
    "calibrate_scale",
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
