"""The user-model supernet, bootstrapped from the user's model: what is found elastic,
exact extraction, channel sorting, bits, training, and a weight-sharing search end to end
with export and reload."""

import json

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from nascompress.compression.plan import CompressionPlan  # noqa: E402
from nascompress.config import ConfigError, parse_config  # noqa: E402
from nascompress.spaces import UserModelSpace  # noqa: E402
from nascompress.spaces.image_cnn import compression_dimensions  # noqa: E402
from nascompress.supernet.training import SupernetOptions, train_supernet  # noqa: E402
from tests.supernet._helpers import random_params, with_batchnorm_statistics  # noqa: E402

SHAPE = (1, 8, 8)


# -- tiny user models --------------------------------------------------------------------


class Residual(nn.Module):
    def __init__(self, cin, cout=None, stride=1):
        super().__init__()
        cout = cout or cin
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def residual_net(num_classes=10):
    """Residual blocks (two skippable runs), a strided block that changes the width."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(Residual(8), Residual(8), Residual(8, 12, stride=2), Residual(12)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, num_classes))


class SqueezeExcite(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.reduce = nn.Conv2d(channels, 4, 1)
        self.expand = nn.Conv2d(4, channels, 1)

    def forward(self, x):
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * gate


def separable(channels):
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        nn.BatchNorm2d(channels), nn.Hardswish(), SqueezeExcite(channels),
        nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Hardswish())


def depthwise_net(num_classes=10):
    """Depthwise-separable blocks with squeeze-excite (sigmoid gate) and hard-swish, then
    Flatten into a hidden Linear (a channel is a block of Linear inputs)."""
    return nn.Sequential(
        nn.Conv2d(1, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.Hardswish(),
        separable(12), separable(12),
        nn.Conv2d(12, 16, 1), nn.BatchNorm2d(16), nn.Hardswish(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 24), nn.Hardswish(), nn.Linear(24, num_classes))


class Centre(nn.Module):
    """Subtracts the mean over channels: mixes channels with no weights."""

    def forward(self, x):
        return x - x.mean(1, keepdim=True)


def mixing_net(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), Centre(),
        nn.Sequential(Residual(8), Residual(8)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def linear_only(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))


MODELS = {"residual": residual_net, "depthwise": depthwise_net}


def elastic_space(model="residual", **options):
    return UserModelSpace(model=f"{__name__}:{MODELS[model].__name__}", elastic=True,
                          input_shape=list(SHAPE), **options)


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# -- what is elastic -----------------------------------------------------------------------


def test_width_and_skippable_runs_are_found_and_named():
    residual = elastic_space("residual")
    assert residual.elastic_dimensions() == (
        "arch/width_mult", "arch/3.0-1/depth", "arch/3.3/depth", "quant/bits", "quant/scheme")
    dims = residual.dimensions()
    assert dims["arch/3.0-1/depth"].grid() == [0, 1, 2]
    assert dims["arch/width_mult"].grid() == [0.5, 0.75, 1.0]
    # The classifier is never narrowed: no group has it as its root.
    assert {g.root for g in residual.elastic_structure.groups}.isdisjoint({"6"})
    depthwise = elastic_space("depthwise")
    # Both separable blocks form one run; their squeeze-excite modules are blocks too.
    assert [k for k in depthwise.elastic_dimensions() if k.endswith("/depth")] == [
        "arch/3-4/depth", "arch/3.3/depth", "arch/4.3/depth"]
    recorded = depthwise.to_dict()
    assert recorded["elastic"] is True and recorded["input_shape"] == list(SHAPE)
    assert recorded["left_fixed"] == []


def test_a_compression_only_space_is_unchanged():
    space = UserModelSpace(model=f"{__name__}:residual_net")
    assert dict(space.dimensions()) == compression_dimensions()
    assert space.elastic_dimensions() == ()
    assert set(space.to_dict()) == {"name", "class", "dimensions", "model", "model_kwargs",
                                    "checkpoint"}
    with pytest.raises(NotImplementedError, match="elastic: true"):
        space.build_supernet(input_shape=SHAPE, num_classes=10)


def test_bad_input_is_refused_before_any_training():
    with pytest.raises(ValueError, match=r"^space.options.input_shape: elastic: true"):
        UserModelSpace(model=f"{__name__}:residual_net", elastic=True)
    with pytest.raises(ValueError, match=r"^space.options.elastic: model .*linear_only.* has no "
                                         r"channel group .* use elastic: false"):
        UserModelSpace(model=f"{__name__}:linear_only", elastic=True, input_shape=[1, 8, 8])
    with pytest.raises(ValueError, match=r"^space.dimensions.arch/width_mult: width shares "
                                         r"must .* \(0, 1\].*but got .*1.5"):
        elastic_space(dimensions={"arch/width_mult": {"type": "categorical",
                                                      "choices": [0.5, 1.5]}})
    with pytest.raises(ValueError, match=r"^space.dimensions.arch/3.3/depth: must be .* "
                                         r"between 0 and 1"):
        elastic_space(dimensions={"arch/3.3/depth": {"type": "int", "low": 0, "high": 2}})
    with pytest.raises(ValueError, match=r"^space.options.input_shape: model .*depthwise_net"
                                         r".* fails on a batch of shape \[2, 1, 16, 16\]"):
        UserModelSpace(model=f"{__name__}:depthwise_net", elastic=True, input_shape=[1, 16, 16])
    space = elastic_space()
    with pytest.raises(ValueError, match=r"^space.options.input_shape: \[1, 8, 8\] is not "
                                         r"the dataset's example shape \[1, 16, 16\]"):
        space.build_supernet(input_shape=(1, 16, 16), num_classes=10)


def test_channels_mixed_outside_conv_layers_keep_the_width_fixed_and_say_why():
    space = UserModelSpace(model=f"{__name__}:mixing_net", elastic=True, input_shape=[1, 8, 8])
    assert "arch/width_mult" not in space.dimensions()
    assert "arch/4.0-1/depth" in space.dimensions()  # the blocks still skip exactly
    assert any("width stays fixed" in note and "mixes channels" in note
               for note in space.to_dict()["left_fixed"])


# -- exactness ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_sorting_channels_keeps_the_full_model(model):
    space = elastic_space(model)
    net = with_batchnorm_statistics(space.build_supernet(input_shape=SHAPE, num_classes=10))
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        before = net(x)
        assert torch.equal(before, net.model(x))  # the largest subnet is the model itself
        net.sort_channels_()
        after = net(x)
    assert torch.allclose(after, before, atol=1e-5)
    # The first channels are now the important ones: the group's importance (as
    # torch-pruning ranks it) is non-increasing along it.
    import torch_pruning as tp

    from nascompress.supernet.bootstrap import dependency_graph, example_batch

    graph = dependency_graph(net.model, example_batch(SHAPE))
    group = net.structure.groups[0]
    root = net.model.get_submodule(group.root)
    full = graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels,
                                   list(range(group.size)))
    score = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)(full)
    assert torch.all(score[:-1] >= score[1:] - 1e-6)


@pytest.mark.parametrize(("model", "seed"), [(m, s) for m in sorted(MODELS) for s in range(4)])
def test_an_extracted_subnet_computes_what_the_masked_supernet_computes(model, seed):
    space = elastic_space(model, dimensions={
        "quant/scheme": {"type": "categorical", "choices": ["symmetric", "affine", "kmeans"]}})
    net = with_batchnorm_statistics(space.build_supernet(input_shape=SHAPE, num_classes=10))
    net.sort_channels_()
    params = random_params(space, seed)
    if seed == 0:  # the smallest subnet at 4 bits, every skippable block skipped
        params.update(net.smallest(), **{"quant/bits": 4})
    x = torch.randn(5, *SHAPE)
    net.set_active(params)
    with torch.no_grad():
        expected = net(x)
    extracted = net.extract(params).eval()
    # The real, smaller model: exactly the structure the space builds for these params.
    assert shapes(extracted) == shapes(space.build_model(params, input_shape=SHAPE,
                                                         num_classes=10))
    assert (sum(p.numel() for p in extracted.parameters())
            <= sum(p.numel() for p in net.parameters()))
    plan = CompressionPlan.from_params(params)
    layer_bits = plan.layer_bits(extracted)
    if plan.quantized_layers(layer_bits):
        plan.finalize_(extracted, layer_bits)  # what the artifact ships
    with torch.no_grad():
        got = extracted(x)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    if seed == 0:
        net.set_active(net.largest())
        with torch.no_grad():
            assert not torch.allclose(net(x), expected, atol=1e-3)  # a different network
        assert (sum(p.numel() for p in extracted.parameters())
                < sum(p.numel() for p in net.parameters()) / 2)


def test_the_bit_width_changes_the_output_and_gradients_pass_through():
    space = elastic_space("depthwise")
    net = with_batchnorm_statistics(space.build_supernet(input_shape=SHAPE, num_classes=10))
    x = torch.randn(4, *SHAPE)
    outputs = {}
    for bits in (2, 8, 32):
        net.set_active({"quant/bits": bits})
        with torch.no_grad():
            outputs[bits] = net(x)
    assert not torch.allclose(outputs[2], outputs[32], atol=1e-3)
    assert (outputs[8] - outputs[32]).abs().max() < (outputs[2] - outputs[32]).abs().max()
    net.set_active({**net.smallest(), "quant/bits": 4})
    net.train()
    net(x).sum().backward()
    stem = net.model[0].weight.grad
    assert stem is not None and stem.abs().sum() > 0
    kept = net.model[0].weight.shape[0] // 2  # width 0.5 keeps 6 of 12
    assert stem[kept:].abs().sum() == 0  # dropped filters take no part


def test_build_model_returns_the_plain_pretrained_model_at_full_size(tmp_path):
    torch.manual_seed(3)
    reference = residual_net()
    checkpoint = tmp_path / "pre.pt"
    torch.save(reference.state_dict(), checkpoint)
    space = elastic_space(checkpoint=str(checkpoint))
    full = {**random_params(space, 0), "arch/width_mult": 1.0, "arch/3.0-1/depth": 2,
            "arch/3.3/depth": 1}
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        assert torch.equal(space.build_model(full, input_shape=SHAPE, num_classes=10).eval()(x),
                           reference.eval()(x))
    narrow = space.build_model({**full, "arch/width_mult": 0.5, "arch/3.3/depth": 0},
                               input_shape=SHAPE, num_classes=10)
    assert isinstance(narrow[3][3], nn.Identity)
    assert narrow[0].out_channels == 4 and narrow[-1].in_features == 6


# -- training and a search ---------------------------------------------------------------


def test_the_supernet_trains_from_the_pretrained_weights(tmp_path, digits_small):
    torch.set_num_threads(1)
    space = elastic_space("depthwise")
    options = SupernetOptions(epochs=2, warmup_epochs=1, batch_size=64, bn_batches=1,
                              random_subnets=1)
    result = train_supernet(space, digits_small, options=options, seed=0,
                            directory=tmp_path, stream=None)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0]["elastic"] == [] and "arch/width_mult" in result.history[1][
        "elastic"]
    saved = torch.load(result.path, weights_only=True)
    assert all(key.startswith("model.") for key in saved["state"])
    net = space.build_supernet(input_shape=SHAPE, num_classes=10)
    net.load_state_dict(saved["state"])
    assert not torch.equal(net.model[0].weight, space.load_model()[0].weight)


FIXED = {"prune/ratio": {"type": "float", "low": 0.0, "high": 0.0},
         "prune/sparsity": {"type": "float", "low": 0.0, "high": 0.0},
         "lowrank/ratio": {"type": "float", "low": 1.0, "high": 1.0},
         "quant/activations": {"type": "categorical", "choices": [32]},
         "quant/bits": {"type": "categorical", "choices": [4, 8, 32]},
         "quant/scheme": {"type": "categorical", "choices": ["symmetric"]}}
LATENCY = {"min_repeats": 3, "max_repeats": 10, "warmup": 1, "time_cap_s": 0.2}


def search_config(out, checkpoint, *, evaluator="supernet", elastic=True, name="um"):
    options = {"model": f"{__name__}:residual_net", "checkpoint": str(checkpoint)}
    if elastic:
        options.update(elastic=True, input_shape=list(SHAPE))
    evaluator_options = ({"epochs": 2, "warmup_epochs": 1, "finalists": 1,
                          "finetune_epochs": 1, "bn_batches": 2, "latency": LATENCY}
                         if evaluator == "supernet" else
                         {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1,
                          "latency": LATENCY})
    return parse_config({
        "name": name, "output_dir": str(out), "trials": 4 if evaluator == "supernet" else 1,
        "runner": "local", "seed": 0, "dataset": {"name": "digits"},
        "space": {"name": "user-model", "options": options, "dimensions": FIXED},
        "strategy": {"name": "random"},
        "evaluator": {"name": evaluator, "options": evaluator_options},
    })


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("user") / "pretrained.pt"
    torch.save(residual_net().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory, checkpoint):
    from nascompress.search.experiment import build_experiment
    from nascompress.search.local import run_local

    out = tmp_path_factory.mktemp("results")
    run_local(build_experiment(search_config(out, checkpoint)), stream=None)
    return out / "um"


def test_a_weight_sharing_search_on_the_users_model_end_to_end(searched):
    from nascompress import load_run

    run = load_run(searched)
    search = [r for r in run.records if r["stage"] == "search"]
    final = [r for r in run.records if r["stage"] == "final"]
    assert len(search) == 4 and len(final) == 1
    assert all(r["state"] == "COMPLETE" for r in run.records), [
        r.get("error") for r in run.records]
    assert {r["metrics"]["accuracy_source"] for r in search} == {"inherited"}
    assert final[0]["metrics"]["accuracy_source"] == "fine-tuned"
    assert "accuracy_before_finetune" in final[0]["metrics"]
    assert all("arch/width_mult" in r["params"] for r in run.records)
    recorded = run.run["space"]
    assert recorded["elastic"] is True and recorded["input_shape"] == list(SHAPE)
    assert run.run["supernet"]["epochs"] == 2


def test_every_artifact_reloads_into_the_space_built_model_and_pick_exports(searched,
                                                                             tmp_path):
    from nascompress import cli, load_run
    from nascompress.data import take
    from nascompress.export import load_state_dict_export, rebuild_model

    run = load_run(searched)
    full = sum(p.numel() for p in residual_net().parameters())
    for record in run.records:  # the space rebuilds each subnet's structure from params
        model, metadata, _, dataset = rebuild_model(searched, record)
        assert metadata["params"] == record["params"]
        assert model(take(dataset.loader("val", batch_size=4), 4)[0]).shape == (4, 10)
        count = sum(p.numel() for p in model.parameters())
        assert count == record["metrics"]["params_count"]
        if record["params"]["arch/width_mult"] < 1:  # narrower subnets are smaller models
            assert count < full
    out = tmp_path / "picked.pt"
    assert cli.main(["pick", str(searched), "--export", "state_dict", "--out", str(out)]) == 0
    manifest = json.loads((tmp_path / "picked.pt.manifest.json").read_text())
    assert manifest["params"] == next(r for r in run.records if r["stage"] == "final")["params"]
    # The reloaded file is the artifact's model: same test accuracy.
    assert manifest["test_accuracy"] == pytest.approx(
        manifest["test"]["artifact_accuracy_torch"])
    reloaded = load_state_dict_export(out)
    assert reloaded(torch.zeros(2, *SHAPE)).shape == (2, 10)


def test_an_existing_multi_trial_user_model_search_is_unaffected(tmp_path, checkpoint):
    from nascompress.search.experiment import build_experiment
    from nascompress.search.local import run_local
    from nascompress.search.records import RunDirectory

    with pytest.raises(ConfigError, match="'user-model' does not support weight sharing yet "
                                          r"\(set space.options.elastic: true"):
        build_experiment(search_config(tmp_path, checkpoint, elastic=False))
    run_local(build_experiment(search_config(tmp_path, checkpoint, evaluator="compress-train",
                                             elastic=False, name="mt")), stream=None)
    run = RunDirectory(tmp_path / "mt")
    (record,) = run.load_trials()
    assert record["state"] == "COMPLETE", record.get("error")
    assert set(record["params"]) == set(compression_dimensions())
    assert "elastic" not in run.read_run()["space"]
