"""The default evaluator on real digits data with a tiny training budget."""

import pytest

torch = pytest.importorskip("torch")

from nascompress.compression import load_artifact  # noqa: E402
from nascompress.data import load_digits_splits  # noqa: E402
from nascompress.evaluators import CompressTrainEvaluator, TrialContext  # noqa: E402
from nascompress.spaces import ImageCNNSpace  # noqa: E402
from nascompress.training.arrays import accuracy  # noqa: E402

FAST = {"epochs": 2, "finetune_epochs": 1, "teacher_epochs": 2,
        "latency": {"min_repeats": 3, "max_repeats": 10, "warmup": 1, "time_cap_s": 0.2}}


@pytest.fixture(scope="module")
def prepared_setting(tmp_path_factory):
    space = ImageCNNSpace()
    data = load_digits_splits()
    evaluator = CompressTrainEvaluator(**FAST)
    evaluator.validate()
    prepared = evaluator.prepare(space=space, dataset=data, seed=0,
                                 workdir=tmp_path_factory.mktemp("run"))
    return space, data, evaluator, prepared


@pytest.fixture(scope="module")
def setting(prepared_setting):
    space, data, evaluator, prepared = prepared_setting
    return space, data, evaluator, prepared.shared


PARAMS = {"arch/depth": 2, "arch/width": 16, "arch/kernel": 3, "prune/ratio": 0.5,
          "quant/bits": 4, "distill/alpha": 0.5, "distill/temperature": 4.0}


def test_teacher_is_prepared_once_and_shared(prepared_setting):
    space, data, evaluator, prepared = prepared_setting
    assert prepared.shared["teacher_logits_train"].shape == (len(data.y_train), 10)
    teacher = prepared.record["teacher"]  # what run.json records
    assert teacher["arch"] == {"arch/depth": 3, "arch/width": 64, "arch/kernel": 5}
    assert prepared.summary.startswith(
        f"teacher trained: val accuracy {teacher['val_accuracy']:.4f}")
    # prepare_device "auto": the driver's GPU when it has one.
    assert teacher["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert evaluator.settings()["prepare_device"] == "auto"


def test_a_prepare_device_it_cannot_use_is_refused_before_the_teacher_trains(tmp_path,
                                                                           monkeypatch):
    bad = CompressTrainEvaluator(**FAST, prepare_device="gpu")
    with pytest.raises(ValueError, match=r"^evaluator.prepare_device must be one of "):
        bad.validate()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    evaluator = CompressTrainEvaluator(**FAST, prepare_device="cuda")
    with pytest.raises(ValueError, match=r"^evaluator.prepare_device is 'cuda', but torch "
                                         r"sees no GPU"):
        evaluator.prepare(space=ImageCNNSpace(), dataset=load_digits_splits(), seed=0,
                          workdir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_teacher_is_the_same_for_the_same_seed(setting, tmp_path):
    space, data, evaluator, shared = setting
    again = evaluator.prepare(space=space, dataset=data, seed=0, workdir=tmp_path)
    assert again.record["teacher"]["source"] == "trained"
    assert (again.shared["teacher_logits_train"] == shared["teacher_logits_train"]).all()


def test_size_is_the_artifact_length_and_the_artifact_reproduces_accuracy(setting, tmp_path):
    space, data, evaluator, shared = setting
    reports = []
    context = TrialContext(trial_id="t0", seed=1, artifact_dir=tmp_path, shared=shared)
    result = evaluator.evaluate(PARAMS, space=space, dataset=data, context=context,
                                report=lambda step, m: reports.append((step, m)))
    artifact = tmp_path / result["artifact"]
    assert result["size_bytes"] == artifact.stat().st_size
    assert 0.0 <= result["accuracy"] <= 1.0 and result["latency_ms"] > 0
    assert result["latency_kind"] == "simulated"  # 4-bit weights timed on float kernels
    assert result["params_count"] < result["params_before_pruning"]
    assert result["macs"] < result["macs_before_pruning"]
    assert [step for step, _ in reports] == [1, 2, 3]
    template = space.build_model(PARAMS, input_shape=data.input_shape, num_classes=10)
    model, metadata = load_artifact(artifact, template)
    assert metadata["params"] == PARAMS
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    assert accuracy(model, x_val, y_val) == pytest.approx(result["accuracy"])


def test_more_bits_and_less_pruning_make_bigger_artifacts(setting, tmp_path):
    space, data, evaluator, shared = setting
    sizes = {}
    for bits, ratio in ((2, 0.5), (8, 0.5), (32, 0.5), (32, 0.0)):
        params = {**PARAMS, "quant/bits": bits, "prune/ratio": ratio, "distill/alpha": 0.0}
        context = TrialContext(trial_id=f"b{bits}r{ratio}", seed=1, artifact_dir=tmp_path)
        sizes[bits, ratio] = evaluator.evaluate(params, space=space, dataset=data,
                                                context=context)["size_bytes"]
    assert sizes[2, 0.5] < sizes[8, 0.5] < sizes[32, 0.5] < sizes[32, 0.0]


def test_distillation_without_teacher_fails_loudly(setting, tmp_path):
    space, data, evaluator, _ = setting
    context = TrialContext(trial_id="x", seed=0, artifact_dir=tmp_path, shared={})
    with pytest.raises(RuntimeError, match="teacher"):
        evaluator.evaluate(PARAMS, space=space, dataset=data, context=context)


@pytest.mark.parametrize(
    "overrides",
    [
        {"quant/scheme": "affine", "quant/activations": 8, "lowrank/ratio": 0.5},
        {"quant/scheme": "kmeans", "prune/sparsity": 0.5, "prune/importance": "taylor"},
        {"quant/bits": 8, "quant/scheme": "symmetric", "prune/importance": "fpgm",
         "distill/feature_weight": 0.5},
    ],
)
def test_every_compression_knob_round_trips_through_the_artifact(setting, tmp_path, overrides):
    space, data, evaluator, shared = setting
    params = {**PARAMS, "prune/importance": "l1", "prune/sparsity": 0.0, "quant/scheme":
              "symmetric", "quant/activations": 32, "lowrank/ratio": 1.0,
              "distill/feature_weight": 0.0, **overrides}
    context = TrialContext(trial_id="knobs", seed=2, artifact_dir=tmp_path, shared=shared)
    result = evaluator.evaluate(params, space=space, dataset=data, context=context)
    artifact = tmp_path / result["artifact"]
    assert result["size_bytes"] == artifact.stat().st_size
    from nascompress.compression.plan import artifact_template

    template = artifact_template(space, params, input_shape=data.input_shape, num_classes=10)
    model, _ = load_artifact(artifact, template)
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    assert accuracy(model, x_val, y_val) == pytest.approx(result["accuracy"])
    expected_kind = "int8" if params["quant/bits"] == 8 else "simulated"
    assert result["latency_kind"] == expected_kind
    if params["prune/sparsity"] > 0:
        assert result["sparsity"] >= params["prune/sparsity"] - 0.05


def test_float_models_are_timed_on_float_kernels(setting, tmp_path):
    space, data, evaluator, shared = setting
    params = {**PARAMS, "quant/bits": 32, "distill/alpha": 0.0}
    context = TrialContext(trial_id="fp", seed=2, artifact_dir=tmp_path, shared=shared)
    result = evaluator.evaluate(params, space=space, dataset=data, context=context)
    assert result["latency_kind"] == "fp32" and result["latency_runtime"] == "onnxruntime"


def test_latency_provenance_and_early_estimates_are_recorded(setting, tmp_path):
    space, data, evaluator, shared = setting
    params = {**PARAMS, "quant/bits": 32, "distill/alpha": 0.0}
    reports = []
    context = TrialContext(trial_id="prov", seed=3, artifact_dir=tmp_path, shared=shared)
    result = evaluator.evaluate(params, space=space, dataset=data, context=context,
                                report=lambda step, m: reports.append(m))
    assert result["latency_median_ms"] == result["latency_ms"]
    assert result["latency_gate"] == "local" and result["latency_exclusive"] is True
    assert result["latency_wait_s"] >= 0 and result["latency_cached"] is False
    # Known before training: the compressed model's exact size in parameters and MACs.
    assert all(m["est_params_count"] == result["params_count"] for m in reports)
    assert all(m["est_macs"] == result["macs"] for m in reports)
    assert all(m["est_size_bytes"] == result["size_bytes"] for m in reports)  # the same file


def test_training_pauses_at_checkpoints_and_the_second_identical_model_is_cached(
        setting, tmp_path):
    from nascompress.latency.client import TrialLatency, activate
    from nascompress.latency.gate import GateState
    from nascompress.latency.settings import LatencyServiceConfig

    class CountingGate(GateState):
        def __init__(self):
            super().__init__(ttl_s=10)
            self.calls = []

        def try_shared(self, holder):
            self.calls.append("shared")
            return super().try_shared(holder)

        def try_exclusive(self, holder):
            self.calls.append("exclusive")
            return super().try_exclusive(holder)

    space, data, evaluator, shared = setting
    gate = CountingGate()
    config = LatencyServiceConfig(search_key="ct", checkpoint_interval_s=0.0)
    params = {**PARAMS, "quant/bits": 32, "distill/alpha": 0.0}
    results = []
    for seed in (4, 5):  # different weights, the same structure
        context = TrialContext(trial_id=f"g{seed}", seed=seed, artifact_dir=tmp_path,
                               shared=shared)
        with activate(TrialLatency(config, backend=gate)):
            results.append(evaluator.evaluate(params, space=space, dataset=data,
                                              context=context))
    batches = -(-len(data.y_train) // evaluator.batch_size) * (evaluator.epochs
                                                               + evaluator.finetune_epochs)
    assert gate.calls.count("shared") >= batches  # a checkpoint per batch, at least
    assert gate.calls.count("exclusive") == 1  # the second model came from the cache
    assert results[1]["latency_cached"] and not results[0]["latency_cached"]
    assert results[1]["latency_ms"] == results[0]["latency_ms"]
    state = gate.state()
    assert (state["shared"], state["waiting"], state["writer"]) == ([], [], None)  # all freed
    assert (state["cached"], state["cache_hits"], state["exclusive_grants"]) == (1, 1, 1)


@pytest.mark.parametrize("given", ["cpu", "cuda"])
def test_training_runs_on_the_device_the_trial_was_given(setting, tmp_path, given):
    space, data, evaluator, shared = setting
    params = {**PARAMS, "distill/alpha": 0.5}
    context = TrialContext(trial_id=f"dev-{given}", seed=3, artifact_dir=tmp_path,
                           shared=shared, device=given)
    result = evaluator.evaluate(params, space=space, dataset=data, context=context)
    expected = "cuda" if given == "cuda" and torch.cuda.is_available() else "cpu"
    assert result["train_device"] == expected  # falls back to the CPU without a GPU
    assert result["size_bytes"] == (tmp_path / result["artifact"]).stat().st_size
