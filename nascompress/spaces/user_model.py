"""The built-in ``user-model`` space: compress a model you already have.

By default the architecture is fixed (your model, your checkpoint); the search runs over
the compression knobs around it. Pair it with the ``compress-train`` evaluator and
``evaluator.options.teacher`` set to the same model and checkpoint, so the original
model is the distillation teacher, and ``epochs`` small (the weights are pre-trained).

With ``elastic: true`` the model's own width and depth become searchable too, and the
``supernet`` evaluator can search them by weight sharing, the supernet bootstrapped from
your pre-trained model (:mod:`nascompress.supernet.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nascompress.spaces._base import SearchSpace
from nascompress.spaces._dimensions import Categorical, Dimension, Int
from nascompress.spaces._registry import register_space
from nascompress.spaces.image_cnn import compression_dimensions, dimension_problem

WIDTH_KEY = "arch/width_mult"  # nascompress.supernet.bootstrap's; torch-free here
DEFAULT_WIDTHS = (0.5, 0.75, 1.0)


@register_space("user-model")
class UserModelSpace(SearchSpace):
    """Pruning, quantization, distillation and low-rank search around one user model,
    and, with ``elastic: true``, its width and depth.

    Dimensions: the compression knobs of ``image-cnn`` (``prune/*``, ``quant/*``,
    ``lowrank/ratio``, ``distill/*``), with the same default ranges, meaning and
    validation. Pruning follows the model's own structure (torch-pruning's dependency
    graph keeps residual-coupled channels together and shrinks a depthwise convolution
    with the channels that feed it); low-rank factorization leaves depthwise and 1×1
    convolutions alone.

    Elastic (``elastic: true``; needs ``input_shape``): the model is traced once, at
    construction, and two kinds of ``arch/`` keys are added (see
    :mod:`nascompress.supernet.bootstrap` for the rules):

    * ``arch/width_mult`` (default choices 0.5, 0.75, 1.0; any set of shares in
      ``(0, 1]``): every channel group torch-pruning finds keeps that share of its
      channels (coupled channels together; the output layer is never narrowed);
    * ``arch/<blocks>/depth`` per run of skippable blocks (shape-keeping children of an
      ``nn.Sequential``, e.g. ``arch/blocks.2/depth`` or ``arch/layer1.1-2/depth``): how
      many of the run's leading blocks are kept, ``0`` to the run's length.

    ``build_model(params)`` then returns the subnet those keys name: the pre-trained
    model with its channel groups sorted by importance and the trailing channels and
    skipped blocks removed (the model itself when the keys name all of it), which is
    also the structure the supernet extracts, so artifacts reload into it. Every
    ``arch/`` key and ``quant/bits`` / ``quant/scheme`` are elastic for the ``supernet``
    evaluator (:meth:`build_supernet`). Without ``elastic`` nothing of this exists and
    the space is exactly the compression-only space it always was. What could not be
    made elastic (and why) is listed in ``to_dict()["left_fixed"]``.

    Args:
        model: ``"package.module:factory"``; ``factory(**model_kwargs)`` returns the
            ``nn.Module`` (it must map ``(N, *input_shape)`` to ``(N, num_classes)``).
        model_kwargs: keyword arguments for the factory.
        checkpoint: a ``state_dict`` file loaded with ``torch.load(weights_only=True)``
            into every built model; without it the model starts from the factory's
            initialisation.
        dimensions: overrides of the default ranges.
        elastic: add the elastic width and depth keys (weight sharing).
        input_shape: one example's shape (the dataset's, e.g. ``[1, 28, 28]``); needed
            with ``elastic`` to trace the model.

    Raises:
        ValueError: a bad option, or ``elastic: true`` on a model with nothing elastic.
    """

    name = "user-model"

    def __init__(
        self,
        *,
        model: str,
        model_kwargs: Mapping[str, Any] | None = None,
        checkpoint: str | None = None,
        dimensions: Mapping[str, Any] | None = None,
        elastic: bool = False,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(model, str) or ":" not in model:
            raise ValueError(
                f"space.options.model must be an import path 'package.module:factory', "
                f"but got {model!r}"
            )
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise ValueError(f"space.options.checkpoint: file {checkpoint!r} does not exist")
        if not isinstance(elastic, bool):
            raise ValueError(f"space.options.elastic must be true or false, but got {elastic!r}")
        if input_shape is not None and (
                isinstance(input_shape, str | bytes) or not isinstance(input_shape, Sequence)
                or not input_shape or not all(isinstance(v, int) and not isinstance(v, bool)
                                              and v >= 1 for v in input_shape)):
            raise ValueError(f"space.options.input_shape must be a list of integers >= 1 "
                             f"(one example's shape, e.g. [1, 28, 28]), but got {input_shape!r}")
        if elastic and input_shape is None:
            raise ValueError("space.options.input_shape: elastic: true traces the model on an "
                             "example, so it needs one example's shape (the dataset's, e.g. "
                             "[1, 28, 28]), but got None")
        self.model = model
        self.model_kwargs = dict(model_kwargs or {})
        self.checkpoint = checkpoint
        self.elastic = elastic
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._structure = None
        if elastic:
            from nascompress.supernet.bootstrap import find_structure

            try:
                structure = find_structure(self.load_model(), self.input_shape)
            except RuntimeError as exc:  # torch's own: the model cannot run that shape
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ValueError(
                    f"space.options.input_shape: model {model!r} fails on a batch of shape "
                    f"{[2, *self.input_shape]} ({type(exc).__name__}: {first}); set it to "
                    "one example's shape, the dataset's") from None
            if not structure.groups and not structure.runs:
                reasons = "; ".join(structure.left_fixed) or "no Conv/Linear channels outside " \
                    "the output layer and no shape-keeping block in an nn.Sequential"
                raise ValueError(
                    f"space.options.elastic: model {model!r} has no channel group that can "
                    f"shrink and no block that can be skipped ({reasons}); use elastic: "
                    "false to search its compression knobs only")
            self._structure = structure
        super().__init__(dimensions=dimensions)

    @property
    def elastic_structure(self):
        """What :func:`~nascompress.supernet.bootstrap.find_structure` found (``None``
        unless ``elastic``)."""
        return self._structure

    def default_dimensions(self) -> dict[str, Dimension]:
        dims: dict[str, Dimension] = {}
        if self._structure is not None:
            if self._structure.groups:
                dims[WIDTH_KEY] = Categorical(list(DEFAULT_WIDTHS))
            for run in self._structure.runs:
                dims[run.key] = Int(0, len(run.indices))
        return {**dims, **compression_dimensions()}

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        if key == WIDTH_KEY:
            values = dimension.grid() or []
            if not values or any(isinstance(v, bool) or not isinstance(v, int | float)
                                 or not 0 < v <= 1 for v in values):
                return ("width shares must be a finite set of numbers in (0, 1] (the share "
                        "of every channel group kept; 1.0 is the pre-trained width), e.g. "
                        "[0.5, 0.75, 1.0]")
            return None
        if key.startswith("arch/") and key.endswith("/depth") and self._structure is not None:
            blocks = len(self._structure.run(key).indices)
            values = dimension.grid() or []
            if not values or any(isinstance(v, bool) or not isinstance(v, int)
                                 or not 0 <= v <= blocks for v in values):
                return (f"must be a finite set of block counts between 0 and {blocks} "
                        f"(how many of the run's {blocks} leading blocks are kept)")
            return None
        return dimension_problem(key, dimension)  # the same knobs as image-cnn

    def teacher(self) -> dict[str, Any]:
        """The evaluator's ``teacher`` option that makes the original model the teacher."""
        spec: dict[str, Any] = {"model": self.model, "model_kwargs": self.model_kwargs}
        if self.checkpoint:
            spec["checkpoint"] = self.checkpoint
        return spec

    def load_model(self):
        """The user's model, from its factory, with the checkpoint loaded when given."""
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

    def build_model(
        self, params: Mapping[str, Any], *, input_shape: tuple[int, ...], num_classes: int
    ):
        """The user's model; with ``elastic``, the subnet the ``arch/`` keys name (see
        the class docstring)."""
        model = self.load_model()
        if self._structure is None:
            return model
        from nascompress.supernet.bootstrap import bootstrap_subnet, is_full

        if is_full(self._structure, params):
            return model
        if tuple(input_shape) != self.input_shape:
            raise ValueError(
                f"space.options.input_shape: {list(self.input_shape)} is not the dataset's "
                f"example shape {list(input_shape)}; set it to {list(input_shape)}")
        return bootstrap_subnet(model, self._structure, params, self.input_shape)

    def elastic_dimensions(self) -> tuple[str, ...]:
        if self._structure is None:
            return ()
        dims = self.dimensions()
        return tuple(key for key in dims if key.startswith("arch/")
                     or key in ("quant/bits", "quant/scheme"))

    def weight_sharing_problem(self) -> str | None:
        if self._structure is not None:
            return None
        return ("set space.options.elastic: true and space.options.input_shape to the "
                "dataset's example shape")

    def build_supernet(self, *, input_shape: tuple[int, ...], num_classes: int):
        """The supernet bootstrapped from the user's model
        (:class:`~nascompress.supernet.bootstrap.ElasticUserModel`)."""
        if self._structure is None:
            raise NotImplementedError(f"space 'user-model' supports weight sharing only when "
                                      f"elastic; {self.weight_sharing_problem()}")
        from nascompress.supernet.bootstrap import ElasticUserModel

        return ElasticUserModel(self, input_shape=input_shape, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        data = {**super().to_dict(), "model": self.model, "model_kwargs": self.model_kwargs,
                "checkpoint": self.checkpoint}
        if self.elastic:  # compression-only spaces are recorded as they always were
            data.update(elastic=True, input_shape=list(self.input_shape),
                        left_fixed=list(self._structure.left_fixed))
        return data
