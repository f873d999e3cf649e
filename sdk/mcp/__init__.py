"""MCP servers as tool sources for agents (the ``mcp`` extra: ``pip install llm-pool[mcp]``).

::

    from sdk import Agent
    from sdk.mcp import MCPServer

    tickets = MCPServer("tickets", url="http://tickets.internal/mcp",
                        requires_confirmation=["create_ticket"])
    agent = Agent(name="helpdesk", alias="fast", mcp_servers=[tickets])

See :mod:`sdk.mcp.server` (declaring a server), :mod:`sdk.mcp.tools` (its tools as agent
tools), :mod:`sdk.mcp.session` (the connection) and :mod:`sdk.mcp.errors`. Importing this
package does not import ``mcp``: a server's first use does.
"""

from sdk.mcp.errors import (
    MCPError,
    MCPSchemaError,
    MCPTimeoutError,
    MCPToolError,
    MCPUnreachableError,
)
from sdk.mcp.server import ConfirmationPolicy, MCPServer, mcp_tools
from sdk.mcp.tools import MCPTool

IDEMPOTENCY_META_KEY = "dev.llm-pool/idempotency-key"  # = sdk.mcp.session's (tested)

__all__ = [
    "IDEMPOTENCY_META_KEY",
    "ConfirmationPolicy",
    "MCPError",
    "MCPSchemaError",
    "MCPServer",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolError",
    "MCPUnreachableError",
    "mcp_tools",
]
