"""A multi-layer perceptron family, searched jointly with pruning and quantization."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nascompress.spaces import Categorical, Float, Int, SearchSpace


class MLPSpace(SearchSpace):
    """``arch/layers`` hidden layers of ``arch/hidden`` units, ReLU, then a classifier.

    Compression knobs are the built-in evaluator's: ``prune/ratio`` (hidden units
    removed), ``quant/bits`` and ``distill/alpha``. Constraint: a pruned hidden layer
    keeps at least 4 units.
    """

    name = "example-mlp"

    def default_dimensions(self):
        return {
            "arch/layers": Int(1, 3),
            "arch/hidden": Categorical([16, 32, 64, 128]),
            "prune/ratio": Float(0.0, 0.75, step=0.25),
            "quant/bits": Categorical([4, 8, 32]),
            "distill/alpha": Float(0.0, 0.5, step=0.5),
        }

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        kept = int(params["arch/hidden"] * (1 - params["prune/ratio"]))
        return None if kept >= 4 else f"pruning leaves {kept} hidden units (< 4)"

    def build_model(self, params, *, input_shape, num_classes):
        from torch import nn

        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for _ in range(params["arch/layers"]):
            layers += [nn.Linear(width, params["arch/hidden"]), nn.ReLU()]
            width = params["arch/hidden"]
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)
