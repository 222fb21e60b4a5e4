"""What every elastic supernet shares: the fake quantizer, sliced BatchNorm, the
largest/smallest choice of a key, and the in-place channel permutations.

A supernet built on these (see :mod:`~nascompress.supernet.mobilenet`) keeps the
contract :mod:`~nascompress.supernet.training` and the ``supernet`` evaluator rely on:
``choices`` (elastic key -> values), ``largest()``, ``smallest()``, ``subnet(params)``,
``set_active(params)``, ``forward``, ``sort_channels_()`` and ``extract(params)`` (a
real model, as ``space.build_model(params)`` builds it, with the subnet's weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

from nascompress.compression.plan import FLOAT_BITS


def fake_quant(weight: torch.Tensor, bits: int, scheme: str) -> torch.Tensor:
    """``weight`` as the deployed quantizer sees it, straight-through gradient."""
    if bits >= FLOAT_BITS:
        return weight
    from nascompress.compression.quantization import _dequantize_raw, _quantize_raw

    with torch.no_grad():
        fake = _dequantize_raw(_quantize_raw(weight, bits, scheme), weight.ndim)
    return weight + (fake.to(weight.dtype) - weight).detach()


class ElasticBN(nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of the largest layer's statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        training = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c],
                            self.weight[:c], self.bias[:c], training, self.momentum or 0.1,
                            self.eps)



def extreme(key: str, values: Sequence[Any], *, largest: bool) -> Any:
    if key == "quant/scheme":  # no order: symmetric is the cheapest to train and to ship
        return "symmetric" if "symmetric" in values else values[0]
    return max(values) if largest else min(values)


def permute(module: nn.Module, name: str | None, dim: int, order: torch.Tensor) -> None:
    """Reorder ``module.<name>`` along ``dim`` (a BatchNorm's four tensors for ``None``)."""
    if name is None:
        for attr in ("weight", "bias", "running_mean", "running_var"):
            tensor = getattr(module, attr)
            tensor.data.copy_(tensor.data[order])
        return
    tensor = getattr(module, name)
    tensor.data.copy_(tensor.data.index_select(dim, order))


def copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d) -> None:
    c = target.num_features
    target.weight.copy_(source.weight[:c])
    target.bias.copy_(source.bias[:c])
    target.running_mean.copy_(source.running_mean[:c])
    target.running_var.copy_(source.running_var[:c])
    target.num_batches_tracked.copy_(source.num_batches_tracked)
