"""MCP servers of the agents file, connected once per worker process.

::

    agents:
      helpdesk:
        ...
        mcp_servers:
          - name: billing                    # [A-Za-z0-9_-]: in logs and errors
            url: https://billing.internal/mcp  # streamable HTTP; or
            # command: [python, -m, my_server]  # stdio: a child of the worker process
            bearer_token_env: BILLING_MCP_TOKEN  # Authorization: Bearer $BILLING_MCP_TOKEN
            headers_from_env: {X-Tenant: BILLING_TENANT}  # header: environment variable
            allowed_tools: [create_invoice, find_invoice]  # default: all the server lists
            prefix: billing_                 # the model sees billing_create_invoice
            confirm: [create_invoice]        # or "all": these wait for a human yes
            timeout: 60                      # seconds one call may take

Secrets never sit in the file: header values come from environment variables, read
when the worker starts (a missing one is an :class:`~worker.errors.AgentConfigError`
naming it). Each declaration becomes one :class:`sdk.mcp.MCPServer` per process, shared
by the agents and threads that declare it: its connection is opened at start-up (to
list the tools: an unreachable server stops the start with a clear error) and reopened
after it breaks. MCP tools are ordinary agent tools: the confirmation gate, the tool
result cache, the audit rows and the idempotency key (sent in the request's ``_meta``)
apply to them as to ``@tool`` functions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdk import MCPError, MCPServer, Tool
from worker.errors import AgentConfigError

if TYPE_CHECKING:
    from worker.agents import AgentSpec

__all__ = ["MCPServerSpec", "close_servers", "server_for", "with_mcp_tools"]

class MCPServerSpec(BaseModel):
    """One MCP server of an agent (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    url: str | None = Field(default=None, pattern=r"^https?://")
    command: list[str] | None = Field(default=None, min_length=1)
    bearer_token_env: str | None = None
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    allowed_tools: list[str] | None = None
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]*$")
    confirm: list[str] | Literal["all"] = Field(default_factory=list)
    timeout: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if (self.url is None) == (self.command is None):
            raise ValueError(f"MCP server {self.name!r}: give either url or command")
        return self

    def headers(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The request headers, their values read from ``environ``."""
        wanted = dict(self.headers_from_env)
        if self.bearer_token_env is not None:
            wanted["Authorization"] = self.bearer_token_env
        headers: dict[str, str] = {}
        for header, variable in wanted.items():
            value = environ.get(variable)
            if not value:
                raise AgentConfigError(f"MCP server {self.name!r}: the environment variable "
                                       f"{variable} (for the {header} header) is not set")
            headers[header] = f"Bearer {value}" if variable == self.bearer_token_env \
                and header == "Authorization" else value
        return headers


_LOCK = threading.Lock()
_SERVERS: dict[str, MCPServer] = {}  # this process's servers, by declaration


def server_for(spec: MCPServerSpec, environ: Mapping[str, str] | None = None) -> MCPServer:
    """This process's :class:`~sdk.mcp.MCPServer` for a declaration (one per declaration)."""
    key = spec.model_dump_json()
    with _LOCK:
        if key not in _SERVERS:
            where: dict[str, Any] = ({"url": spec.url} if spec.url is not None
                                     else {"command": spec.command})
            _SERVERS[key] = MCPServer(
                spec.name, **where, headers=spec.headers(os.environ if environ is None
                                                         else environ),
                allowed_tools=spec.allowed_tools, prefix=spec.prefix,
                requires_confirmation=True if spec.confirm == "all" else spec.confirm,
                timeout=spec.timeout)
        return _SERVERS[key]


def close_servers() -> None:
    """End this process's MCP connections (a later use opens them again)."""
    with _LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for server in servers:
        server.close()


def with_mcp_tools(agents: dict[str, tuple[AgentSpec, list[Tool]]]
                   ) -> dict[str, tuple[AgentSpec, list[Tool]]]:
    """The agents with the tools of their MCP servers added (connects to each server)."""
    expanded: dict[str, tuple[AgentSpec, list[Tool]]] = {}
    for agent_id, (spec, tools) in agents.items():
        added: list[Tool] = []
        for server_spec in spec.mcp_servers:
            try:
                added += server_for(server_spec).tools()
            except (MCPError, ValueError) as exc:
                raise AgentConfigError(f"agent {agent_id!r}: MCP server {server_spec.name!r}: "
                                       f"{exc}") from exc
        names = [t.name for t in [*tools, *added]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise AgentConfigError(f"agent {agent_id!r}: two tools are named "
                                   f"{', '.join(twice)} (use an MCP server's prefix)")
        expanded[agent_id] = (spec, [*tools, *added])
    return expanded
