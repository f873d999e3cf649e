"""Errors of MCP tools. One root, :class:`MCPError` (an :class:`~sdk.errors.SDKError`)::

    MCPError                      something went wrong with an MCP server (``server``)
    ├── MCPUnreachableError       cannot connect, or the connection was lost (during a
    │                             call: the call may or may not have run)
    ├── MCPToolError              the server ran the tool and it reported an error
    ├── MCPSchemaError            the tool's schema does not match: arguments the server
    │                             refused, a tool gone or changed since it was listed
    └── MCPTimeoutError           no answer within the server's ``timeout``

Raised inside an agent's tool call, they never reach the caller: the runner turns them
into an ``"Error: ..."`` result for the model (see :mod:`sdk.tool_calls`). Their text is
what the model reads, so it is short and redacted (no URL, header or token; the
server's own error text capped); the cause is chained (``__cause__``) for logs.
"""

from __future__ import annotations

from sdk.errors import SDKError

__all__ = ["MCPError", "MCPSchemaError", "MCPTimeoutError", "MCPToolError",
           "MCPUnreachableError"]


class MCPError(SDKError):
    """An MCP server failed a request; ``server`` is the server's name."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPUnreachableError(MCPError):
    """The server cannot be reached, or the connection broke (``during_call``: the call
    was sent, so it may or may not have had its effect)."""

    def __init__(self, message: str, *, server: str, during_call: bool = False) -> None:
        super().__init__(message, server=server)
        self.during_call = during_call


class MCPToolError(MCPError):
    """The tool ran and reported an error (``isError``); the message is its redacted text."""


class MCPSchemaError(MCPError):
    """Arguments or a tool's schema do not match what the server has now."""


class MCPTimeoutError(MCPError):
    """The server did not answer within the timeout (the call may still run there)."""
