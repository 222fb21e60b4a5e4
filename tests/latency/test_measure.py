import pytest

from nascompress.latency.measure import LatencySetup

torch = pytest.importorskip("torch")


def test_setup_validation_names_the_field():
    with pytest.raises(ValueError, match="latency.threads"):
        LatencySetup(threads=0)
    with pytest.raises(ValueError, match="latency.max_repeats"):
        LatencySetup(min_repeats=10, max_repeats=5)
    with pytest.raises(ValueError, match="latency.device"):
        LatencySetup(device="tpu")


def test_measure_reports_median_spread_and_repeats():
    from nascompress.latency.measure import measure_latency

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    setup = LatencySetup(batch_size=4, warmup=2, min_repeats=5, max_repeats=50, time_cap_s=0.5)
    result = measure_latency(model, torch.zeros(1, 64), setup)
    assert result.median_ms > 0 and result.q1_ms <= result.median_ms <= result.q3_ms
    assert 5 <= result.repeats <= 50 and result.batch_size == 4 and result.device == "cpu"
    metrics = result.as_metrics()
    assert metrics["latency_iqr_ms"] == pytest.approx(result.q3_ms - result.q1_ms)


def test_cuda_is_refused_clearly_without_a_gpu_and_auto_falls_back():
    from nascompress.latency.measure import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="no GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_event_timing():
    from nascompress.latency.measure import measure_latency

    model = torch.nn.Linear(256, 256)
    result = measure_latency(model, torch.zeros(1, 256),
                             LatencySetup(device="cuda", min_repeats=5, max_repeats=20))
    assert result.device == "cuda" and result.median_ms > 0
