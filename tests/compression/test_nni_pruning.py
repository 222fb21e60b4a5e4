"""NNI as a channel chooser. Runs only where the ``nni`` extra is installed."""

import importlib.util

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nascompress.compression import prune_channels  # noqa: E402
from nascompress.compression.nni_pruning import (  # noqa: E402
    NNI_PRUNERS,
    nni_available,
    nni_channel_importance,
)
from tests.compression._models import wide_cnn  # noqa: E402

HAS_NNI = importlib.util.find_spec("nni") is not None


@pytest.mark.skipif(HAS_NNI, reason="checks the message shown when nni is missing")
def test_missing_nni_raises_import_error_with_install_hint(x):
    assert not nni_available()
    with pytest.raises(ImportError, match=r"pip install 'nascompress\[nni\]'.*archived"):
        nni_channel_importance(wide_cnn(), x, pruner="l1", ratio=0.5)


@pytest.mark.parametrize("pruner", NNI_PRUNERS)
def test_removed_channels_are_exactly_nni_masked_ones(x, calibration, pruner):
    pytest.importorskip("nni")
    model = wide_cnn()
    # 0.3 of 8 channels: NNI masks floor(2.4) = 2, fewer than the built-in rule's 3.
    kwargs = dict(ratio=0.3, layer_ratios={"4": 0.5}, calibration=calibration)
    masks = nni_channel_importance(model, x, pruner=pruner, **kwargs)
    assert set(masks) == {"0", "4"}  # the classifier is left alone
    keep0, keep4 = masks["0"].bool(), masks["4"].bool()
    assert (int(keep0.sum()), int(keep4.sum())) == (6, 8)
    w0, w4 = model[0].weight.detach().clone(), model[4].weight.detach().clone()
    lin = model[9].weight.detach().clone()

    report = prune_channels(model, x, importance=f"nni-{pruner}", **kwargs)

    assert report.channels == {"0": [8, 6], "4": [16, 8], "9": [10, 10]}
    assert torch.equal(model[0].weight, w0[keep0])
    assert torch.equal(model[4].weight, w4[keep4][:, keep0])
    # Flatten -> Linear: each kept channel of block 2 keeps its 2x2 block of inputs.
    assert torch.equal(model[9].weight, lin.view(10, 16, 4)[:, keep4].reshape(10, 32))
    assert model(x).shape == (8, 10)


def test_nni_l1_masks_the_filters_with_the_smallest_l1_norm(x):
    pytest.importorskip("nni")
    model = wide_cnn()
    masks = nni_channel_importance(model, x, pruner="l1", ratio=0.5)
    norms = model[0].weight.detach().abs().flatten(1).sum(1)
    assert set(torch.nonzero(masks["0"] == 0).flatten().tolist()) == set(
        torch.argsort(norms)[:4].tolist()
    )


def test_nni_leaves_the_model_untouched(x):
    pytest.importorskip("nni")
    model = wide_cnn()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    nni_channel_importance(model, x, pruner="fpgm", ratio=0.5)
    assert type(model[0]) is nn.Conv2d  # no NNI wrapper left behind
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_nni_criteria_refuse_global_and_iterative_pruning(x):
    with pytest.raises(ValueError, match="global_pruning"):
        prune_channels(wide_cnn(), x, ratio=0.5, importance="nni-l1", global_pruning=True)
    with pytest.raises(ValueError, match="iterative_steps"):
        prune_channels(wide_cnn(), x, ratio=0.5, importance="nni-l1", iterative_steps=2)


def test_unknown_pruner_and_missing_calibration_raise(x):
    pytest.importorskip("nni")
    with pytest.raises(ValueError, match="pruner.*'slim'"):
        nni_channel_importance(wide_cnn(), x, pruner="slim", ratio=0.5)
    with pytest.raises(ValueError, match="calibration"):
        nni_channel_importance(wide_cnn(), x, pruner="taylor", ratio=0.5)
