"""Tools of the demo ``helpdesk`` agent (``config/agents.yaml``).

``send_email`` needs a human yes and has a side effect: it writes the email to
the ``demo_outbox`` table, keyed by the tool call's idempotency key, so running it
twice for the same call (a redelivered message) sends one email. The outbox is in
the database of :class:`llm_pool.settings.Settings` (``POOL_DATABASE_URL``).
"""

from __future__ import annotations

import functools

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from llm_pool.settings import Settings
from sdk import current_tool_call, tool

__all__ = ["lookup_order", "send_email"]

ORDER_STATUSES = ("processing", "shipped", "delivered")


@functools.cache
def _outbox_pool() -> ConnectionPool:
    url = Settings.from_env().database_url
    return ConnectionPool(url, min_size=1, max_size=2, open=True, kwargs={"autocommit": True})


@tool
def lookup_order(order_id: int) -> dict[str, object]:
    """Look an order up by its number.

    Args:
        order_id: The order number, e.g. 1042.
    """
    status = ORDER_STATUSES[order_id % len(ORDER_STATUSES)]
    return {"order_id": order_id, "status": status, "items": 1 + order_id % 3}


@tool(requires_confirmation=True)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a customer (asks the user for confirmation first).

    Args:
        to: The recipient's email address.
        subject: The subject line.
        body: The text of the email.
    """
    key = current_tool_call().idempotency_key
    with _outbox_pool().connection() as conn:
        conn.execute("INSERT INTO demo_outbox (idempotency_key, tool_name, payload)"
                     " VALUES (%s, 'send_email', %s) ON CONFLICT DO NOTHING",
                     (key, Jsonb({"to": to, "subject": subject, "body": body})))
    return f"email to {to} queued"
