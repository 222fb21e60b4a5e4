"""ONNX deployment path: float export, static int8 (QDQ) quantization, ONNX Runtime sessions.

The int8 model is what ONNX Runtime runs on integer kernels, so latency measured on it
(see :mod:`nascompress.latency.ort`) is a real int8 measurement, not a float
model with dequantized weights. :func:`optimized_op_types` shows which kernels a session
actually runs, so a record can check that claim instead of assuming it.

What happens to our models (checked with ONNX Runtime 1.32 on an x86-64 CPU with AVX-512
VNNI, ``image-cnn`` family): the exporter folds BatchNorm into the conv; the quantizer
drops each ReLU, whose clamp at 0 is then done by the saturating 8-bit output
quantization (zero point at the bottom of the range). With ``ORT_ENABLE_ALL`` the CPU
provider fuses every ``DequantizeLinear → Conv → QuantizeLinear`` group into one
``QLinearConv`` and the classifier's ``Gemm`` into a ``QGemm``; ``MaxPool`` runs on uint8
(``NhwcMaxPool``), and so do the layout ``Transpose`` and the ``Flatten``. Only the input
``QuantizeLinear`` and the output ``DequantizeLinear`` touch float: no float ``Conv`` or
``Gemm`` is left. Int8 activations are rewritten to uint8 (the ``qdq_s8_to_u8`` transform
shifts the zero point by 128), as the x86 kernels multiply uint8 activations by int8
weights.

Requires the ``onnx`` extra (``onnx``, ``onnxruntime``; ``onnxscript`` for the dynamo
exporter). Nothing here is imported by the rest of the package at module level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime
    import torch
    from torch import nn

#: Exporters :func:`export_onnx` can use.
EXPORTERS = ("torchscript", "dynamo")
#: Activation types :func:`quantize_onnx_int8` accepts.
ACTIVATION_TYPES = ("uint8", "int8")
#: Op types that compute on integers: one of them in the optimized graph means an integer
#: kernel ran (``QGemm``/``QLinearConv`` in the ``com.microsoft`` domain included).
INTEGER_OP_TYPES = frozenset({
    "QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm",
    "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention",
})

# The first supported opset where QuantizeLinear/DequantizeLinear take per-channel scales.
_MIN_OPSET = 13
_INPUT_NAME = "input"
_OUTPUT_NAME = "logits"


def export_onnx(
    model: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
) -> int:
    """Export ``model`` in eval mode to an ONNX file, BatchNorm folded into the convs.

    The graph has one input ``"input"`` and one output ``"logits"``. Constant folding is on,
    so each ``Conv2d(bias=False) → BatchNorm2d`` pair becomes one ``Conv`` with a bias,
    which is what the int8 quantizer and ONNX Runtime's fusions expect. The model's
    training/eval mode is restored afterwards.

    Exporter choice: ``"torchscript"`` (the default) is the legacy TorchScript exporter.
    torch ≥ 2.9 deprecates it, but it is still present in torch 2.13 and exists in every
    torch this package supports (≥ 2.3), it exports our CNNs in about 0.1 s against
    0.6–2.3 s for ``"dynamo"`` (a search exports every 8-bit candidate), and it writes the
    requested opset directly, whereas the dynamo exporter builds opset 18 and converts
    down. ``"dynamo"`` (``torch.export`` + onnxscript, torch ≥ 2.5) is the exporter torch
    will keep; its graphs give the same outputs and quantize to the same integer kernels,
    so switching is one keyword. Both exporters' deprecation warnings, progress prints and
    log lines are silenced for the duration of the call: they are about torch internals,
    not about the model.

    Args:
        model: the float model (pruned and/or fine-tuned; no fake-quantization wrappers).
        example_input: one batch shaped like the real inputs, e.g. ``(1, 1, 8, 8)``;
            moved to the model's device.
        path: file to write; missing parent folders are created.
        opset: ONNX opset, at least 13 (per-channel QDQ needs it).
        dynamic_batch: make the first input dimension symbolic (``"batch"``), so one file
            serves every batch size; ``False`` fixes it to ``example_input``'s.
        exporter: ``"torchscript"`` or ``"dynamo"`` (see above).

    Returns:
        The number of bytes written.

    Raises:
        ValueError: an option is out of range.
    """
    import torch

    if isinstance(opset, bool) or not isinstance(opset, int) or opset < _MIN_OPSET:
        raise ValueError(f"opset must be an integer >= {_MIN_OPSET}, but got {opset!r}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, but got {exporter!r}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1:
        raise ValueError(
            "example_input must be a torch.Tensor with a batch dimension, but got "
            f"{_describe(example_input)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parameter = next(model.parameters(), None)
    if parameter is not None:
        example_input = example_input.to(parameter.device)

    was_training = model.training
    model.eval()
    try:
        with _quiet_export(), torch.no_grad():
            if exporter == "torchscript":
                axes = {_INPUT_NAME: {0: "batch"}, _OUTPUT_NAME: {0: "batch"}}
                torch.onnx.export(
                    model, (example_input,), str(path),
                    input_names=[_INPUT_NAME], output_names=[_OUTPUT_NAME],
                    opset_version=opset, do_constant_folding=True,
                    training=torch.onnx.TrainingMode.EVAL,
                    dynamic_axes=axes if dynamic_batch else None,
                    dynamo=False,
                )
            else:
                shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
                torch.onnx.export(
                    model, (example_input,), str(path),
                    input_names=[_INPUT_NAME], output_names=[_OUTPUT_NAME],
                    opset_version=opset, dynamic_shapes=shapes,
                    dynamo=True, optimize=True, verbose=False,
                )
    finally:
        model.train(was_training)
    return path.stat().st_size


def quantize_onnx_int8(
    fp32_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    *,
    calibration: np.ndarray | torch.Tensor,
    per_channel: bool = True,
    batch_size: int = 32,
    activations: str = "uint8",
    reduce_range: bool = False,
) -> int:
    """Static int8 post-training quantization of an ONNX model in QDQ format.

    Steps: ONNX Runtime's ``quant_pre_process`` (shape inference and graph clean-up; it
    removes the ``Identity`` nodes the exporter leaves where two folded biases are equal,
    which the quantizer would otherwise leave in float), then ``quantize_static`` with
    MinMax calibration over ``calibration``: int8 symmetric weights (per output channel
    by default), 8-bit asymmetric activations, int32 biases.

    Activation type: ``"uint8"`` (default) is what ONNX Runtime's x86-64 integer kernels
    compute on (uint8 × int8); with ``"int8"`` the CPU provider rewrites the activations to
    uint8 at load time, so on x86 both give the same kernels, speed and predictions.
    ``"int8"`` is the usual choice for ARM and for other runtimes.

    On x86 CPUs without VNNI the uint8 × int8 instructions can saturate their 16-bit
    intermediate sums; ``reduce_range=True`` quantizes weights to 7 bits to avoid that, at
    some accuracy cost. CPUs with VNNI (AVX-512 VNNI, AVX-VNNI) do not need it.

    The result re-quantizes the float weights: the accuracy of the int8 model must be
    measured on it (:func:`onnx_accuracy`), not taken from any other quantizer.

    Args:
        fp32_path: float ONNX model, e.g. from :func:`export_onnx`.
        int8_path: file to write; missing parent folders are created.
        calibration: representative inputs ``(N, *input_shape)``, typically a few hundred
            training examples (never the test split).
        per_channel: one weight scale per output channel (better accuracy, same speed).
        batch_size: calibration inputs per inference; the model must have a dynamic batch
            dimension unless it equals the model's fixed batch.
        activations: ``"uint8"`` or ``"int8"`` (see above).
        reduce_range: 7-bit weights, for x86 CPUs without VNNI.

    Returns:
        The number of bytes written.

    Raises:
        ValueError: an option is out of range or ``calibration`` is empty or misshapen.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _check_positive_int("batch_size", batch_size)
    if activations not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be one of {ACTIVATION_TYPES}, but got {activations!r}")
    data = _as_float_array("calibration", calibration)
    if data.ndim < 2 or len(data) == 0:
        raise ValueError(
            "calibration must be a non-empty array shaped (N, *input_shape), but got shape "
            f"{data.shape}"
        )
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    input_name = _single_input_name(fp32_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)

    activation_type = QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8
    with tempfile.TemporaryDirectory(prefix="nascompress-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared), str(int8_path),
            _BatchReader(input_name, data, batch_size),
            quant_format=QuantFormat.QDQ,
            activation_type=activation_type,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return int8_path.stat().st_size


def ort_session(path: str | os.PathLike[str], *, threads: int = 1) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session set up for comparable latency.

    ``threads`` intra-op threads, one inter-op thread, sequential execution, every graph
    optimization (``ORT_ENABLE_ALL``: QDQ fusion into integer kernels, layout changes).

    Args:
        path: ONNX model file.
        threads: intra-op threads; fixed so that measurements are comparable.

    Raises:
        ValueError: ``threads`` is not an integer >= 1.
    """
    import onnxruntime as ort

    _check_positive_int("threads", threads)
    return ort.InferenceSession(
        str(path), _session_options(threads), providers=["CPUExecutionProvider"]
    )


def optimized_op_types(path: str | os.PathLike[str], *, threads: int = 1) -> list[str]:
    """Node op types of the graph a CPU session built like :func:`ort_session` runs.

    The session writes its optimized graph to a temporary file, which is read back. With
    ``ORT_ENABLE_ALL`` that graph holds CPU-specific layouts, so it is only for inspection.
    Op types of :data:`INTEGER_OP_TYPES` in the result mean integer kernels run.

    Args:
        path: ONNX model file.
        threads: as in :func:`ort_session`.
    """
    import onnx
    import onnxruntime as ort

    _check_positive_int("threads", threads)
    with tempfile.TemporaryDirectory(prefix="nascompress-ort-") as tmp:
        options = _session_options(threads)
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        # ONNX Runtime warns that the saved graph is hardware specific: we know, and only
        # read it here.
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    return [node.op_type for node in graph.node]


def onnx_accuracy(
    session: onnxruntime.InferenceSession, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256
) -> float:
    """Top-1 accuracy of a session's first output (logits ``(N, classes)``) on ``(x, y)``.

    Args:
        session: an ONNX Runtime session with one input.
        x: inputs ``(N, *input_shape)``; cast to float32.
        y: integer labels ``(N,)``.
        batch_size: inputs per run. A model exported with a fixed batch is run in chunks
            of that batch instead (the last chunk padded, the padding discarded).

    Raises:
        ValueError: ``x`` and ``y`` disagree in length, are empty, or ``batch_size < 1``.
    """
    _check_positive_int("batch_size", batch_size)
    x = _as_float_array("x", x)
    y = np.asarray(y)
    if y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise ValueError(
            "x and y must hold the same non-zero number of examples with y shaped (N,), but "
            f"got x.shape={x.shape}, y.shape={y.shape}"
        )
    model_input = _single_session_input(session)
    fixed = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    step = fixed or batch_size
    correct = 0
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        n = len(chunk)
        if fixed and n < fixed:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        logits = session.run(None, {model_input.name: chunk})[0][:n]
        correct += int((logits.argmax(axis=1) == y[start:start + n]).sum())
    return correct / len(y)


class _BatchReader:
    """Feeds calibration inputs to ``quantize_static`` in batches (a CalibrationDataReader)."""

    def __init__(self, input_name: str, data: np.ndarray, batch_size: int) -> None:
        self._batches = iter(
            [{input_name: data[i:i + batch_size]} for i in range(0, len(data), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _single_session_input(session: Any) -> Any:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(
            f"session must have one input, but has {[i.name for i in inputs]}"
        )
    return inputs[0]


def _single_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    if len(names) != 1:
        raise ValueError(f"fp32_path must hold a model with one input, but {path} has {names}")
    return names[0]


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    # Scoped to the export call: the legacy exporter's DeprecationWarnings, the dynamo
    # exporter's FutureWarnings from torch internals, and its log lines (missing
    # torchvision ops, opset 18 → 17 conversion) say nothing about the user's model.
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, but got {value!r}")


def _as_float_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor, possibly on a GPU
        value = value.detach().cpu().numpy()
    try:
        return np.ascontiguousarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric array, but got {_describe(value)}") from error


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} with shape {tuple(shape)}" if shape is not None else repr(value)
