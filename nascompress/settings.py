"""Settings objects: each setting declared once, every violation said the same way.

Every group of settings (how latency is measured, how trials share a node, the
early-stopping rule, the experiment config) is a :class:`Settings` model: its fields
carry the defaults and the constraints (pydantic, strict, unknown keys refused), and
the constructor only stores validated values. Whatever builds one, a YAML config or a
direct call in a test, a bench script or a plug-in, gets the same one-line message::

    latency.threads must be >= 1, but got 0

(:func:`violation`: the dotted field, the constraint, the value). A direct call raises
:class:`SettingError` (a ``ValueError``), or :class:`UnknownSettingError` (a
``TypeError``, as for any unexpected keyword argument); :func:`describe_errors` gives
the same line for a pydantic ``ValidationError`` (how the config loader reports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

#: ``ConstraintError(value=...)`` left out: show the field's input.
_INPUT = object()


def violation(field: str, constraint: str, value: Any) -> str:
    """The one message format: ``<field> must be <constraint>, but got <value>``."""
    return f"{field} must be {constraint}, but got {value!r}"


class ConstraintError(ValueError):
    """Raised by a validator to say which constraint failed; the message is built later.

    Args:
        constraint: what the value must be (``"a non-empty list"``), read after
            "must be".
        field: the field, when a model-level check names one (relative to the model).
        value: the value to show, when not the field's input.
    """

    def __init__(self, constraint: str, *, field: str | None = None,
                 value: Any = _INPUT) -> None:
        super().__init__(constraint)
        self.constraint = constraint
        self.field = field
        self.value = value


class SettingError(ValueError):
    """A settings object refused a value; the message is one line naming the field."""


class UnknownSettingError(TypeError):
    """An unknown (or missing) keyword argument, a ``TypeError`` as for any call."""


_CONSTRAINTS = {
    "greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<=",
}
_KINDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}


def describe(error: Mapping[str, Any], prefix: str = "") -> str:
    """One pydantic error dict (from ``ValidationError.errors()``) as one line.

    ``prefix`` is the dotted path of the model the error's ``loc`` is relative to.
    Unknown and missing fields have no constraint to state and keep their own wording.
    """
    parts = [prefix] if prefix else []
    parts += [str(part) for part in error["loc"]]
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    inner = ctx.get("error")
    if isinstance(inner, ConstraintError) and inner.field:
        parts.append(inner.field)
    field = ".".join(parts) or "(top level)"
    if kind == "extra_forbidden":
        return f"{field}: unknown field; check the spelling (value: {value!r})"
    if kind == "missing":
        return f"{field}: required field is missing"
    if isinstance(inner, ConstraintError):
        shown = value if inner.value is _INPUT else inner.value
        return violation(field, inner.constraint, shown)
    if kind in _CONSTRAINTS:
        bound = next(iter(ctx.values()))  # as declared: ">= 0", not ">= 0.0"
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return violation(field, f"{_CONSTRAINTS[kind]} {bound}", value)
    if kind in _KINDS:
        return violation(field, _KINDS[kind], value)
    if kind == "literal_error":
        return violation(field, ctx["expected"], value)  # "'ray' or 'local'"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return violation(field, "non-empty", value)
    message = str(error["msg"]).removeprefix("Value error, ")
    constraint = message.removeprefix("Input should be ").removeprefix("must be ")
    if constraint == message:
        constraint = f"valid ({message})"
    return violation(field, constraint, value)


def describe_errors(exc: ValidationError, prefix: str = "") -> tuple[str, int]:
    """The first error of ``exc`` as one line, and how many errors there are in all."""
    errors = exc.errors()
    return describe(errors[0], prefix), len(errors)


class _SettingsMeta(type(BaseModel)):
    """Turns pydantic's multi-line ``ValidationError`` of a direct call into one line.

    Only a call of the class (``LatencySetup(threads=0)``) passes here; validation of a
    settings model nested in another (``latency`` in the experiment config) does not, so
    its errors keep their place in the outer model's ``ValidationError``.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            errors = exc.errors()
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            name, where = cls.__name__, first["loc"][0] if first["loc"] else None
            if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
                raise UnknownSettingError(
                    f"{name}() got an unexpected keyword argument {where!r}; its fields are "
                    f"{', '.join(cls.model_fields)}{more}") from None
            if first["type"] == "missing" and len(first["loc"]) == 1:
                raise UnknownSettingError(
                    f"{name}() missing required keyword argument {where!r}{more}") from None
            raise SettingError(describe(first, cls.section) + more) from None


class Settings(BaseModel, metaclass=_SettingsMeta):
    """Base of every settings model: strict, unknown keys refused, one-line errors.

    Subclasses declare each field once, with its default and constraint; a check a
    field constraint cannot express raises :class:`ConstraintError`. ``section`` is the
    dotted path of the fields in the experiment config (``"latency"``), for messages.
    """

    # strict: no silent coercion of user input ("4" or true for a count, "1" for a
    # number of CPUs); YAML already gives numbers and booleans their own types.
    model_config = ConfigDict(extra="forbid", strict=True)

    section: ClassVar[str] = ""

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated like a new object."""
        return type(self)(**{**dict(self), **changes})
