"""The per-layer latency table: kernels cut from models, timed once, summed and calibrated."""

import json

import pytest

torch = pytest.importorskip("torch")

from nascompress.latency.layer_table import (  # noqa: E402
    LayerTable,
    TablePredictor,
    measure_kernel,
    split_kernels,
)
from nascompress.latency.measure import LatencySetup  # noqa: E402
from nascompress.latency.predictor import LatencyPrefilter, compressed_structure  # noqa: E402
from nascompress.spaces import ImageCNNSpace  # noqa: E402

SHAPE = (1, 8, 8)
SPACE = ImageCNNSpace()


def _params(width, depth=2, ratio=0.0, bits=32, lowrank=1.0):
    return {"arch/depth": depth, "arch/width": width, "arch/kernel": 3, "prune/ratio": ratio,
            "quant/bits": bits, "lowrank/ratio": lowrank}


def _kernels(params):
    model = compressed_structure(SPACE, params, input_shape=SHAPE, num_classes=10)
    return split_kernels(model, SHAPE)


def _fake_timer(calls):
    """A deterministic 'measurement': proportional to the kernel's parameter count."""

    def time_kernel(kernel, kind):
        calls.append(kernel.signature)
        params = sum(p.numel() for m in kernel.modules for p in m.parameters())
        return 1e-4 * params * (0.5 if kind == "int8" else 1.0) + 0.01

    return time_kernel


def test_kernels_start_at_weighted_layers_and_keep_what_follows():
    kernels = _kernels(_params(16, depth=2))
    names = [[type(m).__name__ for m in k.modules] for k in kernels]
    assert names == [["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"],
                     ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten"],
                     ["Linear"]]
    assert [k.input_shape for k in kernels] == [(1, 8, 8), (16, 4, 4), (16 * 2 * 2,)]
    assert kernels[0].signature.startswith("Conv2d(1, 16, kernel_size=(3, 3)")
    assert kernels[0].signature.endswith("@ [1, 8, 8]")


def test_factorized_convolutions_are_several_kernels():
    plain = _kernels(_params(32, depth=2))
    factorized = _kernels(_params(32, depth=2, lowrank=0.5))
    assert len(factorized) > len(plain)


def test_pruning_changes_the_signatures():
    full = {k.signature for k in _kernels(_params(32))}
    pruned = {k.signature for k in _kernels(_params(32, ratio=0.5))}
    assert not full & pruned


def test_table_times_each_distinct_kernel_once(tmp_path):
    calls = []
    table = LayerTable(setup={"batch_size": 4})
    timer = _fake_timer(calls)
    first, second = _kernels(_params(16, depth=2)), _kernels(_params(16, depth=3))
    assert table.ensure(first, "fp32", timer) == 3
    timed = table.ensure(second, "fp32", timer)  # shares its first kernel with `first`
    assert timed == 3 and len(calls) == 6 and len(set(calls)) == 6
    assert table.ensure(first, "fp32", timer) == 0
    assert table.ensure(first, "int8", timer) == 3  # another kind: other kernels
    assert table.total_ms(first, "int8") < table.total_ms(first, "fp32")
    with pytest.raises(KeyError, match="not in the fp32 table"):
        table.total_ms(_kernels(_params(64)), "fp32")

    path = tmp_path / "table.json"
    table.save(path)
    loaded = LayerTable.load(path, setup={"batch_size": 4})
    assert loaded.times == table.times and len(loaded) == 9
    with pytest.raises(ValueError, match="build a new table"):
        LayerTable.load(path, setup={"batch_size": 8})
    json.loads(path.read_text())  # plain JSON


def test_calibration_recovers_overhead_and_scale():
    table = LayerTable(setup={})
    predictor = TablePredictor(table)
    records = [{"kernel_ms": x, "latency_ms": 0.05 + 0.8 * x, "kind": "fp32"}
               for x in (0.1, 0.3, 1.0, 2.5)]
    predictor.calibrate(records)
    overhead, scale = predictor.calibration["fp32"]
    assert overhead == pytest.approx(0.05, rel=1e-6) and scale == pytest.approx(0.8, rel=1e-6)
    predictor.calibrate([{"kernel_ms": 2.0, "latency_ms": 1.0, "kind": "int8"}])
    assert predictor.calibration["int8"] == (0.0, 0.5)
    with pytest.raises(ValueError, match="positive"):
        predictor.calibrate([{"kernel_ms": 0.0, "latency_ms": 1.0}, {"kernel_ms": 1.0,
                                                                     "latency_ms": 1.0}])


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_a_kernel_is_timed_alone_on_onnx_runtime(kind):
    setup = LatencySetup(batch_size=8, warmup=2, min_repeats=5, max_repeats=20, time_cap_s=0.5)
    kernels = _kernels(_params(16, depth=1))
    assert all(measure_kernel(k, kind, setup) > 0 for k in kernels)


def test_prefilter_with_the_table_waits_for_calibration_then_rejects():
    calls = []
    timer = _fake_timer(calls)
    truth = LayerTable(setup={})

    def measured(params):  # what the whole model "measures": 0.9 x the sum + 0.02
        kernels = _kernels(params)
        truth.ensure(kernels, "fp32", timer)
        return 0.02 + 0.9 * truth.total_ms(kernels, "fp32")

    bound = measured(_params(16))
    prefilter = LatencyPrefilter(bound=bound, space=SPACE, input_shape=SHAPE, num_classes=10,
                                 min_records=3, method="layer-table", time_kernel=timer)
    assert prefilter(_params(64, depth=3)) is None  # not calibrated: nothing is filtered
    for width in (8, 16, 32):
        params = _params(width, depth=1)
        prefilter.observe({"state": "COMPLETE", "params": params,
                           "objectives": {"latency_ms": measured(params)},
                           "metrics": {"latency_cached": False}})
    assert prefilter.predict(_params(16)) == pytest.approx(bound, rel=1e-6)
    reason, metrics = prefilter(_params(64, depth=3))
    assert "layer-table" in reason and "not trained" in reason
    assert metrics["predictor"] == "layer-table" and metrics["predictor_trained_on"] == 3
    assert prefilter(_params(16)) is None


def test_prefilter_table_needs_a_timer():
    with pytest.raises(ValueError, match="time_kernel"):
        LatencyPrefilter(bound=1.0, space=SPACE, input_shape=SHAPE, num_classes=10,
                         method="layer-table")
    with pytest.raises(ValueError, match="method must be one of"):
        LatencyPrefilter(bound=1.0, space=SPACE, input_shape=SHAPE, num_classes=10,
                         method="lookup")


@pytest.mark.parametrize(("predictor", "runtime", "method"), [
    ("layer-table", "onnxruntime", "layer-table"),
    ("regression", "onnxruntime", "regression"),
    ("layer-table", "torch", "regression"),  # no table of torch kernels: the regression
])
def test_the_experiment_builds_the_configured_prefilter(tmp_path, predictor, runtime, method):
    from nascompress.config import parse_config
    from nascompress.search.experiment import build_experiment

    config = parse_config({
        "name": "filtered", "output_dir": str(tmp_path), "trials": 2,
        "constraints": ["latency_ms <= 0.5"],
        "latency": {"predictor_filter": True, "predictor": predictor, "runtime": runtime,
                    "batch_size": 4, "warmup": 1, "min_repeats": 3, "max_repeats": 10},
    })
    prefilter = build_experiment(config).prefilter()
    assert prefilter.method == method and prefilter.bound == 0.5
    if method == "layer-table":
        # times a kernel for real, through the search's (local) latency gate and cache
        assert prefilter.predict(_params(16, depth=1)) > 0
        assert len(prefilter._table_predictor.table) == 2
