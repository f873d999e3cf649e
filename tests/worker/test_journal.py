"""The LLM call journal (migration 0040): call ids written before each request; a
redelivered run audits the journaled calls without an audit row as interrupted."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from worker.db import WorkerDB


def test_journaled_calls_without_an_audit_row_are_audited_as_interrupted(pg_url: str) -> None:
    db, message = WorkerDB(pg_url, max_size=1), uuid.uuid4().hex
    base: dict[str, Any] = {"tenant": "acme", "conversation_id": f"c-{message[:8]}",
                            "agent_id": "tester", "message_id": message, "alias": "fast"}
    try:
        db.journal_started(message, "call-1", "confirm:d1")  # the crashed resume's call
        db.journal_started(message, "call-2", "run")
        db.journal_started(message, "call-2", "run")  # a re-run: once
        db.audit_llm_call({**base, "call_key": f"{message}:llm:call-2", "deployment": "fast-1",
                           "request_id": "call-2", "prompt_tokens": 3, "completion_tokens": 2,
                           "cost_usd": 0.001, "latency_ms": 5.0, "outcome": "ok",
                           "error": None})
        for _ in range(2):  # every redelivery asks again: one row per call
            db.audit_interrupted(base)
    finally:
        db.close()
    with psycopg.connect(pg_url) as conn:
        journal = conn.execute("SELECT call_id, phase FROM llm_journal WHERE message_id = %s"
                               " ORDER BY call_id", (message,)).fetchall()
        audit = conn.execute("SELECT call_key, request_id, outcome, error LIKE 'interrupted%%'"
                             " FROM audit_llm_calls WHERE message_id = %s ORDER BY call_key",
                             (message,)).fetchall()
    assert journal == [("call-1", "confirm:d1"), ("call-2", "run")]
    assert audit == [(f"{message}:llm:call-1", "call-1", "error", True),
                     (f"{message}:llm:call-2", "call-2", "ok", None)]
