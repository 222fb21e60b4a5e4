"""The compression plan: knob validation, step order, structures and latency kinds."""

import subprocess
import sys

import pytest

from nascompress.compression import plan as plan_module
from nascompress.compression.plan import (
    IMPORTANCES,
    KNOBS,
    SCHEMES,
    STEPS,
    SUPPORTED_BITS,
    CompressionPlan,
    find_knob,
)

ARCH = {"arch/depth": 2, "arch/width": 16, "arch/kernel": 3}
SHAPE = (1, 8, 8)


def test_importing_the_plan_does_not_pull_torch():
    code = "import sys, nascompress.compression.plan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_knob_vocabulary_has_one_home():
    pytest.importorskip("torch")
    from nascompress.compression import pruning, quantization

    assert pruning.IMPORTANCES is IMPORTANCES
    assert quantization.SCHEMES is SCHEMES
    assert quantization.MODEL_BITS == (min(SUPPORTED_BITS), max(b for b in SUPPORTED_BITS
                                                                if b < 32))
    assert list(KNOBS) == ["lowrank/ratio", "prune/ratio", "prune/importance",
                           "prune/sparsity", "quant/bits", "quant/bits/", "quant/scheme",
                           "quant/activations"]
    assert find_knob("quant/bits/head") is KNOBS["quant/bits/"]
    assert find_knob("arch/depth") is None


def test_from_params_reads_every_knob_and_ignores_other_keys():
    plan = CompressionPlan.from_params({
        **ARCH, "distill/alpha": 0.5, "quant/c": "x", "lowrank/ratio": 0.5,
        "prune/ratio": 0.25, "prune/importance": "taylor", "prune/sparsity": 0.4,
        "quant/bits": 4, "quant/scheme": "kmeans", "quant/activations": 8})
    assert plan == CompressionPlan(lowrank_ratio=0.5, prune_ratio=0.25, importance="taylor",
                                   sparsity=0.4, bits=4, scheme="kmeans", activation_bits=8)
    assert plan.steps == STEPS


def test_missing_knobs_do_nothing():
    plan = CompressionPlan.from_params(ARCH, importance="fpgm")
    assert plan.steps == ()
    assert plan.importance == "fpgm"  # the evaluator's default criterion
    assert not plan.quantizes
    assert plan.bits_by_top(["0", "4"]) == {"0": 32, "4": 32}


@pytest.mark.parametrize(
    ("key", "value"),
    [("prune/ratio", 1.0), ("prune/ratio", -0.1), ("prune/ratio", "0.5"),
     ("lowrank/ratio", 0.0), ("lowrank/ratio", 1.5), ("prune/sparsity", 1.0),
     ("prune/importance", "random"), ("quant/bits", 16), ("quant/bits", True),
     ("quant/bits/block0", 1), ("quant/scheme", "log"), ("quant/activations", 4)],
)
def test_from_params_rejects_a_bad_value_naming_the_knob_and_the_value(key, value):
    with pytest.raises(ValueError) as info:
        CompressionPlan.from_params({**ARCH, key: value})
    message = str(info.value)
    assert message.startswith(f"`{key}` must ")
    assert message.endswith(f", but got {value!r}")
    assert "\n" not in message


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match=r"^`quant/scheme` must be one of .*, but got 'log'$"):
        CompressionPlan(scheme="log")
    with pytest.raises(ValueError, match=r"^`quant/bits/head` must .*, but got 9$"):
        CompressionPlan(per_layer_bits=(("head", 9),))


def test_mixed_precision_bits_by_position_and_uniform_bits_win():
    plan = CompressionPlan.from_params({"quant/bits/block0": 8, "quant/bits/block1": 2,
                                        "quant/bits/block2": 4, "quant/bits/head": 32})
    assert plan.per_layer_bits == (("block0", 8), ("block1", 2), ("block2", 4), ("head", 32))
    # A two-block model: block2 does not exist, the last layer is the head.
    assert plan.bits_by_top(["0", "4", "9"]) == {"0": 8, "4": 2, "9": 32}
    assert plan.quantizes
    both = CompressionPlan.from_params({"quant/bits": 6, "quant/bits/head": 2})
    assert both.bits_by_top(["0", "9"]) == {"0": 6, "9": 6}


@pytest.mark.parametrize(
    ("params", "runtime", "integer_kernels", "kernels", "kind"),
    [({"quant/bits": 32}, "onnxruntime", True, "fp32", "fp32"),
     ({"quant/bits": 8}, "onnxruntime", True, "int8", "int8"),
     ({"quant/bits": 8, "quant/scheme": "affine"}, "onnxruntime", True, "int8", "int8"),
     ({"quant/bits": 8}, "onnxruntime", False, "int8", "simulated"),
     ({"quant/bits": 8, "quant/scheme": "kmeans"}, "onnxruntime", True, "int8", "simulated"),
     ({"quant/bits": 4}, "onnxruntime", True, "int8", "simulated"),
     ({"quant/bits/block0": 8, "quant/bits/head": 4}, "onnxruntime", True, "int8",
      "simulated"),
     ({"quant/bits": 8}, "torch", True, "fp32", "simulated"),
     ({"quant/bits": 32}, "torch", True, "fp32", "fp32")],
)
def test_runtime_and_latency_kinds(params, runtime, integer_kernels, kernels, kind):
    plan = CompressionPlan.from_params(params)
    layer_bits = plan.bits_by_top(["0", "4"])
    assert plan.runtime_kind(runtime) == kernels
    assert plan.latency_kind(layer_bits, runtime=runtime, integer_kernels=integer_kernels) \
        == kind


def test_artifact_metadata_keeps_its_key_order():
    # The metadata is part of the artifact's bytes: its order must not drift.
    plan = CompressionPlan(scheme="affine")
    meta = plan.artifact_metadata(space="image-cnn", params={"quant/bits": 4},
                                  layer_bits={"0": 4}, input_shape=(1, 8, 8), num_classes=10)
    assert list(meta) == ["space", "params", "layer_bits", "scheme", "input_shape",
                          "num_classes"]
    assert meta["scheme"] == "affine" and meta["input_shape"] == [1, 8, 8]


# -- with torch ---------------------------------------------------------------------------


def _space():
    from nascompress.spaces import ImageCNNSpace

    return ImageCNNSpace()


def _old_structure(space, params):
    """What the latency predictor built before the plan existed (kept here as reference)."""
    import torch

    from nascompress.compression import apply_lowrank_, prune_channels

    model = space.build_model(params, input_shape=SHAPE, num_classes=10)
    ratio = float(params.get("lowrank/ratio", 1.0))
    if ratio < 1.0:
        apply_lowrank_(model, rank_ratio=ratio)
    if float(params.get("prune/ratio", 0.0)) > 0:
        prune_channels(model, torch.zeros(2, *SHAPE), ratio=float(params["prune/ratio"]),
                       importance="l1")
    return model


def _old_layer_bits(params, layers):
    """The evaluator's per-layer bit-widths before the plan existed (image-cnn rule)."""
    tops = list(dict.fromkeys(name.split(".")[0] for name in layers))
    if "quant/bits" in params:
        by_top = dict.fromkeys(tops, int(params["quant/bits"]))
    else:
        by_top = {name: int(params.get("quant/bits/head" if i == len(tops) - 1
                                       else f"quant/bits/block{i}", 32))
                  for i, name in enumerate(tops)}
    return {name: by_top[name.split(".")[0]] for name in layers}


@pytest.mark.parametrize(
    "knobs",
    [{"lowrank/ratio": 1.0, "prune/ratio": 0.0},
     {"lowrank/ratio": 1.0, "prune/ratio": 0.5},
     {"lowrank/ratio": 0.5, "prune/ratio": 0.0},
     {"lowrank/ratio": 0.25, "prune/ratio": 0.3, "quant/bits": 4},
     {"arch/depth": 3, "arch/width": 32, "lowrank/ratio": 0.75, "prune/ratio": 0.65}],
)
def test_structure_equals_what_the_predictor_built_before(knobs):
    torch = pytest.importorskip("torch")
    space = _space()
    params = {**ARCH, **knobs}
    torch.manual_seed(0)
    old = _old_structure(space, params)
    torch.manual_seed(0)
    new = plan_module.compressed_structure(space, params, input_shape=SHAPE, num_classes=10)
    assert str(new) == str(old)
    old_state, new_state = old.state_dict(), new.state_dict()
    assert list(new_state) == list(old_state)
    for key, tensor in old_state.items():
        assert torch.equal(new_state[key], tensor), key


@pytest.mark.parametrize(
    "params",
    [{**ARCH, "quant/bits": 4, "lowrank/ratio": 0.5},
     {**ARCH, "quant/bits/block0": 8, "quant/bits/block1": 2, "quant/bits/block2": 6,
      "quant/bits/head": 4, "lowrank/ratio": 0.5},
     {**ARCH, "arch/depth": 3, "quant/bits/block0": 8, "quant/bits/block1": 2,
      "quant/bits/head": 32, "lowrank/ratio": 0.75}],
)
def test_layer_bits_equal_the_evaluators_old_rule(params):
    pytest.importorskip("torch")
    from nascompress.compression import quantizable_modules

    model = plan_module.artifact_template(_space(), params, input_shape=SHAPE, num_classes=10)
    names = [name for name, _ in quantizable_modules(model)]
    assert any("." in name for name in names)  # factorized parts share their layer's bits
    assert CompressionPlan.from_params(params).layer_bits(model) == \
        _old_layer_bits(params, names)


def test_artifact_template_factorizes_but_does_not_prune():
    torch = pytest.importorskip("torch")
    space = _space()
    params = {**ARCH, "lowrank/ratio": 0.5, "prune/ratio": 0.5}
    template = plan_module.artifact_template(space, params, input_shape=SHAPE, num_classes=10)
    plain = space.build_model(params, input_shape=SHAPE, num_classes=10)
    # The second block's conv became three (the first has too few input channels).
    assert isinstance(template[4], torch.nn.Sequential) and len(template[4]) == 3
    assert template[4][-1].out_channels == plain[4].out_channels  # channels all there


def test_steps_run_in_the_plans_order(monkeypatch):
    torch = pytest.importorskip("torch")
    from nascompress.compression import lowrank, pruning, quantization, sparsity

    calls = []

    def record(name, result=None):
        def fake(*args, **kwargs):
            calls.append((name, {k: v for k, v in kwargs.items()
                                 if k in ("rank_ratio", "ratio", "importance", "sparsity",
                                          "bits", "scheme")}))
            return result
        return fake

    monkeypatch.setattr(lowrank, "apply_lowrank_", record("lowrank"))
    monkeypatch.setattr(pruning, "prune_channels", record("prune"))
    monkeypatch.setattr(sparsity, "magnitude_prune_",
                        record("sparsity", sparsity.SparsityReport(0.2, "layer", {}, 0.2, 1, 1)))
    monkeypatch.setattr(sparsity, "enable_sparse_training", record("sparse-training"))
    monkeypatch.setattr(sparsity, "finalize_sparsity", record("finalize-sparsity", {}))
    monkeypatch.setattr(quantization, "enable_qat", record("qat"))
    monkeypatch.setattr(quantization, "enable_activation_quant", record("activations"))
    monkeypatch.setattr(quantization, "finalize_quantization", record("quantize", {}))
    model, x = torch.nn.Linear(2, 2), torch.zeros(1, 2)
    bits = {"0": 4, "9": 32}

    sparse = CompressionPlan(lowrank_ratio=0.5, prune_ratio=0.3, importance="fpgm",
                             sparsity=0.2, bits=4, activation_bits=8)
    sparse.apply_structure_(model, x)
    sparse.prepare_finetune_(model, bits, calibration=x)
    sparse.finalize_(model, bits)
    assert [name for name, _ in calls] == ["lowrank", "prune", "sparsity", "sparse-training",
                                           "activations", "finalize-sparsity", "quantize"]
    assert calls[0][1] == {"rank_ratio": 0.5}
    assert calls[1][1] == {"ratio": 0.3, "importance": "fpgm"}
    assert calls[-1][1] == {"bits": {"0": 4}, "scheme": "symmetric"}  # 32-bit layers stay

    calls.clear()
    dense = CompressionPlan(prune_ratio=0.3, bits=4, scheme="affine")
    dense.apply_structure_(model, x, importance="l1")
    dense.prepare_finetune_(model, bits, calibration=x)
    dense.finalize_(model, bits)
    # No low-rank at ratio 1; without sparsity the fine-tune is quantization-aware.
    assert [name for name, _ in calls] == ["prune", "qat", "quantize"]
    assert calls[0][1]["importance"] == "l1"
    assert calls[1][1] == {"bits": {"0": 4}, "scheme": "affine"}


def test_taylor_gets_calibration_and_other_criteria_do_not(monkeypatch):
    torch = pytest.importorskip("torch")
    from nascompress.compression import pruning

    seen = []
    monkeypatch.setattr(pruning, "prune_channels",
                        lambda *a, calibration=None, **k: seen.append(calibration))
    model, x = torch.nn.Linear(2, 2), torch.zeros(1, 2)
    data = (x, torch.zeros(1, dtype=torch.long))
    CompressionPlan(importance="taylor").prune_(model, x, calibration=data)
    CompressionPlan(importance="l1").prune_(model, x, calibration=data)
    assert seen == [data, None]


def test_spaces_validate_their_dimensions_with_the_knob_rules():
    from nascompress.spaces import ImageCNNSpace

    with pytest.raises(ValueError, match=r"space.dimensions.quant/bits: every value must be "
                                         r"one of \[2, 3, 4, 5, 6, 7, 8, 32\]"):
        ImageCNNSpace(dimensions={"quant/bits": {"type": "categorical", "choices": [4, 16]}})
    with pytest.raises(ValueError, match="finite set"):
        ImageCNNSpace(dimensions={"quant/bits": {"type": "float", "low": 2.0, "high": 8.0}})
    ImageCNNSpace(dimensions={"prune/ratio": {"type": "float", "low": 0.0, "high": 0.9}})
