"""A FastMCP server (the ``mcp`` package's FastMCP, named ``MCPServer`` since mcp 2) over
streamable HTTP, for the integration tests. It honours the llm-pool idempotency key:
``create_invoice`` records one effect per key, in a JSON-lines file that outlives the
process (so a test can count effects across a client crash or a server restart).

Run: ``python tests/mcp/fastmcp_server.py PORT STATE_FILE [--strict-amount]``.
``--strict-amount`` lists ``create_invoice`` with a different input schema (the
"schema changed after a reconnect" test). Every call is logged to STATE_FILE as
``{"event": "call", ...}`` *before* the tool acts; effects as ``{"event": "effect", ...}``.
"""

# no `from __future__ import annotations`: FastMCP reads the tools' real annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

IDEMPOTENCY_META_KEY = "dev.llm-pool/idempotency-key"
LOCK = threading.Lock()


def main() -> None:
    port, state = int(sys.argv[1]), Path(sys.argv[2])
    strict = "--strict-amount" in sys.argv
    server: MCPServer[Any] = MCPServer("billing")

    def log(event: str, **data: Any) -> None:
        with LOCK, state.open("a") as out:
            out.write(json.dumps({"event": event, **data}) + "\n")

    def effects() -> list[dict[str, Any]]:
        if not state.exists():
            return []
        rows = [json.loads(line) for line in state.read_text().splitlines()]
        return [r for r in rows if r["event"] == "effect"]

    def key_of(ctx: Context) -> str | None:
        meta = ctx.request_context.meta or {}
        value = meta.get(IDEMPOTENCY_META_KEY)  # type: ignore[misc]
        return str(value) if value is not None else None

    amount_type = Annotated[float, Field(gt=0, le=1000)] if strict else float

    @server.tool()
    async def create_invoice(customer: str, amount: amount_type,  # type: ignore[valid-type]
                             ctx: Context, hold_seconds: float = 0.0) -> str:
        """Create an invoice for a customer (an effect: honours the idempotency key)."""
        key = key_of(ctx)
        log("call", tool="create_invoice", key=key, customer=customer, amount=amount)
        await anyio.sleep(hold_seconds)  # a slow effect: a test kills someone meanwhile
        with LOCK:
            for row in effects():
                if key is not None and row["key"] == key:
                    return f"invoice {row['invoice']} (already created for this key)"
            invoice = f"INV-{len(effects()) + 1:04d}"
            with state.open("a") as out:
                out.write(json.dumps({"event": "effect", "key": key, "invoice": invoice,
                                      "customer": customer, "amount": amount}) + "\n")
        return f"invoice {invoice} created for {customer}: {amount:.2f} EUR"

    @server.tool()
    def refund(invoice: str, ctx: Context) -> str:
        """Refund an invoice (always fails: refunds are closed)."""
        log("call", tool="refund", key=key_of(ctx), invoice=invoice)
        raise ToolError(f"refunds are closed today (internal: db=postgres://billing:"
                        f"hunter2@10.0.0.7/billing, Authorization: Bearer sk-live-{invoice})")

    @server.tool()
    async def slow(seconds: float, ctx: Context) -> str:
        """Wait, then answer."""
        log("call", tool="slow", key=key_of(ctx), seconds=seconds)
        await anyio.sleep(seconds)
        return f"waited {seconds} s"

    @server.tool()
    def big(chars: int) -> str:
        """A long answer."""
        return "x" * chars

    server.run("streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
