"""An MCP server's tools as ordinary agent tools (:class:`~sdk.tools.Tool`).

An :class:`MCPTool` is a :class:`~sdk.tools.Tool`: name, description, JSON Schema,
``requires_confirmation``; the agent's gate, :class:`~sdk.agent.PendingConfirmation`,
resume, the tool result cache and the worker's audit treat it like any ``@tool``.
What differs:

* arguments are checked against the server's JSON Schema (``jsonschema``) before a
  call is sent, or a human's edit accepted; a failure is a :class:`pydantic.ValidationError`
  like a ``@tool``'s;
* :meth:`MCPTool.needs_confirmation` can decide per call (a predicate on the arguments);
* the call carries the agent's idempotency key (:func:`sdk.tools.current_tool_call`) in
  the request's ``_meta`` (:data:`~sdk.mcp.session.IDEMPOTENCY_META_KEY`): a server that
  honours it runs a re-sent call once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError, ValidationError

from sdk.tools import Tool, current_tool_call

if TYPE_CHECKING:
    import mcp_types

    from sdk.mcp.server import MCPServer

__all__ = ["MAX_DESCRIPTION_CHARS", "MCPTool", "make_tools", "model_tool_name"]

MAX_DESCRIPTION_CHARS = 1024  # a server's tool description is untrusted prompt text
MAX_NAME_CHARS = 64  # what the OpenAI tools API accepts
NOT_A_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")


class MCPArguments(BaseModel):
    """Placeholder ``args_model``: MCP arguments are checked with the server's JSON Schema."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class MCPTool(Tool):
    """A tool of an MCP server (see the module docstring). ``remote_name`` is its name
    on the server; ``name`` is what the model sees (the server's ``prefix`` + name)."""

    server: MCPServer | None = field(default=None, repr=False, compare=False)
    remote_name: str = ""

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        from jsonschema.validators import validator_for  # a dependency of `mcp`

        try:
            validator = validator_for(self.parameters)(self.parameters)
            problems = sorted(validator.iter_errors(dict(arguments)),
                              key=lambda e: [str(part) for part in e.path])
        except Exception as exc:  # a server's schema jsonschema cannot use (bad, $ref away)
            raise _invalid(self.name, (), arguments,
                           f"the server's input schema for this tool cannot be used "
                           f"({type(exc).__name__}); the call is not sent") from exc
        if problems:
            raise ValidationError.from_exception_data(self.name, [
                _line(tuple(problem.path), problem.instance, problem.message)
                for problem in problems])
        return dict(arguments)

    def needs_confirmation(self, arguments: Mapping[str, Any]) -> bool:
        policy = self.server.requires_confirmation if self.server is not None else False
        if isinstance(policy, bool):
            return policy
        if callable(policy):
            try:
                return bool(policy(self.remote_name, arguments))
            except Exception:  # a broken predicate asks (fails closed)
                return True
        return self.remote_name in policy


def _line(loc: tuple[Any, ...], value: Any, reason: str) -> Any:
    return {"type": PydanticCustomError("mcp_schema", "{reason}", {"reason": reason[:300]}),
            "loc": loc, "input": value}


def _invalid(title: str, loc: tuple[Any, ...], value: Any, reason: str) -> ValidationError:
    return ValidationError.from_exception_data(title, [_line(loc, value, reason)])


def model_tool_name(prefix: str, remote: str) -> str:
    """The name the model sees: prefix + the server's name, in the OpenAI alphabet."""
    return NOT_A_NAME_CHAR.sub("_", f"{prefix}{remote}")[:MAX_NAME_CHARS]


def make_tools(server: MCPServer, listed: Sequence[mcp_types.Tool]) -> list[MCPTool]:
    """The allowed listed tools of ``server``, as agent tools."""
    allowed = server.allowed_tools
    missing = sorted((allowed or set()) - {t.name for t in listed})
    if missing:
        raise ValueError(f"MCP server {server.name!r} has no tool named "
                         f"{', '.join(map(repr, missing))}")
    tools = [_tool(server, found) for found in listed
             if allowed is None or found.name in allowed]
    names = [t.name for t in tools]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"MCP server {server.name!r}: two tools would be named "
                         f"{', '.join(twice)}")
    return tools


def _tool(server: MCPServer, found: mcp_types.Tool) -> MCPTool:
    remote = found.name

    async def call(**arguments: Any) -> str:
        try:
            key = current_tool_call().idempotency_key
        except LookupError:  # called outside an agent: a key of its own
            key = uuid.uuid4().hex
        return await server.session.acall(remote, arguments, key)

    call.__name__ = model_tool_name(server.prefix, remote)
    description = (found.description or found.title or remote)[:MAX_DESCRIPTION_CHARS]
    schema = {k: v for k, v in dict(found.input_schema).items() if k != "$schema"}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    policy = server.requires_confirmation
    may_ask = policy if isinstance(policy, bool) else callable(policy) or remote in policy
    return MCPTool(name=call.__name__, description=description, parameters=schema, fn=call,
                   args_model=MCPArguments, requires_confirmation=may_ask, server=server,
                   remote_name=remote)
