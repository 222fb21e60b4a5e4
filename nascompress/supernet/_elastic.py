"""What every elastic supernet shares: the contract (:class:`Supernet`), the fake
quantizer, sliced BatchNorm, the largest/smallest choice of a key, and the in-place
channel permutations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

from nascompress.compression.plan import FLOAT_BITS
from nascompress.compression.quantization import _dequantize_raw, _quantize_raw


def fake_quant(weight: torch.Tensor, bits: int, scheme: str) -> torch.Tensor:
    """``weight`` as the deployed quantizer sees it, straight-through gradient."""
    if bits >= FLOAT_BITS:
        return weight
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


class Supernet(nn.Module):
    """The contract :mod:`~nascompress.supernet.training` and the ``supernet`` evaluator
    rely on; every elastic supernet (mobilenet, resnet, user-model) is one.

    A subnet is named by the space's params; only the elastic keys (:attr:`choices`,
    the grid of each of ``space.elastic_dimensions()``) are read, and a missing one
    takes its largest value; the largest subnet is active at first. Subclasses call
    ``super().__init__(space, input_shape=..., num_classes=...)``, build their layers
    and implement:

    * ``forward(x)``: the active subnet's output, computed with the shared weights (and
      fake-quantized at its bit-width, when the space has ``quant/bits``);
    * :meth:`sort_channels_`: reorder every channel group by importance, largest first,
      leaving the largest subnet's function unchanged (it decides which channels the
      smaller subnets keep);
    * :meth:`extract`: a real model, exactly what ``space.build_model(params)`` builds,
      carrying the subnet's float weights and BatchNorm statistics; in eval mode its
      output equals the supernet's for that subnet.

    Attributes:
        space: the space the supernet belongs to.
        input_shape: one example's shape.
        num_classes: logits produced.
        choices: elastic key -> the values the supernet covers.
    """

    def __init__(self, space, *, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        dims = space.dimensions()
        self.choices: dict[str, list[Any]] = {
            key: list(dims[key].grid() or []) for key in space.elastic_dimensions()}
        self.set_active(self.largest())

    def subnet(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The elastic part of ``params`` (other keys are ignored; missing ones take the
        largest value)."""
        largest = self.largest()
        return {key: params.get(key, largest[key]) for key in self.choices}

    def largest(self) -> dict[str, Any]:
        return {key: extreme(key, values, largest=True) for key, values in self.choices.items()}

    def smallest(self) -> dict[str, Any]:
        return {key: extreme(key, values, largest=False)
                for key, values in self.choices.items()}

    def set_active(self, params: Mapping[str, Any]) -> None:
        """Choose the subnet :meth:`forward` runs."""
        self._active = self.subnet(params)

    def sort_channels_(self) -> None:
        raise NotImplementedError

    def extract(self, params: Mapping[str, Any]) -> nn.Module:
        raise NotImplementedError
