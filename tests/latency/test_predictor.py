"""The latency predictor: layer features, fitting, honest scores, the pre-filter."""

import math

import pytest

torch = pytest.importorskip("torch")

from nascompress.latency.predictor import (  # noqa: E402
    FEATURES,
    LatencyPredictor,
    LatencyPrefilter,
    compressed_structure,
    is_hopeless,
    model_features,
    noise_floor,
    runtime_kind,
    score,
)
from nascompress.spaces import ImageCNNSpace  # noqa: E402

SHAPE = (1, 8, 8)


def _params(width, depth=2, ratio=0.0, bits=32):
    return {"arch/depth": depth, "arch/width": width, "arch/kernel": 3, "prune/ratio": ratio,
            "quant/bits": bits, "lowrank/ratio": 1.0}


def test_features_count_layers_by_kernel_class():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 12, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(12 * 64, 10))
    f = model_features(model, SHAPE)
    assert set(f) == set(FEATURES)
    assert f["conv_blocked_macs"] == 16 * 64 * 1 * 9 and f["conv_blocked_layers"] == 1
    assert f["conv_other_macs"] == 12 * 64 * 16 * 9 and f["conv_other_layers"] == 1
    assert f["linear_macs"] == 12 * 64 * 10 and f["elementwise"] == 16 * 64


def test_structure_follows_pruning():
    space = ImageCNNSpace()
    full = compressed_structure(space, _params(32), input_shape=SHAPE, num_classes=10)
    pruned = compressed_structure(space, _params(32, ratio=0.5), input_shape=SHAPE,
                                  num_classes=10)
    assert model_features(pruned, SHAPE)["conv_blocked_macs"] < \
        model_features(full, SHAPE)["conv_blocked_macs"]


def _synthetic(n, kind="fp32"):
    """Records from known per-feature costs: a fit must reproduce them."""
    cost = {"conv_blocked_macs": 2e-5, "conv_other_macs": 6e-5, "linear_macs": 1e-5}
    rows = []
    for i in range(n):
        features = dict.fromkeys(FEATURES, 0.0)
        features.update(conv_blocked_macs=1e4 * (1 + i % 7), conv_other_macs=5e3 * (i % 5),
                        linear_macs=1e3 * (1 + i % 3))
        latency = 0.05 + sum(cost[k] * features[k] for k in cost)
        rows.append({"features": features, "latency_ms": latency, "kind": kind})
    return rows


def test_fit_recovers_a_linear_cost_and_round_trips(tmp_path):
    rows = _synthetic(40)
    predictor = LatencyPredictor.fit(rows[:30], setup={"batch_size": 16})
    predicted = [predictor.predict(r["features"]) for r in rows[30:]]
    result = score(predicted, [r["latency_ms"] for r in rows[30:]])
    assert result["within"] == 1.0 and result["kendall_tau"] > 0.95
    predictor.save(tmp_path / "p.json")
    again = LatencyPredictor.load(tmp_path / "p.json")
    assert again.predict(rows[35]["features"]) == pytest.approx(predicted[5])
    assert again.setup == {"batch_size": 16} and again.trained_on == 30


def test_a_kind_without_enough_measurements_uses_the_shared_fit():
    predictor = LatencyPredictor.fit(_synthetic(30) + _synthetic(4, kind="int8"))
    assert "fp32" in predictor.coefficients and "int8" not in predictor.coefficients
    assert predictor.predict(_synthetic(1)[0]["features"], kind="int8") > 0


def test_fit_refuses_unusable_records():
    with pytest.raises(ValueError, match="at least 3"):
        LatencyPredictor.fit(_synthetic(2))
    bad = _synthetic(5)
    bad[0]["latency_ms"] = 0.0
    with pytest.raises(ValueError, match="positive"):
        LatencyPredictor.fit(bad)
    with pytest.raises(ValueError, match="not fitted"):
        LatencyPredictor().predict_features(_synthetic(1)[0]["features"])


def test_noise_floor_is_the_run_to_run_cv():
    assert noise_floor([(1.0, 1.0), (2.0, 2.0)]) == 0.0
    assert noise_floor([(0.9, 1.1)]) == pytest.approx(0.2 / math.sqrt(2) / 1.0)


def test_runtime_kind_follows_the_evaluator():
    assert runtime_kind(_params(8, bits=4)) == "int8"
    assert runtime_kind(_params(8)) == "fp32"
    assert runtime_kind(_params(8, bits=4), "torch") == "fp32"


def _macs_predictor():
    """Latency proportional to convolution MACs (1 ms per 10k)."""
    space = ImageCNNSpace()
    rows = []
    for width in (8, 16, 32, 64):
        for depth in (1, 2, 3):
            model = compressed_structure(space, _params(width, depth), input_shape=SHAPE,
                                         num_classes=10)
            f = model_features(model, SHAPE)
            rows.append({"features": f, "latency_ms": 0.01 + (f["conv_blocked_macs"]
                                                              + f["conv_other_macs"]) / 1e4})
    return space, LatencyPredictor.fit(rows)


def test_hopeless_candidates_are_those_far_above_the_bound():
    space, predictor = _macs_predictor()
    big, small = _params(64, 3), _params(8, 1)
    kwargs = {"predictor": predictor, "space": space, "input_shape": SHAPE, "num_classes": 10}
    hopeless, predicted = is_hopeless(big, latency_bound=1.0, **kwargs)
    assert hopeless and predicted > 1.5
    assert not is_hopeless(small, latency_bound=1.0, **kwargs)[0]


def test_prefilter_waits_for_calibration_then_rejects_with_a_reason():
    space, predictor = _macs_predictor()
    prefilter = LatencyPrefilter(bound=1.0, space=space, input_shape=SHAPE, num_classes=10,
                                 min_records=3, refit_every=2)
    assert prefilter(_params(64, 3)) is None  # not calibrated: nothing is filtered
    for width in (8, 16, 32, 64):
        params = _params(width, 2)
        model = compressed_structure(space, params, input_shape=SHAPE, num_classes=10)
        latency = predictor.predict(model_features(model, SHAPE))
        prefilter.observe({"state": "COMPLETE", "params": params,
                           "objectives": {"latency_ms": latency},
                           "metrics": {"latency_cached": False}})
    assert prefilter.predictor is not None and prefilter.predictor.trained_on == 3
    reason, metrics = prefilter(_params(64, 3))
    assert "predicted" in reason and "not trained" in reason
    assert metrics["pruned_by"] == "latency_predictor" and metrics["predicted_latency_ms"] > 1.5
    assert prefilter(_params(8, 1)) is None


def test_the_runner_prunes_a_prefiltered_candidate_without_evaluating():
    from nascompress.evaluators import Evaluator
    from nascompress.objectives import Objective
    from nascompress.search.trial import TrialRunner

    class Never(Evaluator):
        def objectives(self):
            return [Objective("latency_ms", "min")]

        def evaluate(self, *args, **kwargs):
            raise AssertionError("a prefiltered candidate must not be evaluated")

    runner = TrialRunner(space=ImageCNNSpace(), evaluator=Never(),
                         objectives=Never().objectives(), dataset_name="digits",
                         dataset_options={}, search_seed=0,
                         prefilter=lambda params: ("too slow", {"predicted_latency_ms": 9.0}))
    outcome = runner(_params(64), "t")
    assert outcome.state == "PRUNED" and outcome.error == "too slow"
    assert outcome.metrics == {"predicted_latency_ms": 9.0}
