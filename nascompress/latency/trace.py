"""The leaf-module calls of one forward pass: what the latency predictors read a model by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def leaf_calls(model, input_shape: Sequence[int]) -> list[tuple[Any, tuple[int, ...] | None,
                                                                  tuple[int, ...] | None]]:
    """``(module, input shape, output shape)`` of every leaf-module call, in running order.

    One forward pass of a zero example of ``input_shape`` in eval mode, recorded by
    forward hooks; shapes leave out the batch dimension (None where a call's first input
    or its output is not a tensor). The model's training mode is restored afterwards.
    """
    import torch

    calls = []

    def record(module, inputs, output):
        first = inputs[0] if inputs else None
        calls.append((module, tuple(first.shape[1:]) if hasattr(first, "shape") else None,
                      tuple(output.shape[1:]) if hasattr(output, "shape") else None))

    hooks = [module.register_forward_hook(record) for module in model.modules()
             if not list(module.children())]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return calls
