"""Conformance checks for a :class:`~nascompress.spaces.SearchSpace` plug-in.

Run them from your own tests::

    from nascompress.testing.space_conformance import check_space

    def test_my_space_conforms():
        check_space(MySpace(), input_shape=(3, 32, 32), num_classes=10)

or subclass :class:`SpaceConformance` and define ``make_space`` plus the two class
attributes. Every check raises ``AssertionError`` with a message saying what to fix.
Model-building checks need torch; the others are pure Python.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from nascompress.spaces import SearchSpace, dimension_from_dict

GROUPS = ("arch", "prune", "quant", "distill", "lowrank")


def check_dimensions(space: SearchSpace) -> None:
    """Keys are namespaced ``group/name`` and every dimension survives a JSON round trip."""
    dims = space.dimensions()
    assert dims, f"{type(space).__name__}.dimensions() is empty"
    for key, dim in dims.items():
        group, sep, name = key.partition("/")
        assert sep and name, f"dimension key {key!r} must look like 'group/name'"
        assert group in GROUPS, f"dimension {key!r}: group {group!r} is not one of {GROUPS}"
        again = dimension_from_dict(json.loads(json.dumps(dim.to_dict())))
        assert again == dim, f"dimension {key!r} does not survive a JSON round trip"
    json.dumps(space.to_dict())  # run.json must be able to record the space


def sample_valid(space: SearchSpace, rng: random.Random, *, attempts: int = 500) -> dict:
    """A random point that ``space.check`` accepts."""
    dims = space.dimensions()
    for _ in range(attempts):
        params = {k: d.sample(rng) for k, d in dims.items()}
        if space.check(params) is None:
            return params
    raise AssertionError(
        f"{attempts} random points were all rejected by {type(space).__name__}.check; "
        "its constraints leave (almost) nothing to search"
    )


def check_validity(space: SearchSpace, *, seed: int = 0, samples: int = 50) -> None:
    """``check`` accepts sampled points and names what is wrong with broken ones."""
    rng = random.Random(seed)
    params = sample_valid(space, rng)
    for _ in range(samples):
        point = {k: d.sample(rng) for k, d in space.dimensions().items()}
        reason = space.check(point)
        assert reason is None or (isinstance(reason, str) and reason), (
            f"check() must return None or a non-empty reason, but returned {reason!r}"
        )
    missing = dict(params)
    missing.pop(next(iter(missing)))
    assert space.check(missing), "check() must reject params with a missing dimension"
    extra = {**params, "arch/__not_a_dimension__": 1}
    assert space.check(extra), "check() must reject params with an unknown key"


def check_models(
    space: SearchSpace,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int = 0,
    samples: int = 5,
) -> None:
    """Valid points build fresh models mapping ``(N, *input_shape)`` to ``(N, classes)``."""
    import torch

    rng = random.Random(seed)
    for _ in range(samples):
        params = sample_valid(space, rng)
        model = space.build_model(params, input_shape=input_shape, num_classes=num_classes)
        assert isinstance(model, torch.nn.Module), (
            f"build_model must return a torch.nn.Module, but returned {type(model).__name__}"
        )
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *input_shape))
        assert tuple(out.shape) == (2, num_classes), (
            f"build_model({params}) outputs shape {tuple(out.shape)}, expected "
            f"(2, {num_classes})"
        )
        again = space.build_model(params, input_shape=input_shape, num_classes=num_classes)
        assert again is not model, "build_model must return a fresh model every call"


def check_space(space: SearchSpace, *, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Run every check above."""
    check_dimensions(space)
    check_validity(space)
    check_models(space, input_shape=input_shape, num_classes=num_classes)


class SpaceConformance:
    """pytest base class: subclass it, set the attributes, define ``make_space``."""

    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    make_space: Callable[[Any], SearchSpace]

    def test_dimensions(self) -> None:
        check_dimensions(self.make_space())

    def test_validity(self) -> None:
        check_validity(self.make_space())

    def test_models(self) -> None:
        check_models(self.make_space(), input_shape=self.input_shape,
                     num_classes=self.num_classes)
