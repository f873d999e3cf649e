"""The offline demo's MCP server: a small ticket desk, over stdio.

The ``helpdesk`` agent (``config/agents.yaml``) declares it as an MCP server; the worker
starts it as a child process (``python -m llm_pool.offline.mcp_server``) and its
``create_ticket`` waits for a human yes like ``send_email``. It honours llm-pool's
idempotency key (``_meta["dev.llm-pool/idempotency-key"]``): a call re-sent with the
same key (a redelivered message) gets the ticket the first call opened.

Written with the ``mcp`` package's FastMCP (named ``MCPServer`` since mcp 2): the
``mcp`` extra. Tickets live in this process's memory.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer

IDEMPOTENCY_META_KEY = "dev.llm-pool/idempotency-key"

__all__ = ["build_server", "main"]


def build_server() -> MCPServer[Any]:
    """The demo's ticket-desk server (not started)."""
    server: MCPServer[Any] = MCPServer("tickets")
    numbers = itertools.count(1001)
    opened: dict[str, str] = {}  # idempotency key -> ticket id

    def create_ticket(subject: str, body: str, ctx: Context[Any],
                      priority: Literal["low", "normal", "high"] = "normal") -> str:
        """Open a support ticket for the customer's problem (asks the user first).

        Args:
            subject: One line saying what the problem is.
            body: The details, in the customer's words.
            priority: How urgent it is.
        """
        meta = ctx.request_context.meta or {}
        key = str(meta.get(IDEMPOTENCY_META_KEY) or f"anonymous-{next(numbers)}")
        if key not in opened:
            opened[key] = f"T-{next(numbers)}"
        return f"ticket {opened[key]} opened ({priority}): {subject}"

    server.tool()(create_ticket)
    return server


def main() -> None:
    build_server().run("stdio")


if __name__ == "__main__":
    main()
