"""Tools for the worker tests. ``record_effect`` and ``refund`` have a side effect:
one row in ``test_effects`` per run, so tests can count how often they really ran
(no idempotency key on purpose: the worker must not re-run them)."""

from __future__ import annotations

import os
import time

import psycopg

from sdk import current_tool_call, tool


def _record(kind: str, label: str) -> None:
    with psycopg.connect(os.environ["POOL_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_effects (id serial PRIMARY KEY,"
                     " kind text, label text, call_id text, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO test_effects (kind, label, call_id) VALUES (%s, %s, %s)",
                     (kind, label, current_tool_call().call_id))


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value-of-{key}"


@tool
def echo(text: str) -> str:
    """Say the text back (it may well start with "Error:": the call still succeeded)."""
    return text


@tool
def record_effect(label: str, seconds: float = 0.0) -> str:
    """Record a side effect, after sleeping ``seconds``."""
    time.sleep(seconds)
    _record("effect", label)
    return f"recorded {label}"


@tool(requires_confirmation=True)
def refund(order_id: int, amount: float) -> str:
    """Refund an order (needs a human yes)."""
    _record("refund", f"{order_id}:{amount}")
    return f"refunded {amount} on order {order_id}"


@tool(requires_confirmation=True)
def send_slowly(to: str, seconds: float = 0.0) -> str:
    """Send a message (needs a human yes): the effect is recorded once per call
    (keyed by the idempotency key, as a real side effect must be), then it takes
    ``seconds`` to finish."""
    key = current_tool_call().idempotency_key
    with psycopg.connect(os.environ["POOL_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_outbox (key text PRIMARY KEY,"
                     " recipient text)")
        conn.execute("INSERT INTO test_outbox VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (key, to))
    time.sleep(seconds)
    return f"sent to {to}"


@tool
def effect_then_wait(label: str, seconds: float = 0.0) -> str:
    """Record a side effect at once (no idempotency key), then take ``seconds``."""
    _record("effect", label)
    time.sleep(seconds)
    return f"recorded {label}"


@tool(requires_confirmation=True)
def slow_refund(order_id: int, amount: float, seconds: float = 0.0) -> str:
    """Refund an order (needs a human yes): the refund happens at once, without an
    idempotency key, then the tool takes ``seconds`` to finish."""
    _record("refund", f"{order_id}:{amount}")
    time.sleep(seconds)
    return f"refunded {amount} on order {order_id}"
