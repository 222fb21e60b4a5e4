"""The built-in ``user-model`` space: compress a model you already have.

The architecture is fixed (your model, your checkpoint); the search runs over the
compression knobs around it. Pair it with the ``compress-train`` evaluator and
``evaluator.options.teacher`` set to the same model and checkpoint, so the original
model is the distillation teacher, and ``epochs`` small (the weights are pre-trained).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nascompress.spaces._base import SearchSpace
from nascompress.spaces._dimensions import Dimension
from nascompress.spaces._registry import register_space
from nascompress.spaces.image_cnn import compression_dimensions, dimension_problem


@register_space("user-model")
class UserModelSpace(SearchSpace):
    """Pruning, quantization, distillation and low-rank search around one user model.

    Dimensions: the compression knobs of ``image-cnn`` (``prune/*``, ``quant/*``,
    ``lowrank/ratio``, ``distill/*``), with the same default ranges, meaning and
    validation. Pruning follows the model's own structure (torch-pruning's dependency
    graph keeps residual-coupled channels together and shrinks a depthwise convolution
    with the channels that feed it); low-rank factorization leaves depthwise and 1×1
    convolutions alone.

    Args:
        model: ``"package.module:factory"``; ``factory(**model_kwargs)`` returns the
            ``nn.Module`` (it must map ``(N, *input_shape)`` to ``(N, num_classes)``).
        model_kwargs: keyword arguments for the factory.
        checkpoint: a ``state_dict`` file loaded with ``torch.load(weights_only=True)``
            into every built model; without it the model starts from the factory's
            initialisation.
        dimensions: overrides of the default ranges.
    """

    name = "user-model"

    def __init__(
        self,
        *,
        model: str,
        model_kwargs: Mapping[str, Any] | None = None,
        checkpoint: str | None = None,
        dimensions: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, str) or ":" not in model:
            raise ValueError(
                f"space.options.model must be an import path 'package.module:factory', "
                f"but got {model!r}"
            )
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise ValueError(f"space.options.checkpoint: file {checkpoint!r} does not exist")
        self.model = model
        self.model_kwargs = dict(model_kwargs or {})
        self.checkpoint = checkpoint
        super().__init__(dimensions=dimensions)

    def default_dimensions(self) -> dict[str, Dimension]:
        return compression_dimensions()

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        return dimension_problem(key, dimension)  # the same knobs as image-cnn

    def teacher(self) -> dict[str, Any]:
        """The evaluator's ``teacher`` option that makes the original model the teacher."""
        spec: dict[str, Any] = {"model": self.model, "model_kwargs": self.model_kwargs}
        if self.checkpoint:
            spec["checkpoint"] = self.checkpoint
        return spec

    def build_model(
        self, params: Mapping[str, Any], *, input_shape: tuple[int, ...], num_classes: int
    ):
        import torch

        from nascompress.registry import import_object

        factory = import_object(self.model, "space.options.model")
        model = factory(**self.model_kwargs)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"space.options.model: {self.model!r} returned {type(model).__name__}, "
                "not a torch.nn.Module"
            )
        if self.checkpoint:
            model.load_state_dict(torch.load(self.checkpoint, weights_only=True))
        return model

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "model": self.model, "model_kwargs": self.model_kwargs,
                "checkpoint": self.checkpoint}
