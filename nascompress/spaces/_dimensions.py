"""Search dimensions: the typed axes a search space is made of.

Both ends of a numeric range are inclusive. Dimensions validate their arguments on
construction (messages name the argument and show the value) and round-trip through
JSON via :meth:`Dimension.to_dict` / :func:`dimension_from_dict`.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Scalar = int | float | str | bool


class Dimension(ABC):
    """One axis of a search space.

    Subclasses implement :meth:`contains`, :meth:`sample` and :meth:`to_dict`. A
    dimension is immutable once built, compares by value, and is JSON-able.
    """

    kind: str = ""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a legal value of this dimension."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Scalar:
        """Draw a value uniformly (log-uniformly when ``log=True``) with ``rng``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; :func:`dimension_from_dict` inverts it."""

    def grid(self) -> list[Scalar] | None:
        """All values when the dimension is finite, else ``None``."""
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dimension) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{type(self).__name__}({args})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Categorical(Dimension):
    """An unordered choice among JSON scalars.

    Args:
        choices: non-empty sequence of distinct ints, floats, strings or bools.
    """

    kind = "categorical"

    def __init__(self, choices: Sequence[Scalar]) -> None:
        if isinstance(choices, str | bytes) or not isinstance(choices, Iterable):
            raise TypeError(f"choices must be a list of values, but got {choices!r}")
        choices = list(choices)
        if not choices:
            raise ValueError("choices must not be empty, but got []")
        for choice in choices:
            if not isinstance(choice, int | float | str | bool) or (
                isinstance(choice, float) and not math.isfinite(choice)
            ):
                raise TypeError(
                    f"choices must be finite numbers, strings or bools, but got {choice!r} "
                    f"in {choices!r}"
                )
        if len({(type(c), c) for c in choices}) != len(choices):
            raise ValueError(f"choices must be distinct, but got {choices!r}")
        self.choices: tuple[Scalar, ...] = tuple(choices)

    def contains(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices) or (
            _is_number(value) and any(_is_number(c) and value == c for c in self.choices)
        )

    def sample(self, rng: random.Random) -> Scalar:
        return rng.choice(self.choices)

    def grid(self) -> list[Scalar]:
        return list(self.choices)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "choices": list(self.choices)}


class _Numeric(Dimension):
    low: float
    high: float
    log: bool

    def _check_range(self, low: Any, high: Any, step: Any, log: Any) -> None:
        for arg, value in (("low", low), ("high", high)):
            if not _is_number(value) or not math.isfinite(value):
                raise TypeError(f"{arg} must be a finite number, but got {value!r}")
        if not low <= high:
            raise ValueError(f"low <= high must hold, but got (low={low!r}, high={high!r})")
        if not isinstance(log, bool):
            raise TypeError(f"log must be true or false, but got {log!r}")
        if log and low <= 0:
            raise ValueError(f"log=True needs low > 0, but got (low={low!r})")
        if step is not None:
            if not _is_number(step) or not step > 0:
                raise ValueError(f"step must be a positive number, but got {step!r}")
            if log:
                raise ValueError(f"step and log=True cannot be combined, but got step={step!r}")


class Int(_Numeric):
    """An integer range ``low..high`` (inclusive) on a grid of ``step``.

    Args:
        low: smallest value.
        high: largest value; ``high - low`` must be a multiple of ``step``.
        step: spacing of legal values.
        log: sample log-uniformly (needs ``low >= 1`` and ``step == 1``).
    """

    kind = "int"

    def __init__(self, low: int, high: int, *, step: int = 1, log: bool = False) -> None:
        for arg, value in (("low", low), ("high", high), ("step", step)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{arg} must be an integer, but got {value!r}")
        self._check_range(low, high, None, log)
        if step < 1:
            raise ValueError(f"step must be >= 1, but got {step!r}")
        if log and step != 1:
            raise ValueError(f"log=True needs step=1, but got step={step!r}")
        if (high - low) % step:
            raise ValueError(
                f"high - low must be a multiple of step, but got (low={low}, high={high}, "
                f"step={step})"
            )
        self.low, self.high, self.step, self.log = low, high, step, log

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not _is_number(value) or value != int(value):
            return False
        return self.low <= value <= self.high and (int(value) - self.low) % self.step == 0

    def sample(self, rng: random.Random) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(self.high, int(math.floor(value)))
        return rng.randrange(self.low, self.high + 1, self.step)

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "low": self.low, "high": self.high, "step": self.step,
                "log": self.log}


class Float(_Numeric):
    """A real range ``[low, high]``, optionally on a grid of ``step`` or log-scaled.

    Args:
        low: smallest value.
        high: largest value.
        step: spacing of legal values, or ``None`` for a continuous range.
        log: sample log-uniformly (needs ``low > 0``; not with ``step``).
    """

    kind = "float"

    def __init__(
        self, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> None:
        self._check_range(low, high, step, log)
        if step is not None:
            n_steps = (high - low) / step
            if abs(n_steps - round(n_steps)) > 1e-8:
                raise ValueError(
                    f"high - low must be a multiple of step, but got (low={low}, high={high}, "
                    f"step={step})"
                )
        self.low, self.high = float(low), float(high)
        self.step = None if step is None else float(step)
        self.log = log

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        if not self.low - 1e-12 <= value <= self.high + 1e-12:
            return False
        if self.step is not None:
            n = (value - self.low) / self.step
            return abs(n - round(n)) < 1e-6
        return True

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        if self.step is not None:
            n = rng.randint(0, round((self.high - self.low) / self.step))
            return round(self.low + n * self.step, 12)
        return rng.uniform(self.low, self.high)

    def grid(self) -> list[float] | None:
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "low": self.low, "high": self.high, "step": self.step,
                "log": self.log}


_KINDS: dict[str, type[Dimension]] = {"categorical": Categorical, "int": Int, "float": Float}


def dimension_from_dict(data: Mapping[str, Any]) -> Dimension:
    """Build a dimension from :meth:`Dimension.to_dict` output (or a config mapping).

    Raises:
        ValueError / TypeError: naming the offending key and value.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a dimension must be a mapping with a 'type' key, but got {data!r}")
    kind = data.get("type")
    if kind not in _KINDS:
        raise ValueError(f"type must be one of {sorted(_KINDS)}, but got {kind!r}")
    args = {k: v for k, v in data.items() if k != "type"}
    allowed = {"categorical": {"choices"}, "int": {"low", "high", "step", "log"},
               "float": {"low", "high", "step", "log"}}[kind]
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} for a {kind} dimension; allowed: {sorted(allowed)}"
        )
    if kind == "categorical":
        if "choices" not in args:
            raise ValueError("a categorical dimension needs 'choices'")
        return Categorical(args["choices"])
    if "low" not in args or "high" not in args:
        raise ValueError(f"a {kind} dimension needs 'low' and 'high', but got {dict(data)!r}")
    if kind == "int":
        # Only a missing (or null) step means 1: 'step: 0' is an error, not a default.
        step = args.get("step")
        return Int(args["low"], args["high"], step=1 if step is None else step,
                   log=args.get("log", False))
    return Float(args["low"], args["high"], step=args.get("step"), log=args.get("log", False))
