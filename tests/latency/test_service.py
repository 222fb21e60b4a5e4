"""The latency gate (leases, expiry), the cache, and the pinned measurement service."""

import json
import os
import sys
import textwrap
import threading
import time

import pytest

from nascompress.latency.client import TrialLatency
from nascompress.latency.gate import GateState, LeaseTable
from nascompress.latency.measure import LatencyResult
from nascompress.latency.settings import LatencyServiceConfig
from tests._procs import run_reaped


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _result(ms=1.0):
    return LatencyResult(median_ms=ms, q1_ms=ms, q3_ms=ms, repeats=5, converged=True,
                         device="cpu", threads=1, batch_size=1)


# --------------------------------------------------------------------------- lease table


def test_trainings_share_and_a_measurement_waits_for_their_checkpoints():
    table = LeaseTable(ttl_s=10, clock=FakeClock())
    assert table.try_shared("a") and table.try_shared("b")
    assert not table.try_exclusive("m")  # two trainings hold the node
    assert table.state() == {"shared": ["a", "b"], "waiting": ["m"], "writer": None}
    # At their next checkpoint the trainings are refused (writer preference) and pause.
    assert not table.try_shared("a")
    assert not table.try_exclusive("m")  # b has not reached its checkpoint yet
    assert not table.try_shared("b")
    assert table.try_exclusive("m")
    assert not table.try_shared("a")  # paused while the measurement runs
    table.release("m")
    assert table.try_shared("a") and table.try_shared("b")


def test_asking_for_the_exclusive_lease_drops_the_askers_own_shared_lease():
    table = LeaseTable(ttl_s=10, clock=FakeClock())
    assert table.try_shared("trial")
    assert table.try_exclusive("trial")


def test_writers_are_served_in_arrival_order():
    table = LeaseTable(ttl_s=10, clock=FakeClock())
    assert table.try_shared("t")
    assert not table.try_exclusive("first") and not table.try_exclusive("second")
    table.release("t")
    assert not table.try_exclusive("second") and table.try_exclusive("first")
    table.release("first")
    assert table.try_exclusive("second")


def test_a_dead_holder_stops_blocking_after_the_ttl():
    clock = FakeClock()
    table = LeaseTable(ttl_s=5, clock=clock)
    assert table.try_shared("dies")  # and is never heard of again
    assert not table.try_exclusive("m")
    clock.now = 4.9
    assert not table.try_exclusive("m")
    clock.now = 5.1
    assert table.try_exclusive("m")


def test_a_dead_waiting_writer_stops_blocking_trainings_after_the_ttl():
    clock = FakeClock()
    table = LeaseTable(ttl_s=5, clock=clock)
    assert table.try_shared("t")
    assert not table.try_exclusive("dies")
    assert not table.try_shared("t")
    clock.now = 6.0
    assert table.try_shared("t")


def test_renew_keeps_a_live_holder_and_reports_an_expired_one():
    clock = FakeClock()
    table = LeaseTable(ttl_s=5, clock=clock)
    table.try_shared("t")
    clock.now = 4.0
    assert table.renew("t")
    clock.now = 8.0
    assert not table.try_exclusive("m")  # renewed at 4.0: valid until 9.0
    clock.now = 9.5
    assert not table.renew("t")
    assert table.try_exclusive("m")


# --------------------------------------------------------------------------- the client


def _client(state, **overrides):
    config = LatencyServiceConfig(**{"cache": False, "poll_s": 0.005,
                                     "checkpoint_interval_s": 0.0, **overrides})
    return TrialLatency(config, backend=state)


def test_a_measurement_never_overlaps_a_training_batch():
    state = GateState(ttl_s=5)
    in_batch = threading.Event()
    stop = threading.Event()
    batches = []

    def train():
        trainer = _client(state)
        with trainer.training():
            while not stop.is_set():
                trainer.checkpoint()
                in_batch.set()
                time.sleep(0.01)  # a batch
                in_batch.clear()
                batches.append(time.monotonic())

    threads = [threading.Thread(target=train) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    overlaps = []

    def measure():
        started = time.monotonic()
        while time.monotonic() - started < 0.1:
            overlaps.append(in_batch.is_set())
            time.sleep(0.002)
        return _result()

    result = _client(state).measure_exclusive(measure)
    during = [t for t in batches if t > time.monotonic() - 0.09]
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    assert result.exclusive and result.gate == "local" and result.wait_s >= 0
    assert not any(overlaps)
    assert during == []  # no batch finished while the measurement ran
    assert len(batches) > 4  # and training went on before


def test_a_trial_that_dies_holding_a_lease_delays_but_never_deadlocks():
    state = GateState(ttl_s=0.3)
    assert state.try_shared("dead-trial")  # no heartbeat: the process is gone
    result = _client(state).measure_exclusive(_result)
    assert result.exclusive and 0.25 <= result.wait_s < 5


def test_a_live_holder_that_never_checkpoints_is_outwaited_and_recorded():
    state = GateState(ttl_s=10)
    assert state.try_shared("stuck")
    result = _client(state, max_wait_s=0.2).measure_exclusive(_result)
    assert not result.exclusive and result.wait_s >= 0.2
    assert state.state()["waiting"] == []  # the measurement left the queue


def test_gate_off_measures_at_once():
    state = GateState(ttl_s=10)
    assert state.try_shared("training")
    result = _client(state, exclusive=False).measure_exclusive(_result)
    assert result.gate == "off" and not result.exclusive and result.wait_s == 0


# --------------------------------------------------------------------------- cache


torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def _onnx(width, seed):
    import tempfile
    from pathlib import Path

    from nascompress.compression.onnx_export import export_onnx

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(width * 64, 10))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, torch.zeros(1, 1, 8, 8), path)
        return path.read_bytes()


def test_structure_hash_ignores_weight_values_but_not_shapes():
    from nascompress.latency.cache import onnx_structure_hash

    a, b, c = _onnx(8, seed=0), _onnx(8, seed=1), _onnx(16, seed=0)
    assert a != b
    assert onnx_structure_hash(a) == onnx_structure_hash(b)
    assert onnx_structure_hash(a) != onnx_structure_hash(c)


def test_the_same_structure_is_measured_once_per_search():
    import numpy as np

    from nascompress.latency.measure import LatencySetup

    setup = LatencySetup(batch_size=2, warmup=1, min_repeats=3, max_repeats=5, time_cap_s=0.1)
    state = GateState(ttl_s=5)
    client = TrialLatency(LatencyServiceConfig(search_key="cache-test"), backend=state)
    x = np.zeros((1, 1, 8, 8), np.float32)
    first = client.measure_onnx(_onnx(8, seed=0), x, setup)
    again = client.measure_onnx(_onnx(8, seed=1), x, setup)  # other weights, same shape
    other = client.measure_onnx(_onnx(16, seed=0), x, setup)
    assert not first.cached and first.exclusive
    assert again.cached and again.median_ms == first.median_ms and again.wait_s == 0
    assert not other.cached
    assert state.state()["cached"] == 2
    longer = LatencySetup(batch_size=4, warmup=1, min_repeats=3, max_repeats=5, time_cap_s=0.1)
    assert not client.measure_onnx(_onnx(8, seed=0), x, longer).cached  # setup is in the key


def test_cuda_without_its_provider_is_refused_with_a_clear_message():
    import onnxruntime as ort

    from nascompress.latency.ort import resolve_ort_device

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    assert resolve_ort_device("auto") == "cpu"
    with pytest.raises(ValueError, match="CUDAExecutionProvider.*onnxruntime-gpu"):
        resolve_ort_device("cuda")


def test_device_resource_needs_ray():
    with pytest.raises(ValueError, match="device_resource.*Ray runner"):
        LatencyServiceConfig(device_resource="latency_target")


# --------------------------------------------------------------------------- ray


@pytest.mark.ray
def test_a_ray_gate_pauses_trainings_in_other_processes(ray_session):
    ray = ray_session
    from nascompress.latency import connection, ray_services

    config = LatencyServiceConfig(backend="ray", search_key="gate-test", cache=False,
                                  poll_s=0.005, checkpoint_interval_s=0.0, lease_ttl_s=5)
    ray_services.start_ray_services(config)
    try:
        @ray.remote(num_cpus=0)
        def train(seconds):
            client = connection.open_client(config, "trainer")
            stamps = []
            with client.training():
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    client.checkpoint()
                    started = time.time()
                    time.sleep(0.01)
                    stamps.append((started, time.time()))
            return stamps

        job = train.remote(3.0)
        gate = ray_services.ray_gate_backend(config)
        deadline = time.monotonic() + 120
        while not gate.state()["shared"]:  # a fresh worker takes a while to start
            assert time.monotonic() < deadline, "the trainer never started"
            time.sleep(0.05)
        time.sleep(0.3)
        client = connection.open_client(config, "measurer")

        def measure():
            started = time.time()
            time.sleep(0.2)
            return started, time.time()

        window = {}

        def timed():
            window["span"] = measure()
            return _result()

        result = client.measure_exclusive(timed)
        stamps = ray.get(job)
        start, end = window["span"]
        assert result.exclusive and result.gate == "ray"
        assert not any(s < end and e > start for s, e in stamps)  # no batch overlapped
        assert any(e <= start for s, e in stamps) and any(s >= end for s, e in stamps)
    finally:
        ray_services.stop_ray_services(config)
    names = ray.util.list_named_actors()
    assert not [n for n in names if "gate-test" in n]


SERVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from nascompress import cli

    # address="local": a new Ray of our own, even when another is running on this machine.
    ray.init(address="local", num_cpus=2, resources={"latency_target": 1},
             include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    code = cli.main(["search", "--config", sys.argv[1], "--output-dir", sys.argv[2],
                     "--name", "pinned", "--quiet"])
    leftover = [n for n in ray.util.list_named_actors() if n.startswith("nascompress-")]
    print("NODE", ray.get_runtime_context().get_node_id())
    print("LEFTOVER", json.dumps(leftover))
    ray.shutdown()
    sys.exit(code)
""")

# One point of the space: every trial builds the same structure, so after the first
# measurement the service answers from its cache.
SERVICE_CONFIG = """
trials: 3
max_concurrent: 2
strategy: {name: random}
latency: {device_resource: latency_target, min_repeats: 3, max_repeats: 10, warmup: 1,
          time_cap_s: 0.2}
space:
  dimensions:
    arch/depth: {type: categorical, choices: [1]}
    arch/width: {type: categorical, choices: [8]}
    arch/kernel: {type: categorical, choices: [3]}
    prune/ratio: {type: categorical, choices: [0.0]}
    quant/bits: {type: categorical, choices: [32]}
    lowrank/ratio: {type: categorical, choices: [1.0]}
    distill/alpha: {type: categorical, choices: [0.0]}
    distill/feature_weight: {type: categorical, choices: [0.0]}
evaluator:
  options: {epochs: 1, finetune_epochs: 1, teacher_epochs: 1}
"""


@pytest.mark.ray
def test_measurements_run_on_the_pinned_target_and_are_cached(tmp_path):
    config = tmp_path / "experiment.yaml"
    config.write_text(SERVICE_CONFIG)
    done = run_reaped([sys.executable, "-c", SERVICE_SCRIPT, str(config), str(tmp_path)],
                          timeout=300,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines()
                 if line.startswith(("NODE", "LEFTOVER")))
    assert json.loads(lines["LEFTOVER"]) == []  # gate and service removed at the end
    trials = [json.loads(line)
              for line in (tmp_path / "pinned" / "trials.jsonl").read_text().splitlines()]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3, [t["error"] for t in trials]
    metrics = [t["metrics"] for t in trials]
    assert all(m["latency_gate"] == "service" for m in metrics)
    # Timed once, by one trial (its early estimate, before training): every final
    # measurement, that trial's own included, is the cached result.
    assert all(m["latency_cached"] for m in metrics)
    assert len({m["latency_measured_by"] for m in metrics}) == 1
    assert metrics[0]["latency_measured_by"] in {t["trial_id"] for t in trials}
    for m in metrics:
        assert m["latency_exclusive"] is True and m["latency_repeats"] >= 3
        assert m["latency_median_ms"] == metrics[0]["latency_median_ms"]
    run = json.loads((tmp_path / "pinned" / "run.json").read_text())
    assert run["latency"]["device_resource"] == "latency_target"


def _device_resource_experiment(tmp_path, runner):
    from nascompress.config import parse_config
    from nascompress.search.experiment import build_experiment

    return build_experiment(parse_config({
        "name": runner, "output_dir": str(tmp_path), "trials": 1, "runner": runner,
        "strategy": {"name": "random"}, "latency": {"device_resource": "nowhere"}}))


def test_a_pinned_target_needs_the_ray_runner(tmp_path):
    from nascompress.config import ConfigError
    from nascompress.search.local import run_local

    experiment = _device_resource_experiment(tmp_path, "local")
    with pytest.raises(ConfigError, match="device_resource.*runner 'ray'"):
        run_local(experiment, stream=None)
    assert not (tmp_path / "local" / "trials.jsonl").exists()


@pytest.mark.ray
def test_a_resource_no_node_declares_is_refused_before_any_trial(ray_session, tmp_path):
    from nascompress.config import ConfigError
    from nascompress.search.controller import run_ray

    experiment = _device_resource_experiment(tmp_path, "ray")
    with pytest.raises(ConfigError, match="no node of the Ray cluster declares"):
        run_ray(experiment, stream=None)
    assert not [n for n in ray_session.util.list_named_actors() if n.startswith("nascompress-")]
    log = tmp_path / "ray" / "trials.jsonl"
    assert not log.exists() or not log.read_text().strip()
