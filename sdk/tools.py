"""``@tool``: a typed Python function (sync or async) as an OpenAI tool.

::

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
        \"\"\"Current weather for a city.

        Args:
            city: The city's name, e.g. "Paris".
            unit: Celsius or Fahrenheit.
        \"\"\"

    @tool(requires_confirmation=True)
    async def refund(order_id: int, amount: float) -> str: ...

The parameters' JSON Schema comes from a pydantic model built from the signature
(type hints, defaults, ``Annotated[..., Field(...)]``, nested pydantic models,
``Optional``, ``Enum``/``Literal``), with descriptions from the docstring's
``Args:`` section (or ``:param x:`` lines). The same model validates the model's
arguments before the function runs. The decorated object is a :class:`Tool`;
calling it calls the function unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, overload

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from sdk.errors import ToolDefinitionError

__all__ = [
    "Tool",
    "ToolContext",
    "current_tool_call",
    "format_result",
    "parse_docstring",
    "tool",
    "tool_context",
]

SECTION_HEADER = re.compile(r"^(\w[\w ]*):\s*$")
ARG_SECTIONS = ("args", "arguments", "parameters", "params", "keyword args")
ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
LITERAL_KEYWORDS = ("default", "enum", "const", "examples")  # values, not schemas
UNSUPPORTED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD,
                     inspect.Parameter.POSITIONAL_ONLY)


@dataclass(frozen=True)
class ToolContext:
    """The call a tool is running for, from :func:`current_tool_call`.

    ``idempotency_key`` is the same every time the same call is run again (a
    redelivered message with the same ``run_id``, a resumed confirmation): use it
    to make a side effect happen once (e.g. ``INSERT ... ON CONFLICT DO NOTHING``).
    """

    call_id: str
    tool_name: str
    run_id: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.call_id}" if self.run_id else self.call_id


_CURRENT_CALL: contextvars.ContextVar[ToolContext] = contextvars.ContextVar("sdk_tool_call")


def current_tool_call() -> ToolContext:
    """Inside a tool run by the agent: which call this is. Raises :class:`LookupError`
    when called elsewhere (e.g. when the function is called directly)."""
    try:
        return _CURRENT_CALL.get()
    except LookupError:
        raise LookupError("current_tool_call() is only set while the agent runs a tool") \
            from None


@contextlib.contextmanager
def tool_context(context: ToolContext) -> Iterator[ToolContext]:
    """Set :func:`current_tool_call` for the code in the ``with`` block."""
    token = _CURRENT_CALL.set(context)
    try:
        yield context
    finally:
        _CURRENT_CALL.reset(token)


@dataclass(frozen=True)
class Tool:
    """A function the model may call. ``parameters`` is its JSON Schema,
    ``args_model`` the pydantic model that validates arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    requires_confirmation: bool = False

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def schema(self) -> dict[str, Any]:
        """The entry for the ``tools`` list of a chat completion request."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the function; raises :class:`pydantic.ValidationError`."""
        model = self.args_model.model_validate(dict(arguments))
        return {name: getattr(model, name) for name in type(model).model_fields}

    def run(self, kwargs: Mapping[str, Any]) -> Any:
        """Call with validated arguments (an async function is run to completion)."""
        if self.is_async:
            return asyncio.run(self.fn(**kwargs))
        return self.fn(**kwargs)

    async def arun(self, kwargs: Mapping[str, Any]) -> Any:
        """Call with validated arguments; a sync function runs in a worker thread."""
        if self.is_async:
            return await self.fn(**kwargs)
        return await asyncio.to_thread(self.fn, **kwargs)

    def needs_confirmation(self, arguments: Mapping[str, Any]) -> bool:
        """Whether this call waits for a human (``requires_confirmation``; a tool type
        may decide by the arguments, e.g. :class:`sdk.mcp.MCPTool`)."""
        return self.requires_confirmation

    def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Validate the model's arguments, then call."""
        return self.run(self.validate(arguments))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(*, name: str | None = None, description: str | None = None,
         requires_confirmation: bool = False) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, requires_confirmation: bool = False
         ) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a :class:`Tool` (``@tool`` or ``@tool(...)``)."""
    def build(func: Callable[..., Any]) -> Tool:
        return make_tool(func, name=name, description=description,
                         requires_confirmation=requires_confirmation)
    return build(fn) if fn is not None else build


def make_tool(fn: Callable[..., Any], *, name: str | None = None,
              description: str | None = None, requires_confirmation: bool = False) -> Tool:
    tool_name = name or fn.__name__
    summary, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
    args_model = build_args_model(fn, tool_name, arg_docs)
    return Tool(name=tool_name, description=description or summary or tool_name,
                parameters=clean_schema(args_model.model_json_schema()), fn=fn,
                args_model=args_model, requires_confirmation=requires_confirmation)


# ----------------------------------------------------------------- docstrings


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {argument: description}) from a Google- or Sphinx-style docstring."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section, current = "", ""
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        header = SECTION_HEADER.match(stripped)
        sphinx = SPHINX_PARAM.match(stripped)
        if header and not line.startswith((" ", "\t")):
            section, current = header.group(1).lower(), ""
        elif sphinx:
            section, current = "sphinx", sphinx.group(1)
            args[current] = sphinx.group(2).strip()
        elif section in ARG_SECTIONS and (found := ARG_LINE.match(stripped)) and \
                _indent(line) <= 4:
            current = found.group(1)
            args[current] = found.group(2).strip()
        elif section in (*ARG_SECTIONS, "sphinx") and current and stripped:
            args[current] = f"{args[current]} {stripped}".strip()
        elif not section:
            summary.append(line)
    return "\n".join(summary).strip(), args


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# ----------------------------------------------------------------- arguments


def build_args_model(fn: Callable[..., Any], tool_name: str,
                     descriptions: Mapping[str, str]) -> type[BaseModel]:
    """A pydantic model of the function's parameters (extra arguments forbidden)."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ToolDefinitionError(f"{tool_name}: cannot resolve type hints: {exc}",
                                  tool_name=tool_name) from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in UNSUPPORTED_KINDS:
            raise ToolDefinitionError(
                f"{tool_name}: parameter {param.name!r} must be a plain or keyword argument",
                tool_name=tool_name)
        if param.name not in hints:
            raise ToolDefinitionError(f"{tool_name}: parameter {param.name!r} needs a type hint",
                                      tool_name=tool_name)
        fields[param.name] = (hints[param.name], _field(param, descriptions.get(param.name)))
    model_name = "".join(part.title() for part in tool_name.split("_")) + "Args"
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)


def _field(param: inspect.Parameter, description: str | None) -> Any:
    if isinstance(param.default, FieldInfo):
        return param.default
    default = ... if param.default is inspect.Parameter.empty else param.default
    return Field(default, description=description) if description else Field(default)


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``\\ s (kept only for recursive models) and drop generated titles."""
    defs: dict[str, Any] = schema.get("$defs", {})
    recursive: set[str] = set()

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = ref.removeprefix("#/$defs/")
            if target in seen:
                recursive.add(target)
                return node
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**walk(defs[target], seen | {target}), **walk(rest, seen)}
        return {key: _walk_value(key, value, lambda v: walk(v, seen))
                for key, value in node.items()
                if key != "$defs" and not (key == "title" and isinstance(value, str))}

    cleaned: dict[str, Any] = walk(schema, frozenset())
    if recursive:
        cleaned["$defs"] = {name: walk(defs[name], frozenset({name})) for name in defs}
    return cleaned


def _walk_value(key: str, value: Any, walk: Callable[[Any], Any]) -> Any:
    if key in LITERAL_KEYWORDS:
        return value
    if key == "properties":
        return {name: walk(schema) for name, schema in value.items()}
    return walk(value)


def format_result(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return pydantic_core.to_json(value, fallback=str).decode()
