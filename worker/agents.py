"""Agent definitions, from YAML (``config/agents.yaml``, or ``$POOL_AGENTS_FILE``).

::

    agents:
      helpdesk:                     # the agent id a queued message names
        name: Ada                   # what the agent calls itself
        role: the helpdesk assistant of Example Corp
        persona: warm, brief, precise
        instructions: Look orders up before answering questions about them.
        alias: fast                 # a proxy alias, never a provider
        max_iterations: 5
        stream: false               # true: assistant text chunks go to the event stream
        tools:                      # dotted import paths of @tool objects
          - llm_pool.offline.demo_tools.lookup_order
          - llm_pool.offline.demo_tools.send_email
        mcp_servers:                # MCP servers' tools: see worker/mcp_sessions.py
          - name: tickets
            command: [python, -m, llm_pool.offline.mcp_server]
            confirm: [create_ticket]

Tools are loaded once per definition (MCP servers are connected by the worker at
start-up, not here: :func:`worker.mcp_sessions.with_mcp_tools`); a tool marked
``requires_confirmation`` in its ``@tool`` stops the run until a human answers (``confirm``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sdk import Tool
from worker.errors import AgentConfigError
from worker.mcp_sessions import MCPServerSpec

__all__ = ["AgentConfigError", "AgentSpec", "AgentsFile", "load_agents", "load_tool"]


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    alias: str = Field(min_length=1)
    role: str | None = None
    persona: str | None = None
    instructions: str = ""
    max_iterations: int = Field(default=5, ge=1, le=50)
    stream: bool = False
    version: str = "1"
    tools: list[str] = Field(default_factory=list)
    mcp_servers: list[MCPServerSpec] = Field(default_factory=list)  # worker/mcp_sessions.py


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: dict[str, AgentSpec]


def load_tool(path: str) -> Tool:
    module_name, _, attr = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AgentConfigError(f"tool {path!r} cannot be loaded: {exc}") from exc
    if not isinstance(found, Tool):
        raise AgentConfigError(f"{path!r} is not a @tool (got {type(found).__name__})")
    return found


def load_agents(path: Path) -> dict[str, tuple[AgentSpec, list[Tool]]]:
    """Every agent of the file with its loaded tools; raises :class:`AgentConfigError`."""
    try:
        raw = yaml.safe_load(path.read_text())
        parsed = AgentsFile.model_validate(raw)
    except OSError as exc:
        raise AgentConfigError(f"cannot read agents file {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise AgentConfigError(f"invalid agents file {path}: {exc}") from exc
    return {agent_id: (spec, [load_tool(t) for t in spec.tools])
            for agent_id, spec in parsed.agents.items()}
