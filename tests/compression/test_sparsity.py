import dataclasses
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from nascompress.compression import enable_qat  # noqa: E402
from nascompress.compression.sparsity import (  # noqa: E402
    SPARSITY_MASK,
    SparsityMask,
    SparsityReport,
    enable_sparse_training,
    finalize_sparsity,
    magnitude_prune_,
    sparse_encoding_size,
)
from tests.compression._models import tiny_cnn  # noqa: E402


def linear_with(weight: list[list[float]]) -> nn.Sequential:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return nn.Sequential(layer)


def test_layer_scope_zeroes_exactly_the_smallest_weights():
    model = linear_with([[0.5, -0.1, 3.0, 0.2, -2.0], [1.0, -0.3, 0.05, 4.0, 0.4]])
    report = magnitude_prune_(model, sparsity=0.3)  # floor(10 * 0.3) = 3 zeros
    expected = torch.tensor([[0.5, 0.0, 3.0, 0.0, -2.0], [1.0, -0.3, 0.0, 4.0, 0.4]])
    assert torch.equal(model[0].weight.detach(), expected)
    assert report.layers == {"0": 0.3}
    assert report.achieved == 0.3
    assert report.params_total == 10 and report.nonzero_params == 7
    assert torch.equal(getattr(model[0], SPARSITY_MASK), expected != 0)


def test_ties_do_not_overshoot_the_count():
    model = linear_with([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    report = magnitude_prune_(model, sparsity=0.5)
    assert report.layers == {"0": 0.5}
    assert int((model[0].weight == 0).sum()) == 4


def test_global_scope_ranks_across_layers():
    model = nn.Sequential(nn.Linear(4, 1, bias=False), nn.Linear(1, 4, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
        model[1].weight.copy_(torch.tensor([[5.0], [6.0], [0.05], [8.0]]))
    report = magnitude_prune_(model, sparsity=0.5, scope="global")
    # The four smallest of all eight: 0.05, 0.1, 0.2, 0.3.
    assert torch.equal(model[0].weight.detach(), torch.tensor([[0.0, 0.0, 0.0, 0.4]]))
    assert torch.equal(model[1].weight.detach(), torch.tensor([[5.0], [6.0], [0.0], [8.0]]))
    assert report.layers == {"0": 0.75, "1": 0.25}
    assert report.achieved == 0.5


def test_report_is_json_able_and_biases_stay_dense():
    model = tiny_cnn(widths=(8,))
    report = magnitude_prune_(model, sparsity=0.5)
    assert isinstance(report, SparsityReport)
    assert report.layers == {"0": 0.5, "5": 0.5}
    assert bool((model[5].bias != 0).all())
    assert json.loads(json.dumps(dataclasses.asdict(report)))["scope"] == "layer"
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    assert report.nonzero_params == report.params_total - zeros


def test_mask_holds_through_an_optimizer_step():
    model = tiny_cnn(widths=(8,))
    magnitude_prune_(model, sparsity=0.6)
    enable_sparse_training(model)
    masks = {i: model[i].parametrizations.weight[0].mask.clone() for i in (0, 5)}
    # Momentum and weight decay would move masked latent weights: the computed weight must
    # stay zero regardless.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x = torch.randn(4, 1, 8, 8)
    for _ in range(2):
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()
    for i, mask in masks.items():
        weight = model[i].weight.detach()
        assert bool((weight[~mask] == 0).all())
        assert bool((weight[mask] != 0).any())  # the kept weights did train


def test_finalize_removes_parametrizations_and_keeps_zeros():
    model = tiny_cnn(widths=(8,))
    magnitude_prune_(model, sparsity=0.6)
    enable_sparse_training(model)
    latent = model[0].parametrizations.weight.original
    with torch.no_grad():
        latent.add_(1.0)  # masked latent entries become nonzero
    result = finalize_sparsity(model)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert not any(hasattr(m, SPARSITY_MASK) for m in model.modules())
    assert set(model.state_dict()) == set(tiny_cnn(widths=(8,)).state_dict())
    assert result == {"0": 43 / 72, "5": 768 / 1280}  # floor(n * 0.6) zeros per layer
    assert int((model[0].weight == 0).sum()) == 43


def test_finalize_without_sparse_training_reapplies_the_mask():
    model = tiny_cnn(widths=(8,))
    magnitude_prune_(model, sparsity=0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)  # plain training moved the zeros
    result = finalize_sparsity(model)
    assert result["0"] == 0.5


def test_sparse_training_does_not_stack_with_qat():
    model = tiny_cnn(widths=(8,))
    magnitude_prune_(model, sparsity=0.5)
    enable_sparse_training(model)
    with pytest.raises(ValueError, match="FakeQuantize"):
        enable_qat(model, bits=8)
    with pytest.raises(ValueError, match="already carry"):
        enable_sparse_training(model)
    # A stray parametrization stops finalize before it bakes anything in.
    parametrize.register_parametrization(model[0], "weight", SparsityMask(torch.ones(8, 1, 3, 3)))
    with pytest.raises(ValueError, match="other than SparsityMask"):
        finalize_sparsity(model)


def test_qat_model_is_refused_by_magnitude_pruning():
    model = tiny_cnn(widths=(8,))
    enable_qat(model, bits=8)
    with pytest.raises(ValueError, match="parametrization"):
        magnitude_prune_(model, sparsity=0.5)


def test_enable_without_masks_raises():
    with pytest.raises(ValueError, match="magnitude_prune_"):
        enable_sparse_training(tiny_cnn(widths=(8,)))


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, math.nan])
def test_bad_sparsity_raises(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune_(tiny_cnn(widths=(8,)), sparsity=sparsity)


def test_bad_scope_raises():
    with pytest.raises(ValueError, match="scope.*'network'"):
        magnitude_prune_(tiny_cnn(widths=(8,)), sparsity=0.5, scope="network")


def test_sparse_encoding_sizes_by_hand():
    tensor = torch.zeros(4, 5)
    tensor[0, 1], tensor[2, 3], tensor[3, 4] = 1.0, -2.0, 3.0  # 20 entries, 3 nonzero
    sizes = sparse_encoding_size(tensor, value_bits=4)
    assert sizes["numel"] == 20 and sizes["nonzeros"] == 3
    assert sizes["dense_bytes"] == 10  # 20 * 4 bits
    assert sizes["bitmap_bytes"] == 3 + 2  # ceil(20 / 8) + ceil(3 * 4 / 8)
    assert sizes["index_bytes"] == 3 * 2 + 2  # uint16 indices + values
    assert sizes["index_dtype"] == "uint16"
    assert sizes["smallest"] == "bitmap"


def test_sparse_encoding_switches_to_uint32_indices_and_prefers_dense_when_full():
    big = torch.zeros(2**16 + 1)
    big[0] = 1.0
    sizes = sparse_encoding_size(big, value_bits=8)
    assert sizes["index_dtype"] == "uint32"
    assert sizes["index_bytes"] == 4 + 1
    assert sizes["smallest"] == "index"
    dense = sparse_encoding_size(torch.ones(16), value_bits=8)
    assert (dense["dense_bytes"], dense["bitmap_bytes"], dense["index_bytes"]) == (16, 18, 48)
    assert dense["smallest"] == "dense"


@pytest.mark.parametrize("value_bits", [0, 65])
def test_sparse_encoding_rejects_bad_bits(value_bits):
    with pytest.raises(ValueError, match="value_bits"):
        sparse_encoding_size(torch.ones(4), value_bits=value_bits)
