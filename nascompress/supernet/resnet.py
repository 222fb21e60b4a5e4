"""The elastic ``resnet`` supernet: one network holding every subnet of the space.

What is elastic, and how a subnet takes its share of the weights:

* **width** (``arch/stage{s}/width``): a layer of a subnet uses the *first* channels of
  the widest layer (a bottleneck stage's output the first ``4 × width``). Channels are
  ordered by importance (:meth:`ElasticResNet.sort_channels_`: L1 norm of the weights
  that read them). A stage's output channels are residual-coupled (every block's
  residual add and the first block's shortcut projection write them): they form one
  group, ranked by the summed L1 norm of every weight that reads them, and are
  permuted together. When the largest network's first block of a stage adds its input
  unchanged (stride 1, same width), that group is joined with the previous stage's (or
  the stem's). The inner channels of each block (one group after every convolution
  but the last) are groups of their own.
* **depth** (``arch/stage{s}/blocks``): a stage with ``d`` blocks runs its first ``d``;
  only blocks after the first, whose input and output shapes match, are ever skipped.
* **shortcut**: a block adds its input unchanged when its stride is 1 and its input and
  output widths agree, and otherwise projects it (1×1 convolution and BatchNorm), as
  :class:`~nascompress.models.resnet.ResNet` does. Since stage widths are chosen
  independently, the same first block may do either depending on the subnet; the
  projection is stored whenever some subnet needs it and sliced like the block.
* **bits** (``quant/bits``, ``quant/scheme``): every convolution and linear weight is
  fake-quantized at the subnet's bit-width with the straight-through estimator, by the
  same stateless quantizer the compression plan ships, exactly as in
  :mod:`~nascompress.supernet.mobilenet` (per-channel scales from the sliced weight at
  every forward; none learned).

Not elastic: ``arch/block``. A basic block (two 3×3 convolutions) and a bottleneck
(1×1, 3×3, 1×1 widening 4×) have no weights in common, so one supernet covers one
block type: the space's ``arch/block`` must hold a single value for weight sharing
(:meth:`~nascompress.spaces.ResNetSpace.weight_sharing_problem` says so before any
compute, and the constructor refuses it). Two block types would be two unrelated
supernets trained side by side at twice the cost, not weight sharing.

:meth:`ElasticResNet.extract` copies a subnet's weights into a real
:class:`~nascompress.models.resnet.ResNet` built by the space itself
(``space.build_model``). In eval mode its output equals the supernet's for that subnet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

from nascompress.models.mobilenet import stage_strides
from nascompress.models.resnet import Bottleneck
from nascompress.supernet._elastic import (
    FLOAT_BITS,
    ElasticBN,
    Supernet,
    copy_bn,
    fake_quant,
    permute,
)
from nascompress.training.loop import nchw

#: Where a channel group appears: ``(module, parameter name or None for a BatchNorm,
#: channel dimension)``.
_Uses = list[tuple[nn.Module, str | None, int]]


class ElasticResBlock(nn.Module):
    """The largest basic or bottleneck block of a stage position, used sliced.

    ``convs`` names the body's convolutions in order (``conv1``, ``conv2`` and, for a
    bottleneck, ``conv3``), each followed by the BatchNorm of the same index in
    ``bns``; ``shortcut`` / ``shortcut_bn`` exist when some subnet projects its input.
    """

    def __init__(self, in_max: int, width_max: int, *, bottleneck: bool, stride: int,
                 projection: bool) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.expansion = Bottleneck.expansion if bottleneck else 1
        self.stride = stride
        #: The convolution that strides: the 3×3 (the first of a basic block, the
        #: second of a bottleneck), as in models.resnet.
        self.strided = 1 if bottleneck else 0
        out_max = width_max * self.expansion
        #: The largest network adds this block's input unchanged.
        self.couples_input = stride == 1 and in_max == out_max
        if bottleneck:
            shapes = [(width_max, in_max, 1), (width_max, width_max, 3),
                      (out_max, width_max, 1)]
        else:
            shapes = [(width_max, in_max, 3), (out_max, width_max, 3)]
        self.convs = [f"conv{i + 1}" for i in range(len(shapes))]
        self.bns = [f"bn{i + 1}" for i in range(len(shapes))]
        for conv, bn, (cout, cin, k) in zip(self.convs, self.bns, shapes, strict=True):
            weight = nn.Parameter(torch.empty(cout, cin, k, k))
            nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
            setattr(self, conv, weight)
            setattr(self, bn, ElasticBN(cout))
        self.has_shortcut = projection
        if projection:
            self.shortcut = nn.Parameter(torch.empty(out_max, in_max, 1, 1))
            nn.init.kaiming_normal_(self.shortcut, mode="fan_out", nonlinearity="relu")
            self.shortcut_bn = ElasticBN(out_max)

    def identity(self, cin: int, cout: int) -> bool:
        return self.stride == 1 and cin == cout

    def weights(self, cin: int, width: int) -> dict[str, torch.Tensor]:
        """The subnet's float weights, keyed like the parameters above."""
        cout = width * self.expansion
        out = {"conv1": self.conv1[:width, :cin]}
        if self.bottleneck:
            out.update(conv2=self.conv2[:width, :width], conv3=self.conv3[:cout, :width])
        else:
            out.update(conv2=self.conv2[:cout, :width])
        if not self.identity(cin, cout):
            if not self.has_shortcut:
                raise RuntimeError(f"no shortcut projection stored for {cin} -> {cout} "
                                   "channels (the supernet was built for other widths)")
            out["shortcut"] = self.shortcut[:cout, :cin]
        return out

    def forward(self, x: torch.Tensor, width: int, *, bits: int, scheme: str
                ) -> torch.Tensor:
        w = self.weights(x.shape[1], width)
        h = x
        last = len(self.convs) - 1
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            weight = w[conv]
            stride = self.stride if index == self.strided else 1
            h = getattr(self, bn)(F.conv2d(h, fake_quant(weight, bits, scheme),
                                           stride=stride, padding=weight.shape[-1] // 2))
            if index < last:
                h = F.relu(h)
        if "shortcut" in w:
            # NCHW on purpose (the trainer's hooks cannot reach a functional conv): a
            # strided 1x1 over a channels-last input crashes oneDNN's backward on some
            # CPUs (see nchw_strided_pointwise), and activations here turn channels-last
            # unasked. x itself when it is NCHW already.
            short = self.shortcut_bn(F.conv2d(nchw(x),
                                              fake_quant(w["shortcut"], bits, scheme),
                                              stride=self.stride))
        else:
            short = x
        return F.relu(h + short)


class ElasticResNet(Supernet):
    """The supernet of a :class:`~nascompress.spaces.ResNetSpace` (one block type).

    Built by ``space.build_supernet(input_shape=..., num_classes=...)``. A subnet is named
    by the space's params (only the elastic keys are read: :meth:`subnet` lists them);
    :meth:`set_active` chooses the one :meth:`forward` runs.

    Args:
        space: the resnet space (its dimensions give the choices; the largest of each
            is stored). Its ``arch/block`` must hold a single value.
        input_shape: one example's shape.
        num_classes: logits produced.

    Raises:
        ValueError: the space's ``arch/block`` holds more than one block type.
    """

    def __init__(self, space, *, input_shape: Sequence[int], num_classes: int) -> None:
        problem = space.weight_sharing_problem()
        if problem:
            raise ValueError(problem)
        super().__init__(space, input_shape=input_shape, num_classes=num_classes)
        self.block = space.dimensions()["arch/block"].grid()[0]
        channels, height, width = self.input_shape
        count = len(space.widths)
        strides = stage_strides(min(height, width), space.strides)
        bottleneck = self.block == "bottleneck"
        expansion = Bottleneck.expansion if bottleneck else 1
        widths = [self.choices[f"arch/stage{i}/width"] for i in range(count)]
        # The stem is as wide as the first stage (models.resnet), so the first block's
        # input and output widths move together; later stages' are independent.
        pairs = [{(w, w * expansion) for w in widths[0]}] + [
            {(a * expansion, b * expansion) for a in widths[i - 1] for b in widths[i]}
            for i in range(1, count)]
        self.stem_max = max(widths[0])
        self.stem = nn.Parameter(torch.empty(self.stem_max, channels, 3, 3))
        nn.init.kaiming_normal_(self.stem, mode="fan_out", nonlinearity="relu")
        self.stem_bn = ElasticBN(self.stem_max)
        self.stages = nn.ModuleList()
        cin = self.stem_max
        for index in range(count):
            width_max = max(widths[index])
            blocks = nn.ModuleList()
            for position in range(max(self.choices[f"arch/stage{index}/blocks"])):
                stride = strides[index] if position == 0 else 1
                projection = position == 0 and (
                    stride != 1 or any(a != b for a, b in pairs[index]))
                blocks.append(ElasticResBlock(cin, width_max, bottleneck=bottleneck,
                                              stride=stride, projection=projection))
                cin = width_max * expansion
            self.stages.append(blocks)
        self.classifier = nn.Linear(cin, num_classes)

    # -- forward -----------------------------------------------------------------------

    def _layout(self, subnet: Mapping[str, Any]) -> list[tuple[int, int]]:
        """Per stage ``(width, blocks)``."""
        return [(subnet[f"arch/stage{i}/width"], subnet[f"arch/stage{i}/blocks"])
                for i in range(len(self.stages))]

    def _bits(self, subnet: Mapping[str, Any]) -> tuple[int, str]:
        return (int(subnet.get("quant/bits", FLOAT_BITS)),
                str(subnet.get("quant/scheme", "symmetric")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        subnet = self._active
        stages = self._layout(subnet)
        bits, scheme = self._bits(subnet)
        stem = fake_quant(self.stem[:stages[0][0]], bits, scheme)
        x = F.relu(self.stem_bn(F.conv2d(x, stem, padding=1)))
        for blocks, (width, depth) in zip(self.stages, stages, strict=True):
            for block in blocks[:depth]:
                x = block(x, width, bits=bits, scheme=scheme)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        weight = fake_quant(self.classifier.weight[:, :x.shape[1]], bits, scheme)
        return F.linear(x, weight, self.classifier.bias)

    # -- extraction ------------------------------------------------------------------

    @torch.no_grad()
    def extract(self, params: Mapping[str, Any]) -> nn.Module:
        """A real :class:`~nascompress.models.resnet.ResNet` with this subnet's (float)
        weights and BatchNorm statistics; the space builds it, so its structure is
        exactly what ``space.build_model(params)`` gives. Quantization is left to the
        compression plan, which reproduces the supernet's fake quantizer.

        Raises:
            ValueError: ``params`` name another block type than the supernet's.
        """
        params = {"arch/block": self.block, **self.largest(), **dict(params)}
        if params["arch/block"] != self.block:
            raise ValueError(f"arch/block={params['arch/block']!r}: this supernet holds "
                             f"{self.block!r} blocks only")
        model = self.space.build_model(params, input_shape=self.input_shape,
                                       num_classes=self.num_classes)
        stages = self._layout(self.subnet(params))
        model.stem[0].weight.copy_(self.stem[:stages[0][0]])
        copy_bn(model.stem[1], self.stem_bn)
        extracted = iter(model.stages)
        cin = stages[0][0]
        for blocks, (width, depth) in zip(self.stages, stages, strict=True):
            for block in blocks[:depth]:
                target = next(extracted)
                w = block.weights(cin, width)
                layers = list(target.body)
                for index, (conv, bn) in enumerate(zip(block.convs, block.bns, strict=True)):
                    layers[3 * index].weight.copy_(w[conv])
                    copy_bn(layers[3 * index + 1], getattr(block, bn))
                if "shortcut" in w:
                    target.shortcut[0].weight.copy_(w["shortcut"])
                    copy_bn(target.shortcut[1], block.shortcut_bn)
                cin = width * block.expansion
        model.classifier.weight.copy_(self.classifier.weight[:, :cin])
        model.classifier.bias.copy_(self.classifier.bias)
        return model

    # -- channel importance ------------------------------------------------------------

    @torch.no_grad()
    def sort_channels_(self) -> None:
        """Reorder every channel group by importance, largest first, in place.

        The importance of a channel is the L1 norm of the weights that read it (the next
        layers' input slices, the shortcut projection's, the classifier's), summed over
        a residual-coupled group. Permuting a group consistently everywhere it appears
        leaves the largest network's function unchanged (up to float rounding); it only
        decides which channels smaller subnets keep.
        """
        # A stage's output is written by every block's last convolution (residual adds)
        # and by the first block's shortcut projection, and read by its later blocks and
        # by the next stage's first block (or the classifier).
        groups: list[tuple[_Uses, _Uses]] = []
        writers: _Uses = [(self, "stem", 0), (self.stem_bn, None, 0)]
        readers: _Uses = []
        for blocks in self.stages:
            first = blocks[0]
            written: _Uses = [w for block in blocks for w in (
                (block, block.convs[-1], 0), (getattr(block, block.bns[-1]), None, 0))]
            read_first: _Uses = [(first, "conv1", 1)]
            if first.has_shortcut:
                written += [(first, "shortcut", 0), (first.shortcut_bn, None, 0)]
                read_first.append((first, "shortcut", 1))
            later: _Uses = [(block, "conv1", 1) for block in blocks[1:]]
            if first.couples_input:
                # The largest network adds the first block's input: one group with it.
                writers, readers = writers + written, readers + read_first + later
                continue
            groups.append((writers, readers + read_first))
            writers, readers = written, later
        groups.append((writers, readers + [(self.classifier, "weight", 1)]))
        for writers, readers in groups:
            importance = sum(getattr(m, n).abs().transpose(0, 1).flatten(1).sum(1)
                             for m, n, _ in readers)
            order = torch.argsort(importance, descending=True, stable=True)
            for module, name, dim in writers + readers:
                permute(module, name, dim, order)
        for blocks in self.stages:
            for block in blocks:
                for index in range(len(block.convs) - 1):
                    reader = block.convs[index + 1]
                    importance = getattr(block, reader).abs().transpose(0, 1).flatten(1).sum(1)
                    order = torch.argsort(importance, descending=True, stable=True)
                    permute(block, block.convs[index], 0, order)
                    permute(getattr(block, block.bns[index]), None, 0, order)
                    permute(block, reader, 1, order)
