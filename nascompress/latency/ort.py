"""Latency of an ONNX Runtime session, by the same protocol as :func:`measure_latency`.

For an int8 QDQ model (:func:`nascompress.compression.onnx_export.quantize_onnx_int8`)
this times ONNX Runtime's integer kernels, so the result is a real int8 measurement;
:func:`nascompress.compression.onnx_export.optimized_op_types` shows which kernels run.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nascompress.latency.measure import (
    LatencyResult,
    LatencySetup,
    summarize,
    time_until_stable,
    wall_clock_ms,
)

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
# ONNX Runtime element types of the inputs we can build from a float example.
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(float16)": np.float16}


def measure_ort_latency(session, example_input: np.ndarray, setup: LatencySetup) -> LatencyResult:
    """Time ``session.run`` per :class:`LatencySetup` and summarise.

    ``example_input``'s first example is repeated to ``setup.batch_size``; ``setup.warmup``
    untimed runs, then timed runs until the IQR is at most ``setup.target_rel_iqr`` × the
    median (after ``setup.min_repeats``), ``setup.max_repeats`` runs, or
    ``setup.time_cap_s`` of timing. Each run is bracketed by ``time.perf_counter``.

    Threads are fixed when a session is created, so ``setup.threads`` is checked against
    the session's ``intra_op_num_threads`` rather than set (build the session with
    :func:`~nascompress.compression.onnx_export.ort_session` and ``threads=setup.threads``).

    Device: ``"cpu"`` times the session on its CPU provider. ``"cuda"`` needs a session
    that runs on ``CUDAExecutionProvider`` (the ``onnxruntime-gpu`` build); the batch is
    then copied to the GPU once and bound with I/O binding, outputs stay on the GPU, and
    ONNX Runtime's end-of-run stream synchronisation makes wall-clock timing valid.
    ``"auto"`` picks ``"cuda"`` when the session runs on CUDA, else ``"cpu"``.

    Args:
        session: an ``onnxruntime.InferenceSession`` with one input.
        example_input: one example or a batch, shaped ``(N, *input_shape)``.
        setup: the measurement protocol.

    Returns:
        Milliseconds per run of one batch: median, quartiles, repeats, and whether the
        spread target was met.

    Raises:
        ValueError: the device, threads or batch size in ``setup`` cannot be honoured by
            this session, or ``example_input`` is empty.
    """
    device = _resolve_session_device(session, setup.device)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"session must have one input, but has {[i.name for i in inputs]}")
    model_input = inputs[0]
    if device == "cpu":
        threads = session.get_session_options().intra_op_num_threads
        if threads != setup.threads:
            raise ValueError(
                f"latency.threads is {setup.threads} but the session was built with "
                f"intra_op_num_threads={threads}; build it with threads={setup.threads}"
            )
    fixed = model_input.shape[0] if model_input.shape else None
    if isinstance(fixed, int) and fixed != setup.batch_size:
        raise ValueError(
            f"latency.batch_size is {setup.batch_size} but the model's batch dimension is "
            f"fixed to {fixed}; export it with a dynamic batch"
        )
    example = np.asarray(example_input)
    if example.ndim < 1 or len(example) == 0:
        raise ValueError(
            "example_input must hold at least one example along its first dimension, but "
            f"got shape {example.shape}"
        )
    dtype = _NUMPY_TYPES.get(model_input.type, example.dtype)
    batch = np.ascontiguousarray(np.repeat(example[:1], setup.batch_size, axis=0), dtype=dtype)

    run = _runner(session, model_input.name, batch, device)
    for _ in range(setup.warmup):
        run()
    return summarize(time_until_stable(lambda: wall_clock_ms(run), setup), setup, device)


def _resolve_session_device(session, device: str) -> str:
    on_cuda = session.get_providers()[0] == _CUDA
    if device == "auto":
        return "cuda" if on_cuda else "cpu"
    if device == "cuda" and not on_cuda:
        raise ValueError(
            "latency.device is 'cuda' but the session runs on "
            f"{session.get_providers()[0]}; use 'cpu' or 'auto', or create the session with "
            f"{_CUDA} (needs the onnxruntime-gpu build)"
        )
    if device == "cpu" and on_cuda:
        raise ValueError(
            f"latency.device is 'cpu' but the session runs on {_CUDA}; use 'cuda' or 'auto', "
            "or create the session with CPUExecutionProvider"
        )
    return device


def _runner(session, input_name: str, batch: np.ndarray, device: str) -> Any:
    if device == "cpu":
        feed = {input_name: batch}
        return lambda: session.run(None, feed)

    import onnxruntime as ort

    # The batch is copied to the GPU once, as measure_latency moves it before timing:
    # host-device copies are not part of the model's latency.
    binding = session.io_binding()
    on_device = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", 0)
    binding.bind_ortvalue_input(input_name, on_device)
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda")
    return lambda: session.run_with_iobinding(binding)


def resolve_ort_device(device: str) -> str:
    """``"cpu"`` / ``"cuda"`` for ONNX Runtime: ``"auto"`` picks CUDA when its provider exists.

    Raises:
        ValueError: ``"cuda"`` was asked for but this ONNX Runtime build has no
            ``CUDAExecutionProvider`` (the CPU-only ``onnxruntime`` wheel, or no GPU).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        return "cuda" if _CUDA in available else "cpu"
    if device == "cuda" and _CUDA not in available:
        raise ValueError(
            "latency.device is 'cuda' but ONNX Runtime on this node has no "
            f"{_CUDA} (available: {available}); install onnxruntime-gpu where "
            "latency is measured and give it a GPU, or use latency.device 'cpu' or 'auto'"
        )
    return device


def ort_session_for(model: bytes | str | os.PathLike[str], setup: LatencySetup):
    """An ONNX Runtime session built for ``setup``: its threads, and CUDA when asked.

    Session options are those of :func:`~nascompress.compression.onnx_export.ort_session`
    (fixed intra-op threads, sequential execution, every graph optimization).

    Raises:
        ValueError: CUDA was asked for but is unavailable, or its provider failed to
            initialise (ONNX Runtime then silently falls back to the CPU, which would
            time the wrong device).
    """
    import onnxruntime as ort

    from nascompress.compression.onnx_export import _session_options

    device = resolve_ort_device(setup.device)
    providers = [_CUDA, _CPU] if device == "cuda" else [_CPU]
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, _session_options(setup.threads), providers=providers)
    if device == "cuda" and session.get_providers()[0] != _CUDA:
        raise ValueError(
            f"latency.device is 'cuda' but {_CUDA} could not be initialised "
            f"(session runs on {session.get_providers()}); check the CUDA and cuDNN "
            "libraries that onnxruntime-gpu needs"
        )
    return session


def measure_onnx_bytes(model: bytes, example, setup: LatencySetup) -> LatencyResult:
    """Build a session for ``setup`` from ONNX bytes and time it (no gate, no cache)."""
    session = ort_session_for(model, setup)
    return measure_ort_latency(session, np.asarray(example), setup)
