"""The ``grid`` strategy: every combination of every dimension's values, once each."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nascompress.spaces import Float
from nascompress.strategies._base import (
    FINISHED,
    Outcome,
    ValidatingStrategy,
    check_int_option,
    check_state_header,
)
from nascompress.strategies._registry import register_strategy

if TYPE_CHECKING:
    from nascompress.spaces import SearchSpace

_STATE_VERSION = 1
_FEISTEL_ROUNDS = 4


@register_strategy("grid")
class GridStrategy(ValidatingStrategy):
    """Enumerates the product of every dimension's grid, then returns ``FINISHED``.

    The values of a dimension are those of ``dimension.grid()``: every choice of a
    Categorical, every step of an Int, every step of a Float with ``step``. A continuous
    Float (no ``step``) has no grid: give it a ``step`` in the space, or set
    ``points_per_dimension`` to spread that many values over its range (log-spaced for
    ``log=True``), ends included.

    With ``shuffle=True`` (the default) the points come in a seeded pseudo-random order,
    so a run stopped early has sampled the whole space evenly; the order is a keyed
    permutation computed point by point, so grids far larger than memory work too. With
    ``shuffle=False`` they come in order, the last dimension varying fastest.

    Results (and so constraints) are ignored. Each point is proposed once: a point told
    ``INVALID`` is skipped, a ``FAILED`` one is not retried.

    Args:
        shuffle: propose the points in a seeded random order rather than in order.
        points_per_dimension: values given to each continuous Float dimension (at
            least 2), or ``None`` to reject such dimensions.
    """

    name = "grid"

    def __init__(self, *, shuffle: bool = True, points_per_dimension: int | None = None) -> None:
        self.shuffle = shuffle
        self.points_per_dimension = points_per_dimension
        self._axes: list[tuple[str, list[Any]]] = []
        self._size = 0
        self._keys: list[int] = []
        self._half_bits = 1
        self._position = 0
        self._outstanding: dict[str, int] = {}  # id -> index of its point (ordered)
        self._ready = False

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        if not isinstance(self.shuffle, bool):
            raise TypeError(f"strategy.shuffle must be true or false, but got {self.shuffle!r}")
        points = self.points_per_dimension
        check_int_option("points_per_dimension", points, 2, or_none=True)
        self._axes = []
        for key, dimension in space.dimensions().items():
            values = dimension.grid()
            if values is None:
                if points is None or not isinstance(dimension, Float):
                    raise ValueError(
                        f"the grid strategy needs finite dimensions, but {key!r} is continuous "
                        f"({dimension!r}); give it a step in the space, or set the strategy "
                        "option points_per_dimension"
                    )
                values = _spread(dimension, points)
            self._axes.append((key, list(values)))
        self._size = math.prod(len(values) for _, values in self._axes)
        # A Feistel network permutes [0, 4**h) with 4**h >= size; indices past the grid
        # are skipped by walking the cycle ("cycle walking"), fewer than 4 steps on average.
        self._half_bits = max(1, ((self._size - 1).bit_length() + 1) // 2)
        rng = random.Random(seed)
        self._keys = [rng.getrandbits(64) for _ in range(_FEISTEL_ROUNDS)]
        self._position = 0
        self._outstanding = {}
        self._ready = True

    @property
    def size(self) -> int:
        """The number of points in the grid (after :meth:`setup`)."""
        self._check_ready()
        return self._size

    def _check_ready(self) -> None:
        if not self._ready:
            raise RuntimeError("GridStrategy.setup(...) must be called before use")

    def ask(self, trial_id: str) -> dict[str, Any] | str:
        self._check_ready()
        if trial_id in self._outstanding:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")
        if self._position >= self._size:
            return FINISHED
        index = self._permute(self._position) if self.shuffle else self._position
        self._position += 1
        self._outstanding[trial_id] = index
        return self._point(index)

    def _point(self, index: int) -> dict[str, Any]:
        params = {}
        for key, values in reversed(self._axes):
            index, digit = divmod(index, len(values))
            params[key] = values[digit]
        return {key: params[key] for key, _ in self._axes}

    def _permute(self, position: int) -> int:
        index = self._feistel(position)
        while index >= self._size:
            index = self._feistel(index)
        return index

    def _feistel(self, value: int) -> int:
        bits = self._half_bits
        mask = (1 << bits) - 1
        left, right = value >> bits, value & mask
        for key in self._keys:
            # blake2b rather than hash(): the order must not change between processes.
            digest = hashlib.blake2b(
                right.to_bytes((bits + 7) // 8, "little"), key=key.to_bytes(8, "little"),
                digest_size=8,
            ).digest()
            left, right = right, left ^ (int.from_bytes(digest, "little") & mask)
        return (left << bits) | right

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        self._check_ready()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be an Outcome, but got {outcome!r}")
        self._outstanding.pop(trial_id, None)

    def state_dict(self) -> dict[str, Any]:
        self._check_ready()
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "size": self._size,
            "position": self._position,
            "outstanding": dict(self._outstanding),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._check_ready()
        check_state_header(state, owner="GridStrategy", name=self.name, version=_STATE_VERSION)
        if state["size"] != self._size:
            raise ValueError(
                f"state was saved for a grid of {state['size']} points, but this strategy's "
                f"grid has {self._size}; the space or points_per_dimension differ"
            )
        self._position = int(state["position"])
        self._outstanding = {tid: int(index) for tid, index in state["outstanding"].items()}


def _spread(dimension: Float, points: int) -> list[float]:
    """``points`` values from ``dimension.low`` to ``dimension.high``, ends included."""
    low, high = dimension.low, dimension.high
    if dimension.log:
        a, b = math.log(low), math.log(high)
        values = [math.exp(a + (b - a) * i / (points - 1)) for i in range(points)]
    else:
        values = [low + (high - low) * i / (points - 1) for i in range(points)]
    values[0], values[-1] = low, high  # the arithmetic can miss an end by a rounding error
    # A dimension with low == high would repeat one value; the grid lists it once.
    return list(dict.fromkeys(values))
