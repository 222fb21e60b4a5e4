"""One registry per plug-in kind (spaces, strategies, evaluators, datasets).

Names resolve in three ways, tried in this order:

1. built-ins registered with the :meth:`Registry.register` decorator;
2. installed packages advertising an entry point in the group ``nascompress.<kind>``
   (loaded lazily, only when a name is not a built-in);
3. a ``"package.module:attribute"`` import path, for one-off classes.

Import paths and entry points run code: configs must come from trusted sources.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """A name could not be resolved; the message lists what exists."""


class Registry(Generic[T]):
    """Maps names to factories (usually classes) of one plug-in kind.

    Args:
        kind: plural noun used in messages and in the entry-point group name,
            e.g. ``"strategies"`` gives the group ``nascompress.strategies``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entry_point_group = f"nascompress.{kind}"
        self._builtins: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a built-in under ``name``; duplicate names raise."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._builtins:
                raise RegistryError(
                    f"{self.kind}: the name {name!r} is already registered "
                    f"(by {self._builtins[name]!r}); choose another name"
                )
            self._builtins[name] = factory
            return factory

        return decorator

    def _singular(self) -> str:
        if self.kind.endswith("ies"):
            return self.kind[:-3] + "y"
        return self.kind[:-1] if self.kind.endswith("s") else self.kind

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        return {ep.name: ep for ep in metadata.entry_points(group=self.entry_point_group)}

    def available(self) -> dict[str, str]:
        """All resolvable names mapped to where each comes from."""
        found = {name: "built-in" for name in self._builtins}
        for name, ep in self._entry_points().items():
            found.setdefault(name, f"entry point {ep.value}")
        return found

    def resolve(self, name: str, *, field: str | None = None) -> Callable[..., T]:
        """Return the factory for ``name``.

        Args:
            name: a registered name, an entry-point name or ``"module:attr"``.
            field: config field to name in error messages (defaults to the kind).

        Raises:
            RegistryError: the name is unknown or the import path does not import.
        """
        where = field or self.kind
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{where}: expected a non-empty name, but got {name!r}")
        if name in self._builtins:
            return self._builtins[name]
        if ":" in name:
            return import_object(name, where)
        eps = self._entry_points()
        if name in eps:
            try:
                return eps[name].load()
            except Exception as exc:  # a broken plug-in must not look like a typo
                raise RegistryError(
                    f"{where}: the plug-in {name!r} ({eps[name].value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        known = sorted(self.available())
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"{where}: unknown {self._singular()} {name!r}.{hint} "
            f"Available: {', '.join(known) or '(none)'}; "
            f"or give an import path 'package.module:Name'."
        )


def import_object(path: str, where: str) -> Any:
    """Import ``"package.module:attr"``; errors name ``where`` (the config field)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"{where}: import path {path!r} must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RegistryError(
            f"{where}: cannot import module {module_name!r} from {path!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise RegistryError(f"{where}: module {module_name!r} has no attribute {attr!r}") from exc
    return obj
