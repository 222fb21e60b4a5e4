import random
import sys

import pytest

from nascompress.spaces import SPACES, ImageCNNSpace


def _sample(space, seed=0):
    rng = random.Random(seed)
    return {k: d.sample(rng) for k, d in space.dimensions().items()}


def test_registered_and_namespaced_groups():
    space = SPACES.resolve("image-cnn")()
    groups = {key.split("/")[0] for key in space.dimensions()}
    assert groups == {"arch", "prune", "quant", "distill", "lowrank"}
    assert {"arch/depth", "arch/width", "arch/kernel", "prune/ratio", "quant/bits",
            "distill/alpha", "distill/temperature"} <= set(space.dimensions())


def test_import_does_not_pull_torch():
    # spaces must stay cheap to import (design: no torch at module level)
    import subprocess

    code = "import sys, nascompress.spaces; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_check_rejects_pruning_below_min_channels():
    space = ImageCNNSpace()
    params = _sample(space)
    params.update({"arch/width": 8, "prune/ratio": 0.6})
    reason = space.check(params)
    assert reason and "min_channels" in reason
    params["prune/ratio"] = 0.5
    assert space.check(params) is None


def test_check_reports_missing_and_out_of_range():
    space = ImageCNNSpace()
    params = _sample(space)
    del params["quant/bits"]
    assert "missing" in space.check(params)
    params = _sample(space)
    params["quant/bits"] = 3
    assert "quant/bits" in space.check(params)


@pytest.mark.parametrize(
    ("key", "dim", "message"),
    [
        ("prune/ratio", {"type": "float", "low": 0.0, "high": 1.0}, "prune/ratio"),
        ("quant/bits", {"type": "categorical", "choices": [0, 8]}, "quant/bits"),
        ("quant/bits", {"type": "categorical", "choices": [8, 33]}, "quant/bits"),
        ("arch/kernel", {"type": "categorical", "choices": [2, 3]}, "odd"),
        ("arch/nope", {"type": "int", "low": 1, "high": 2}, "unknown dimension"),
    ],
)
def test_bad_overrides_are_rejected_with_the_field(key, dim, message):
    with pytest.raises(ValueError, match=message):
        ImageCNNSpace(dimensions={key: dim})


def test_models_build_and_output_logits():
    torch = pytest.importorskip("torch")
    space = ImageCNNSpace()
    for depth in (1, 2, 3):
        for kernel in (3, 5):
            params = _sample(space)
            params.update({"arch/depth": depth, "arch/kernel": kernel, "arch/width": 8})
            model = space.build_model(params, input_shape=(1, 8, 8), num_classes=10)
            assert model(torch.zeros(4, 1, 8, 8)).shape == (4, 10)


def test_mixed_precision_replaces_the_global_bit_width_by_one_per_layer():
    space = ImageCNNSpace(mixed_precision=True)
    keys = set(space.dimensions())
    assert "quant/bits" not in keys
    assert {"quant/bits/block0", "quant/bits/block2", "quant/bits/head"} <= keys
    params = _sample(space)
    params.update({"quant/bits/block0": 8, "quant/bits/block1": 2, "quant/bits/head": 32})
    bits = space.layer_bits(params, ["0", "4", "9"])
    assert bits == {"0": 8, "4": 2, "9": 32}


@pytest.mark.parametrize(
    ("key", "dim"),
    [("quant/scheme", {"type": "categorical", "choices": ["symmetric", "log"]}),
     ("prune/importance", {"type": "categorical", "choices": ["l1", "random"]}),
     ("lowrank/ratio", {"type": "float", "low": 0.0, "high": 1.0}),
     ("prune/sparsity", {"type": "float", "low": 0.0, "high": 1.0})],
)
def test_compression_choices_are_validated(key, dim):
    with pytest.raises(ValueError, match=key):
        ImageCNNSpace(dimensions={key: dim})
