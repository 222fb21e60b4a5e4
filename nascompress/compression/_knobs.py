"""The compression knobs' vocabulary: names, valid values, rules (no torch, no imports).

Private implementation module of :mod:`nascompress.compression.plan`, which re-exports
every name here and documents them. It is a leaf, so the technique modules (pruning,
quantization) can take their accepted values from it while the plan imports them, with
no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Channel-importance criteria of ``prune/importance`` (torch-pruning's own classes).
IMPORTANCES: tuple[str, ...] = ("l1", "l2", "taylor", "fpgm")
#: Weight quantization schemes of ``quant/scheme``.
SCHEMES: tuple[str, ...] = ("symmetric", "affine", "kmeans")
#: Bit-widths the weight quantizer and the artifact encode.
QUANT_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
#: The bit-width that means "keep float32 weights" (or activations).
FLOAT_BITS = 32
#: Values of ``quant/bits`` and ``quant/bits/<layer>``.
SUPPORTED_BITS: tuple[int, ...] = (*QUANT_BITS, FLOAT_BITS)
#: Values of ``quant/activations``.
ACTIVATION_BITS: tuple[int, ...] = (8, FLOAT_BITS)
#: The order in which compression is applied.
STEPS: tuple[str, ...] = ("lowrank", "prune", "sparsity", "quantize")
#: Prefix of the per-layer bit-width knobs of mixed precision.
LAYER_BITS_PREFIX = "quant/bits/"
#: Schemes whose 8-bit weights ONNX Runtime runs on integer kernels.
INT8_SCHEMES: tuple[str, ...] = ("symmetric", "affine")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_choices(choices: tuple) -> Callable[[Any], bool]:
    # `True in (1, 8)` holds in Python; a flag is not a bit-width.
    return lambda v: not isinstance(v, bool) and v in choices


@dataclass(frozen=True)
class Knob:
    """One compression knob: its key, default, valid values and their rule in words.

    Attributes:
        key: the flat param key (``"prune/ratio"``; for mixed precision the prefix
            ``"quant/bits/"``).
        default: the value that means "this step does nothing".
        accepts: whether a single value is valid.
        requirement: the rule, phrased to follow the key ("must lie in [0, 1) ...").
        discrete: whether a search dimension of it must be a finite set (a continuous
            range would propose 4.37 bits).
    """

    key: str
    default: Any
    accepts: Callable[[Any], bool]
    requirement: str
    discrete: bool = False

    def problem(self, value: Any, key: str | None = None) -> str | None:
        """``"`key` must ..., but got value"`` when ``value`` is invalid, else ``None``."""
        if self.accepts(value):
            return None
        return f"`{key or self.key}` {self.requirement}, but got {value!r}"


_BITS_RULE = f"must be one of {list(SUPPORTED_BITS)} (32 keeps float weights)"

#: Every knob the plan reads, in the order its steps apply them.
KNOBS: dict[str, Knob] = {
    knob.key: knob
    for knob in (
        Knob("lowrank/ratio", 1.0, lambda v: _is_number(v) and 0.0 < v <= 1.0,
             "must lie in (0, 1] (1.0 keeps layers unfactorized)"),
        Knob("prune/ratio", 0.0, lambda v: _is_number(v) and 0.0 <= v < 1.0,
             "must lie in [0, 1) (1.0 would remove every channel)"),
        Knob("prune/importance", "l1", _in_choices(IMPORTANCES),
             f"must be one of {list(IMPORTANCES)}", discrete=True),
        Knob("prune/sparsity", 0.0, lambda v: _is_number(v) and 0.0 <= v < 1.0,
             "must lie in [0, 1) (unstructured sparsity)"),
        Knob("quant/bits", FLOAT_BITS, _in_choices(SUPPORTED_BITS), _BITS_RULE, discrete=True),
        Knob(LAYER_BITS_PREFIX, FLOAT_BITS, _in_choices(SUPPORTED_BITS), _BITS_RULE,
             discrete=True),
        Knob("quant/scheme", "symmetric", _in_choices(SCHEMES),
             f"must be one of {list(SCHEMES)}", discrete=True),
        Knob("quant/activations", FLOAT_BITS, _in_choices(ACTIVATION_BITS),
             f"must be one of {list(ACTIVATION_BITS)} (32 keeps float activations)",
             discrete=True),
    )
}


def find_knob(key: str) -> Knob | None:
    """The knob a param key sets (``quant/bits/block0`` → the per-layer bits knob), or None."""
    if key.startswith(LAYER_BITS_PREFIX):
        return KNOBS[LAYER_BITS_PREFIX]
    return KNOBS.get(key)
