import numpy as np
import onnxruntime as ort  # a core dependency, like onnx
import pytest

torch = pytest.importorskip("torch")

from nascompress.compression.onnx_export import (  # noqa: E402
    export_onnx,
    ort_session,
    quantize_onnx_int8,
)
from nascompress.latency.measure import LatencySetup  # noqa: E402
from nascompress.latency.ort import measure_ort_latency  # noqa: E402
from nascompress.spaces.image_cnn import ImageCNNSpace  # noqa: E402

QUICK = {"warmup": 2, "min_repeats": 5, "max_repeats": 40, "time_cap_s": 0.5}


class RecordingSession:
    """Passes everything to a real session and records the shape of every fed batch."""

    def __init__(self, session):
        self._session = session
        self.shapes = []

    def __getattr__(self, name):
        return getattr(self._session, name)

    def run(self, output_names, feed):
        self.shapes += [value.shape for value in feed.values()]
        return self._session.run(output_names, feed)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    params = {"arch/depth": 2, "arch/width": 16, "arch/kernel": 3}
    model = ImageCNNSpace().build_model(params, input_shape=(1, 8, 8), num_classes=10)
    folder = tmp_path_factory.mktemp("ort")
    x = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    export_onnx(model, torch.from_numpy(x[:1]), folder / "fp32.onnx")
    export_onnx(model, torch.from_numpy(x[:2]), folder / "fixed.onnx", dynamic_batch=False)
    quantize_onnx_int8(folder / "fp32.onnx", folder / "int8.onnx", calibration=x)
    return folder, x


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_result_is_sane_and_batch_size_is_respected(models, name):
    folder, x = models
    session = RecordingSession(ort_session(folder / f"{name}.onnx"))
    setup = LatencySetup(batch_size=8, **QUICK)
    result = measure_ort_latency(session, x[:3].astype(np.float64), setup)
    assert result.median_ms > 0 and result.q1_ms <= result.median_ms <= result.q3_ms
    assert 5 <= result.repeats <= 40
    assert (result.device, result.threads, result.batch_size) == ("cpu", 1, 8)
    assert result.converged == (result.iqr_ms <= 0.1 * result.median_ms)
    assert len(session.shapes) == 2 + result.repeats  # warm-up, then every timed run
    assert set(session.shapes) == {(8, 1, 8, 8)}
    assert result.as_metrics()["latency_batch_size"] == 8


def test_auto_device_is_cpu_for_a_cpu_session(models):
    folder, x = models
    result = measure_ort_latency(ort_session(folder / "fp32.onnx"), x[:1],
                                 LatencySetup(device="auto", batch_size=1, **QUICK))
    assert result.device == "cpu" and result.batch_size == 1


def test_thread_mismatch_is_refused(models):
    folder, x = models
    with pytest.raises(ValueError, match="latency.threads is 2 .* intra_op_num_threads=1"):
        measure_ort_latency(ort_session(folder / "fp32.onnx"), x, LatencySetup(threads=2))


def test_fixed_batch_mismatch_is_refused(models):
    folder, x = models
    session = ort_session(folder / "fixed.onnx")
    with pytest.raises(ValueError, match="latency.batch_size is 16 .* fixed to 2"):
        measure_ort_latency(session, x, LatencySetup(batch_size=16))
    assert measure_ort_latency(session, x, LatencySetup(batch_size=2, **QUICK)).median_ms > 0


def test_empty_example_is_refused(models):
    folder, x = models
    with pytest.raises(ValueError, match="example_input must hold at least one example"):
        measure_ort_latency(ort_session(folder / "fp32.onnx"), x[:0], LatencySetup())


def test_cuda_needs_a_cuda_session(models):
    folder, x = models
    with pytest.raises(ValueError, match="latency.device is 'cuda'.*CPUExecutionProvider"):
        measure_ort_latency(ort_session(folder / "fp32.onnx"), x, LatencySetup(device="cuda"))


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_session_is_timed_on_the_gpu(models):
    folder, x = models
    session = ort.InferenceSession(str(folder / "fp32.onnx"),
                                   providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    result = measure_ort_latency(session, x, LatencySetup(device="cuda", **QUICK))
    assert result.device == "cuda" and result.median_ms > 0
