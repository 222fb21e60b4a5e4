"""The elastic resnet supernet: exact extraction, channel sorting, training, a search."""


import pytest

torch = pytest.importorskip("torch")

from nascompress.compression.plan import CompressionPlan  # noqa: E402
from nascompress.config import ConfigError, parse_config  # noqa: E402
from nascompress.models.resnet import ResNet  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.local import run_local  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402
from nascompress.spaces import ResNetSpace  # noqa: E402
from nascompress.supernet import training  # noqa: E402
from nascompress.supernet.training import SupernetOptions, train_supernet  # noqa: E402
from tests.supernet._helpers import random_params, with_batchnorm_statistics  # noqa: E402

SHAPE = (1, 8, 8)
BITS = {"quant/bits": {"type": "categorical", "choices": [4, 8, 32]},
        "quant/scheme": {"type": "categorical", "choices": ["symmetric", "affine"]}}


def one_block(block):
    return {"arch/block": {"type": "categorical", "choices": [block]}}


def small_space(block="basic", strides=(1, 2)):
    """Two stages of width 4 or 8, up to two blocks each."""
    return ResNetSpace(widths=[(4, 8), (4, 8)], strides=strides, max_blocks=2,
                       dimensions={**one_block(block), **BITS})


def test_widths_depths_and_bits_are_elastic_and_the_block_type_is_not():
    space = small_space()
    keys = space.elastic_dimensions()
    assert set(keys) == {"arch/stage0/width", "arch/stage0/blocks", "arch/stage1/width",
                         "arch/stage1/blocks", "quant/bits", "quant/scheme"}
    assert space.weight_sharing_problem() is None
    net = space.build_supernet(input_shape=SHAPE, num_classes=10)
    assert set(net.largest()) == set(keys)
    assert net.largest()["arch/stage1/width"] == 8 and net.smallest()["arch/stage1/width"] == 4


def test_a_space_of_both_block_types_is_refused_with_the_fix():
    space = ResNetSpace(widths=[(4, 8)], strides=[1], max_blocks=1)
    problem = space.weight_sharing_problem()
    assert problem == (
        "space.dimensions.arch/block: weight sharing covers one block type, but got "
        "['basic', 'bottleneck']; set it to one, e.g. {type: categorical, choices: "
        "[basic]}, or use evaluator 'compress-train'")
    with pytest.raises(ValueError, match="covers one block type"):
        space.build_supernet(input_shape=SHAPE, num_classes=10)


# Strides (1, 2) give the second stage a strided projection; (1, 1) one that some
# subnets use (widths differ) and the largest does not (both 8 wide: identity).
@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("strides", [(1, 2), (1, 1)])
@pytest.mark.parametrize("sort", [False, True], ids=["unsorted", "sorted"])
def test_an_extracted_subnet_is_the_spaces_model_with_the_supernets_output(block, strides,
                                                                          sort):
    torch.manual_seed(0)
    space = small_space(block, strides)
    net = with_batchnorm_statistics(space.build_supernet(input_shape=SHAPE, num_classes=10))
    if sort:
        net.sort_channels_()
    x = torch.randn(3, *SHAPE)
    for seed in range(4):
        params = random_params(space, seed)
        net.set_active(params)
        with torch.no_grad():
            expected = net(x)
        model = net.extract(params).eval()
        assert type(model) is ResNet
        reference = space.build_model(params, input_shape=SHAPE, num_classes=10)
        assert {k: v.shape for k, v in model.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()}
        # The plan quantizes with the supernet's own quantizer: the shipped model agrees.
        plan = CompressionPlan.from_params(params)
        layer_bits = plan.layer_bits(model)
        if plan.quantized_layers(layer_bits):
            plan.finalize_(model, layer_bits)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("strides", [(1, 2), (1, 1)])
def test_sorting_channels_keeps_the_largest_network_and_orders_by_importance(block, strides):
    torch.manual_seed(0)
    net = with_batchnorm_statistics(small_space(block, strides).build_supernet(
        input_shape=SHAPE, num_classes=10))
    x = torch.randn(4, *SHAPE)
    net.set_active(net.largest())
    with torch.no_grad():
        before = net(x)
        net.sort_channels_()
        torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)
    # A block's inner channels: by the L1 norm of the next convolution's input slices.
    second = net.stages[1][1]
    importance = second.conv2.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])
    if strides == (1, 2):
        # The last stage's output (its own group behind the strided projection): by
        # everything that reads it, the second block's first convolution and the
        # classifier.
        last = net.classifier.weight.abs().sum(0) + second.conv1.abs().sum(dim=(0, 2, 3))
        assert torch.all(last[:-1] >= last[1:])
    else:
        # Stride 1 and equal widths: the largest network adds the second stage's input
        # unchanged, so both stages' outputs are one group.
        assert net.stages[1][0].couples_input and net.stages[1][0].has_shortcut


def test_progressive_shrinking_unlocks_the_resnet_keys_in_turn():
    net = small_space().build_supernet(input_shape=SHAPE, num_classes=10)
    options = SupernetOptions(epochs=4, warmup_epochs=1, progressive=True)
    unlocked = [training.unlocked_keys(net.choices, epoch=e, options=options)
                for e in range(4)]
    assert unlocked[0] == []
    assert unlocked[1] == ["arch/stage0/blocks", "arch/stage1/blocks"]
    assert set(unlocked[2]) == {"arch/stage0/blocks", "arch/stage0/width",
                                "arch/stage1/blocks", "arch/stage1/width"}
    assert unlocked[3] == list(net.choices)


def test_training_writes_a_checkpoint_whose_subnets_score(tmp_path, digits_small):
    from nascompress.training.loop import accuracy

    torch.set_num_threads(1)
    space = small_space("bottleneck")
    options = SupernetOptions(epochs=2, warmup_epochs=1, batch_size=64, bn_batches=1)
    result = train_supernet(space, digits_small, options=options, seed=0,
                            directory=tmp_path, stream=None)
    assert result.path.exists() and (tmp_path / training.CHECKPOINT_FILE).exists()
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert 0.0 <= result.history[-1]["val_accuracy_smallest"] <= 1.0
    net = training.load_supernet(result.path, space, digits_small)
    for seed in range(2):
        model = net.extract(random_params(space, seed))
        training.recalibrate_bn(model, digits_small.loader("train", batch_size=32),
                                batches=2)
        assert 0.0 <= accuracy(model, digits_small.loader("val")) <= 1.0


# -- one search through the public API --------------------------------------------------

FIXED = {"prune/ratio": {"type": "float", "low": 0.0, "high": 0.0},
         "prune/sparsity": {"type": "float", "low": 0.0, "high": 0.0},
         "lowrank/ratio": {"type": "float", "low": 1.0, "high": 1.0},
         "quant/activations": {"type": "categorical", "choices": [32]},
         "quant/bits": {"type": "categorical", "choices": [8, 32]},
         "quant/scheme": {"type": "categorical", "choices": ["symmetric"]}}


def search_config(out, *, block=("basic",), trials=3):
    dimensions = {**FIXED, "arch/block": {"type": "categorical", "choices": list(block)}}
    return parse_config({
        "name": "ws-resnet", "output_dir": str(out), "trials": trials, "runner": "local",
        "seed": 0, "dataset": {"name": "digits"},
        "space": {"name": "resnet", "options": {"widths": [[4, 8], [8, 16]],
                                                "strides": [1, 2], "max_blocks": 2},
                  "dimensions": dimensions},
        "strategy": {"name": "random"},
        "evaluator": {"name": "supernet", "options": {
            "epochs": 2, "warmup_epochs": 1, "finalists": 1, "finetune_epochs": 1,
            "bn_batches": 2, "latency": {"min_repeats": 3, "max_repeats": 5, "warmup": 1,
                                         "time_cap_s": 0.2}}},
    })


def test_a_weight_sharing_search_on_the_resnet_space(tmp_path):
    torch.set_num_threads(1)
    experiment = build_experiment(search_config(tmp_path))
    run_local(experiment, stream=None)
    run = RunDirectory(tmp_path / "ws-resnet")
    records = run.load_trials()
    search = [r for r in records if r["stage"] == "search"]
    final = [r for r in records if r["stage"] == "final"]
    assert len(search) == 3 and len(final) == 1
    assert all(r["state"] == "COMPLETE" for r in records)
    assert {r["metrics"]["accuracy_source"] for r in search} == {"inherited"}
    assert final[0]["metrics"]["accuracy_source"] == "fine-tuned"
    supernet = run.read_run()["supernet"]
    assert supernet["epochs"] == 2 and (run.path / supernet["checkpoint"]).exists()


def test_a_search_over_both_block_types_is_refused_before_any_compute(tmp_path):
    with pytest.raises(ConfigError, match=r"arch/block: weight sharing covers one block "
                                          r"type, but got \['basic', 'bottleneck'\]"):
        build_experiment(search_config(tmp_path, block=("basic", "bottleneck")))
    assert not (tmp_path / "ws-resnet" / "supernet").exists()
