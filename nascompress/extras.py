"""Optional extras: one way to say that a feature needs one, before any compute."""

from __future__ import annotations

import importlib


class MissingExtraError(ImportError):
    """An optional feature was asked for, but the extra that provides it is not installed.

    The message is one line that names the feature, the extra and the install command.
    """


def require_extra(extra: str, *modules: str, feature: str) -> None:
    """Import ``modules`` or raise :class:`MissingExtraError` naming ``extra``.

    Args:
        extra: the name of the extra in ``pyproject.toml`` (``"mnist"``).
        modules: the modules the feature imports.
        feature: what was asked for, as the user named it (``"dataset 'mnist5k'"``).
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtraError(
                f"{feature} needs the '{extra}' extra, which is not installed (no module "
                f"{module!r}: {exc}); install it with: pip install 'nascompress[{extra}]'"
            ) from None
