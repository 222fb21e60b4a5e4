"""The :class:`SearchSpace` contract shared by built-in and plug-in spaces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from nascompress.spaces._dimensions import Dimension, dimension_from_dict

if TYPE_CHECKING:  # torch is imported lazily so spaces stay cheap to import
    import torch

Params = dict[str, Any]


class SearchSpace(ABC):
    """A joint space of architectures and compression settings.

    Contract:

    * :meth:`dimensions` returns a mapping of flat keys to :class:`Dimension`; keys are
      namespaced with ``/`` by group: ``arch/...`` (architecture), ``prune/...``,
      ``quant/...``, ``distill/...``, ``lowrank/...``. The compression groups are read
      by the evaluator, the ``arch`` group by :meth:`build_model`.
    * :meth:`check` returns ``None`` for a valid combination, otherwise a short reason.
      Strategies may propose invalid combinations; the runner rejects them with
      :meth:`check` before any compute is spent, so :meth:`build_model` may assume
      valid params.
    * :meth:`build_model` returns a freshly initialised ``torch.nn.Module`` mapping a
      batch of shape ``(N, *input_shape)`` to logits ``(N, num_classes)``. It must
      import torch lazily (inside the method).
    * Weight sharing (optional): a space that supports it names, in
      :meth:`elastic_dimensions`, the ``arch/`` and ``quant/`` keys its supernet covers
      (every subnet of those keys shares the supernet's weights) and builds the supernet
      in :meth:`build_supernet`: a ``torch.nn.Module`` with ``set_active(params)``
      (choose the subnet ``forward`` runs), ``largest()`` / ``smallest()`` (the extreme
      subnets, as params of those keys), ``extract(params)`` (a real, smaller model with
      copied weights whose structure is exactly ``build_model(params)``'s, equal in eval
      mode to the supernet running that subnet) and ``sort_channels_()`` (order channels
      by importance without changing the largest network). The other keys (pruning,
      sparsity, low-rank, activation quantization, distillation) are applied to the
      extracted subnet after the fact. The default supports none: it returns no elastic
      dimensions and :meth:`build_supernet` raises ``NotImplementedError``. A space whose
      supernet covers only some settings of its other keys says why the current ones are
      not covered in :meth:`weight_sharing_problem` (checked before any compute).
    * Constructors store their options; ``dimensions=`` overrides the default range
      of any dimension (unknown keys are an error). Subclasses validate overrides in
      :meth:`validate_dimension`.

    Args:
        dimensions: optional overrides, each a :class:`Dimension` or its dict form.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, dimensions: Mapping[str, Dimension | Mapping[str, Any]] | None = None):
        defaults = dict(self.default_dimensions())
        for key, dim in (dimensions or {}).items():
            if key not in defaults:
                raise ValueError(
                    f"space.dimensions.{key}: unknown dimension for space {self.name!r}; "
                    f"known: {', '.join(sorted(defaults))}"
                )
            try:
                parsed = dim if isinstance(dim, Dimension) else dimension_from_dict(dim)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"space.dimensions.{key}: {exc}") from None
            try:
                problem = self.validate_dimension(key, parsed)
            except (TypeError, ValueError) as exc:  # e.g. a string where numbers belong
                raise ValueError(
                    f"space.dimensions.{key}: values of the wrong type ({exc}), but got "
                    f"{parsed!r}"
                ) from None
            if problem:
                raise ValueError(f"space.dimensions.{key}: {problem}, but got {parsed!r}")
            defaults[key] = parsed
        self._dimensions = defaults

    @abstractmethod
    def default_dimensions(self) -> Mapping[str, Dimension]:
        """The space's own dimensions before user overrides."""

    def validate_dimension(self, key: str, dimension: Dimension) -> str | None:
        """Why an override of ``key`` is not acceptable (or ``None``)."""
        return None

    def dimensions(self) -> Mapping[str, Dimension]:
        """The dimensions of this space, overrides applied."""
        return dict(self._dimensions)

    def check(self, params: Mapping[str, Any]) -> str | None:
        """``None`` if ``params`` is a valid point of the space, else the reason.

        The base implementation checks keys and value ranges; subclasses add joint
        constraints and should call ``super().check(params)`` first.
        """
        dims = self._dimensions
        missing = sorted(set(dims) - set(params))
        if missing:
            return f"missing parameters {missing}"
        extra = sorted(set(params) - set(dims))
        if extra:
            return f"unknown parameters {extra}"
        for key, dim in dims.items():
            if not dim.contains(params[key]):
                return f"{key}={params[key]!r} is outside {dim!r}"
        return None

    @abstractmethod
    def build_model(
        self, params: Mapping[str, Any], *, input_shape: tuple[int, ...], num_classes: int
    ) -> torch.nn.Module:
        """A fresh model for the ``arch/*`` part of ``params``."""

    def elastic_dimensions(self) -> tuple[str, ...]:
        """The keys a weight-sharing supernet covers; empty when it has none (default)."""
        return ()

    def weight_sharing_problem(self) -> str | None:
        """Why this space cannot be searched with weight sharing as configured (a one-line
        message naming the setting, its value and the fix), or ``None``; the default
        has no such reason. For a space whose settings turn weight sharing on or off
        (``user-model``'s ``elastic``), with it off: how to turn it on."""
        return None

    def build_supernet(self, *, input_shape: tuple[int, ...], num_classes: int
                       ) -> torch.nn.Module:
        """The untrained supernet of this space (see the class docstring).

        Raises:
            NotImplementedError: the space does not support weight sharing.
        """
        raise NotImplementedError(f"space {self.name!r} does not support weight sharing yet")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description recorded in ``run.json``."""
        return {
            "name": self.name,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "dimensions": {k: d.to_dict() for k, d in self._dimensions.items()},
        }
