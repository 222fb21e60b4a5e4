"""The elastic ``mobilenet`` supernet: one network holding every subnet of the space.

What is elastic, and how a subnet takes its share of the weights:

* **width** (``arch/width_mult``): a layer of a subnet uses the *first* ``c`` output
  channels (and the first input channels) of the largest layer. Channels are ordered by
  importance (:meth:`ElasticMobileNet.sort_channels_`: L1 norm of the weights that read
  them), so the first channels are the important ones. A stage's output channels are
  residual-coupled (every block of the stage adds into them): they form one group,
  ranked by the summed L1 norm of every weight that reads them, and are permuted
  together. The stem and each block's hidden channels are groups of their own.
* **expansion** (``arch/stage{s}/expand``): the hidden channels of a block are the first
  ``in_channels * expand`` of the largest block (ratios must be > 1: ratio 1 has no
  expand convolution in :class:`~nascompress.models.mobilenet.InvertedResidual`).
* **depth** (``arch/stage{s}/depth``): a stage with ``d`` blocks runs its first ``d``;
  only blocks after the first, which keep their input shape, are ever skipped.
* **kernel** (``arch/stage{s}/kernel``): Once-for-All's kernel transform. The largest
  depthwise kernel is stored; a smaller one is the centre crop of the next larger
  (transformed) kernel, passed through a learned ``k²×k²`` matrix shared by the layer's
  channels (initialised to the identity, so an untrained transform is a plain crop).
* **squeeze-excite** (``arch/stage{s}/se``): the SE module of the largest block, sliced
  like the block's hidden channels; ``se=0`` skips it.
* **bits** (``quant/bits``, ``quant/scheme``): every convolution and linear weight is
  fake-quantized at the subnet's bit-width with the straight-through estimator, by the
  same stateless quantizer the compression plan ships (:mod:`~nascompress.compression.
  quantization`: per-channel scales calibrated from the weight at every forward, one per
  bit-width since they are computed from the sliced weight at that width). No scale is
  learned: what the supernet computes at 4 bits is exactly what
  :meth:`~nascompress.compression.plan.CompressionPlan.finalize_` ships for the
  extracted subnet at 4 bits.

:meth:`ElasticMobileNet.extract` copies a subnet's weights into a real
:class:`~nascompress.models.mobilenet.MobileNet` built by the space itself
(``space.build_model``), so compression, artifacts, ONNX export, export and pick see an
ordinary model. In eval mode its output equals the supernet's for that subnet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

from nascompress.models.mobilenet import make_divisible, stage_strides
from nascompress.supernet._elastic import (
    FLOAT_BITS,
    ElasticBN,
    Supernet,
    copy_bn,
    fake_quant,
    permute,
)


class ElasticBlock(nn.Module):
    """The largest inverted residual block of a stage position, used sliced."""

    def __init__(self, in_max: int, out_max: int, *, expand_max: int, kernels: Sequence[int],
                 se: bool, stride: int, activation: str) -> None:
        super().__init__()
        hidden = in_max * expand_max
        self.kernels = sorted(kernels)
        k = self.kernels[-1]
        self.stride = stride
        self.act = nn.ReLU() if activation == "relu" else nn.Hardswish()
        self.expand = nn.Parameter(torch.empty(hidden, in_max, 1, 1))
        self.bn1 = ElasticBN(hidden)
        self.depthwise = nn.Parameter(torch.empty(hidden, 1, k, k))
        self.bn2 = ElasticBN(hidden)
        # One transform per smaller kernel (Once-for-All), identity at first.
        self.transforms = nn.ParameterDict({
            str(s): nn.Parameter(torch.eye(s * s)) for s in self.kernels[:-1]})
        self.has_se = se
        if se:
            squeezed = make_divisible(hidden / 4)
            self.se_reduce = nn.Parameter(torch.empty(squeezed, hidden, 1, 1))
            self.se_reduce_bias = nn.Parameter(torch.zeros(squeezed))
            self.se_expand = nn.Parameter(torch.empty(hidden, squeezed, 1, 1))
            self.se_expand_bias = nn.Parameter(torch.zeros(hidden))
        self.project = nn.Parameter(torch.empty(out_max, hidden, 1, 1))
        self.bn3 = ElasticBN(out_max)
        for weight in (self.expand, self.project):
            nn.init.kaiming_normal_(weight, mode="fan_out")
        nn.init.kaiming_normal_(self.depthwise, mode="fan_out")
        if se:
            for weight in (self.se_reduce, self.se_expand):
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))

    def kernel(self, size: int) -> torch.Tensor:
        """The depthwise weight at kernel ``size``: crops of the larger, transformed."""
        weight = self.depthwise
        for larger, smaller in zip(self.kernels[::-1], self.kernels[-2::-1], strict=False):
            if larger == size:
                break
            cut = (larger - smaller) // 2
            crop = weight[:, :, cut:cut + smaller, cut:cut + smaller]
            flat = crop.reshape(crop.shape[0], smaller * smaller)
            weight = (flat @ self.transforms[str(smaller)]).reshape_as(crop)
        return weight

    def weights(self, cin: int, cout: int, *, expand: int, kernel: int, se: bool
                ) -> dict[str, torch.Tensor]:
        """The subnet's float weights, keyed like the layers of the extracted block."""
        hidden = cin * expand
        out = {"expand": self.expand[:hidden, :cin],
               "depthwise": self.kernel(kernel)[:hidden],
               "project": self.project[:cout, :hidden]}
        if se:
            squeezed = make_divisible(hidden / 4)
            out.update(se_reduce=self.se_reduce[:squeezed, :hidden],
                       se_reduce_bias=self.se_reduce_bias[:squeezed],
                       se_expand=self.se_expand[:hidden, :squeezed],
                       se_expand_bias=self.se_expand_bias[:hidden])
        return out

    def forward(self, x: torch.Tensor, cout: int, *, expand: int, kernel: int, se: bool,
                bits: int, scheme: str) -> torch.Tensor:
        cin = x.shape[1]
        w = self.weights(cin, cout, expand=expand, kernel=kernel, se=se)

        def q(t: torch.Tensor) -> torch.Tensor:
            return fake_quant(t, bits, scheme)

        h = self.act(self.bn1(F.conv2d(x, q(w["expand"]))))
        hidden = h.shape[1]
        h = self.act(self.bn2(F.conv2d(h, q(w["depthwise"]), stride=self.stride,
                                       padding=kernel // 2, groups=hidden)))
        if se:
            s = F.adaptive_avg_pool2d(h, 1)
            s = F.relu(F.conv2d(s, q(w["se_reduce"]), w["se_reduce_bias"]))
            s = F.hardsigmoid(F.conv2d(s, q(w["se_expand"]), w["se_expand_bias"]))
            h = h * s
        out = self.bn3(F.conv2d(h, q(w["project"])))
        return x + out if self.stride == 1 and cin == cout else out


class ElasticMobileNet(Supernet):
    """The supernet of a :class:`~nascompress.spaces.MobileNetSpace`.

    Built by ``space.build_supernet(input_shape=..., num_classes=...)``. A subnet is named
    by the space's params (only the elastic keys are read: :meth:`subnet` lists them);
    :meth:`set_active` chooses the one :meth:`forward` runs.

    Args:
        space: the mobilenet space (its dimensions give the choices; the largest of each
            is stored).
        input_shape: one example's shape.
        num_classes: logits produced.
    """

    def __init__(self, space, *, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(space, input_shape=input_shape, num_classes=num_classes)
        for key, values in self.choices.items():
            if key.endswith("/expand") and min(values) <= 1:
                raise ValueError(f"space.dimensions.{key}: weight sharing needs expansion "
                                 f"ratios > 1, but got {values}")
        channels, height, width = self.input_shape
        size = min(height, width)
        self.stem_stride = 2 if size >= 64 else 1
        strides = stage_strides(size, [s for _, s in space.stages], stem_stride=self.stem_stride)
        wmax = max(self.choices["arch/width_mult"])
        self.stem_max = make_divisible(space.stem_channels * wmax)
        stage_max = space.stage_channels(wmax)
        self.stem = nn.Parameter(torch.empty(self.stem_max, channels, 3, 3))
        nn.init.kaiming_normal_(self.stem, mode="fan_out")
        self.stem_bn = ElasticBN(self.stem_max)
        self.stages = nn.ModuleList()
        cin = self.stem_max
        for index, cout in enumerate(stage_max):
            prefix = f"arch/stage{index}/"
            blocks = nn.ModuleList()
            for position in range(max(self.choices[prefix + "depth"])):
                blocks.append(ElasticBlock(
                    cin, cout, expand_max=max(self.choices[prefix + "expand"]),
                    kernels=self.choices[prefix + "kernel"],
                    se=1 in self.choices[prefix + "se"],
                    stride=strides[index] if position == 0 else 1,
                    activation=space.stage_activation(index)))
                cin = cout
            self.stages.append(blocks)
        self.head = nn.Parameter(torch.empty(space.head_channels, cin, 1, 1))
        nn.init.kaiming_normal_(self.head, mode="fan_out")
        self.head_bn = nn.BatchNorm2d(space.head_channels)
        self.classifier = nn.Linear(space.head_channels, num_classes)

    # -- forward -----------------------------------------------------------------------

    def _layout(self, subnet: Mapping[str, Any]):
        """Stem width, then per stage ``(out channels, depth, expand, kernel, se)``."""
        wm = subnet["arch/width_mult"]
        widths = self.space.stage_channels(wm)
        stem = make_divisible(self.space.stem_channels * wm)
        stages = [(widths[i], subnet[f"arch/stage{i}/depth"], subnet[f"arch/stage{i}/expand"],
                   subnet[f"arch/stage{i}/kernel"], bool(subnet[f"arch/stage{i}/se"]))
                  for i in range(len(self.stages))]
        return stem, stages

    def _bits(self, subnet: Mapping[str, Any]) -> tuple[int, str]:
        return (int(subnet.get("quant/bits", FLOAT_BITS)),
                str(subnet.get("quant/scheme", "symmetric")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        subnet = self._active
        stem, stages = self._layout(subnet)
        bits, scheme = self._bits(subnet)
        x = F.hardswish(self.stem_bn(F.conv2d(x, fake_quant(self.stem[:stem], bits, scheme),
                                              stride=self.stem_stride, padding=1)))
        for blocks, (cout, depth, expand, kernel, se) in zip(self.stages, stages, strict=True):
            for block in blocks[:depth]:
                x = block(x, cout, expand=expand, kernel=kernel, se=se, bits=bits,
                          scheme=scheme)
        head = fake_quant(self.head[:, :x.shape[1]], bits, scheme)
        x = F.hardswish(self.head_bn(F.conv2d(x, head)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.linear(x, fake_quant(self.classifier.weight, bits, scheme),
                        self.classifier.bias)

    # -- extraction ------------------------------------------------------------------

    @torch.no_grad()
    def extract(self, params: Mapping[str, Any]) -> nn.Module:
        """A real :class:`~nascompress.models.mobilenet.MobileNet` with this subnet's
        (float) weights and BatchNorm statistics; the space builds it, so its structure
        is exactly what ``space.build_model(params)`` gives (export reloads artifacts
        into that). Quantization is left to the compression plan, which reproduces the
        supernet's fake quantizer."""
        params = {**self.largest(), **dict(params)}
        model = self.space.build_model(params, input_shape=self.input_shape,
                                       num_classes=self.num_classes)
        stem, stages = self._layout(self.subnet(params))
        conv, bn = model.stem[0], model.stem[1]
        conv.weight.copy_(self.stem[:stem])
        copy_bn(bn, self.stem_bn)
        extracted = iter(model.blocks)
        cin = stem
        for blocks, (cout, depth, expand, kernel, se) in zip(self.stages, stages, strict=True):
            for block in blocks[:depth]:
                target = next(extracted)
                w = block.weights(cin, cout, expand=expand, kernel=kernel, se=se)
                layers = list(target.block)
                layers[0].weight.copy_(w["expand"])
                copy_bn(layers[1], block.bn1)
                layers[3].weight.copy_(w["depthwise"])
                copy_bn(layers[4], block.bn2)
                if se:
                    module = layers[6]
                    module.reduce.weight.copy_(w["se_reduce"])
                    module.reduce.bias.copy_(w["se_reduce_bias"])
                    module.expand.weight.copy_(w["se_expand"])
                    module.expand.bias.copy_(w["se_expand_bias"])
                layers[-2].weight.copy_(w["project"])
                copy_bn(layers[-1], block.bn3)
                cin = cout
        model.head[0].weight.copy_(self.head[:, :cin])
        copy_bn(model.head[1], self.head_bn)
        model.classifier.load_state_dict(self.classifier.state_dict())
        return model

    # -- channel importance ------------------------------------------------------------

    @torch.no_grad()
    def sort_channels_(self) -> None:
        """Reorder every channel group by importance, largest first, in place.

        The importance of a channel is the L1 norm of the weights that read it (the next
        layers' input slices), summed over a residual-coupled group. Permuting a group
        consistently everywhere it appears leaves the largest network's function
        unchanged (up to float rounding); it only decides which channels smaller
        subnets keep.
        """
        # The stem's output is written by the stem and read by the first block. A
        # stage's output is written by every block of the stage (residual adds) and read
        # by its later blocks and by the next stage's first block (or the head).
        groups = []
        writers: list[tuple[nn.Module, str | None, int]] = [(self, "stem", 0),
                                                            (self.stem_bn, None, 0)]
        readers: list[tuple[nn.Module, str | None, int]] = []
        for blocks in self.stages:
            written = [w for block in blocks for w in ((block, "project", 0),
                                                       (block.bn3, None, 0))]
            first = blocks[0]
            if first.stride == 1 and first.expand.shape[1] == first.project.shape[0]:
                # The first block adds its input too: one group with the previous one.
                writers = writers + written
                readers = readers + [(block, "expand", 1) for block in blocks]
                continue
            groups.append((writers, readers + [(first, "expand", 1)]))
            writers = written
            readers = [(block, "expand", 1) for block in blocks[1:]]
        groups.append((writers, readers + [(self, "head", 1)]))
        for writers, readers in groups:
            importance = sum(getattr(m, n).abs().transpose(0, 1).flatten(1).sum(1)
                             for m, n, _ in readers)
            order = torch.argsort(importance, descending=True, stable=True)
            for module, name, dim in writers + readers:
                permute(module, name, dim, order)
        for blocks in self.stages:
            for block in blocks:
                importance = block.project.abs().transpose(0, 1).flatten(1).sum(1)
                order = torch.argsort(importance, descending=True, stable=True)
                permute(block, "expand", 0, order)
                permute(block.bn1, None, 0, order)
                permute(block, "depthwise", 0, order)
                permute(block.bn2, None, 0, order)
                permute(block, "project", 1, order)
                if block.has_se:
                    permute(block, "se_reduce", 1, order)
                    permute(block, "se_expand", 0, order)
                    permute(block, "se_expand_bias", 0, order)
