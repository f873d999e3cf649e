"""One line for a pydantic ``ValidationError`` of settings read from the environment,
naming the variable at fault: ``POOL_CONFIRM_TTL: expected an integer, got 'abc'``.

Shared by ``proxy.settings`` and ``worker.settings`` (both built on pydantic-settings);
the SDK sits below both packages, so this is where they meet.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

__all__ = ["describe_settings_error"]


def describe_settings_error(exc: ValidationError, model: type[BaseModel]) -> tuple[str, str]:
    """``(variable, problem)``: the first variable at fault, and one line naming every
    problem (``"expected an integer, got 'abc'; POOL_OTHER: must be >= 1, got '0'"``)."""
    problems = []
    for error in exc.errors(include_url=False):
        kind, context = error["type"], error.get("ctx") or {}
        got = f", got {error['input']!r}"
        if kind == "value_error":  # a validator of ours: its message says what is wrong
            message = str(context.get("error", error["msg"]))
        elif kind in ("int_parsing", "int_from_float"):
            message = "expected an integer" + got
        elif kind == "float_parsing":
            message = "expected a number" + got
        elif kind == "greater_than_equal":
            message = f"must be >= {context['ge']}" + got
        else:
            message = str(error["msg"]) + got
        problems.append((_variable(error["loc"], model), message))
    (name, first), *others = problems
    return name, first + "".join(f"; {other}: {message}" for other, message in others)


def _variable(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    """The environment variable an error location points at (a field's alias, or as is)."""
    name = str(loc[0]) if loc else "environment"
    field = model.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    return str(alias) if isinstance(alias, str) else name
