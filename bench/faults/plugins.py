"""Deliberately broken search-space plug-ins, named by import path in malformed configs.

Each one fails in a way ``build_experiment`` must catch before any compute is spent and
report as one message naming ``space.name`` (or ``space.dimensions``).
"""

from __future__ import annotations

from nascompress.spaces import Categorical, Int, SearchSpace


class _Small(SearchSpace):
    def default_dimensions(self):
        return {"arch/depth": Int(1, 2), "arch/width": Categorical([4, 8])}

    def build_model(self, params, *, input_shape, num_classes):
        import torch.nn as nn

        channels, height, width = input_shape
        return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, num_classes))


class RaisingSpace(_Small):
    """``build_model`` raises."""

    name = "raising"

    def build_model(self, params, *, input_shape, num_classes):
        raise RuntimeError("this space cannot build models")


class WrongShapeSpace(_Small):
    """Models output 3 logits whatever the dataset's class count."""

    name = "wrong-shape"

    def build_model(self, params, *, input_shape, num_classes):
        return super().build_model(params, input_shape=input_shape, num_classes=3)


class BrokenInitSpace(_Small):
    """The constructor raises something other than TypeError / ValueError."""

    name = "broken-init"

    def __init__(self, **kwargs):
        raise RuntimeError("cannot construct this space")


class RejectingSpace(_Small):
    """``check`` rejects every point."""

    name = "rejecting"

    def check(self, params):
        return "no point of this space is valid"


class EmptySpace(_Small):
    """No dimensions at all: nothing to search."""

    name = "empty"

    def default_dimensions(self):
        return {}


FAULTY_SPACES = ("RaisingSpace", "WrongShapeSpace", "BrokenInitSpace", "RejectingSpace",
                 "EmptySpace")
