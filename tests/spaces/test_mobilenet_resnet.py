"""The mobilenet and resnet spaces: conformance, any input size, compression that holds."""

import random

import pytest

from nascompress.spaces import SPACES, MobileNetSpace, ResNetSpace

torch = pytest.importorskip("torch")

from nascompress.compression import apply_lowrank_, prune_channels  # noqa: E402
from nascompress.testing.space_conformance import check_space, sample_valid  # noqa: E402

SPACES_UNDER_TEST = [MobileNetSpace, ResNetSpace]


@pytest.mark.parametrize("space_cls", SPACES_UNDER_TEST)
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 28, 28), (3, 64, 48)])
def test_the_space_conforms_for_any_input_size_and_channels(space_cls, input_shape):
    check_space(space_cls(), input_shape=input_shape, num_classes=7)


@pytest.mark.parametrize("name", ["mobilenet", "resnet"])
def test_registered_and_carries_the_compression_knobs(name):
    dims = SPACES.resolve(name, field="space.name")().dimensions()
    for knob in ("prune/ratio", "prune/importance", "prune/sparsity", "quant/bits",
                 "quant/scheme", "quant/activations", "lowrank/ratio", "distill/alpha"):
        assert knob in dims


def test_mobilenet_blocks_have_depthwise_convs_squeeze_excite_and_hardswish():
    space = MobileNetSpace()
    params = sample_valid(space, random.Random(0))
    params.update({f"arch/stage{i}/se": 1 for i in range(4)})
    model = space.build_model(params, input_shape=(1, 28, 28), num_classes=10)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"SqueezeExcite", "Hardswish", "InvertedResidual"} <= kinds
    assert any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
               for m in model.modules())
    kernels = {m.kernel_size[0] for m in model.modules()
               if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert kernels == {params[f"arch/stage{i}/kernel"] for i in range(4)}


@pytest.mark.parametrize("space_cls", SPACES_UNDER_TEST)
def test_pruning_keeps_residuals_consistent_and_lowrank_skips_depthwise(space_cls):
    space = space_cls()
    rng = random.Random(1)
    x = torch.randn(2, 1, 28, 28)
    for _ in range(3):
        params = sample_valid(space, rng)
        model = space.build_model(params, input_shape=(1, 28, 28), num_classes=10)
        depthwise = {name: m.weight.shape for name, m in model.named_modules()
                     if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
        apply_lowrank_(model, rank_ratio=0.5)
        # Depthwise convolutions are left as they were (only their weights' owners remain).
        for name, shape in depthwise.items():
            assert model.get_submodule(name).weight.shape == shape
        before = sum(p.numel() for p in model.parameters())
        prune_channels(model, x, ratio=0.5, importance="l1")
        assert sum(p.numel() for p in model.parameters()) < before
        assert model.eval()(x).shape == (2, 10)  # residual adds still line up


def test_width_multiplier_and_constraint():
    space = MobileNetSpace()
    assert space.stage_channels(0.5) == [8, 16, 24, 32]
    params = sample_valid(space, random.Random(2))
    params.update({"arch/width_mult": 0.5, "prune/ratio": 0.7})
    assert "min_channels" in space.check(params)


def test_bad_options_and_overrides_are_one_line_errors():
    with pytest.raises(ValueError, match=r"space.stages"):
        MobileNetSpace(stages=[(16, 0)])
    with pytest.raises(ValueError, match=r"space.dimensions.arch/stage0/kernel: .*odd"):
        MobileNetSpace(dimensions={"arch/stage0/kernel": {"type": "categorical",
                                                          "choices": [3, 4]}})
    with pytest.raises(ValueError, match=r"space.dimensions.arch/block"):
        ResNetSpace(dimensions={"arch/block": {"type": "categorical", "choices": ["wide"]}})
    with pytest.raises(ValueError, match=r"space.strides"):
        ResNetSpace(strides=[1, 3, 2])
