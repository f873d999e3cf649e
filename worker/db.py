"""The worker's PostgreSQL tables (migrations ``0010_worker_conversations.sql``,
``0040_llm_journal_call_id.sql``, ``0050_tool_call_claims.sql``).

Every write is idempotent (``ON CONFLICT``) so a redelivered message can repeat it.

Memory trimming rule: a conversation keeps its most recent *whole turns* (a turn
is the user message and everything the agent added for it: tool calls, tool
results, the reply) whose messages add up to at most ``max_messages``; older turns
are deleted; the newest turn is always kept, even alone over the limit. Trimming
whole turns never leaves a tool result without the assistant message that asked
for it.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

__all__ = ["WorkerDB"]

POOL_MAX_SIZE = 8

_TRIM = """
WITH turns AS (
    SELECT message_id, count(*) AS n, min(id) AS first_id
    FROM conversation_messages WHERE conversation_id = %(conv)s GROUP BY message_id
), ranked AS (
    SELECT message_id,
           sum(n) OVER (ORDER BY first_id DESC) AS running,
           row_number() OVER (ORDER BY first_id DESC) AS rank
    FROM turns
)
DELETE FROM conversation_messages
WHERE conversation_id = %(conv)s
  AND message_id IN (SELECT message_id FROM ranked WHERE running > %(max)s AND rank > 1)
"""

_CLAIM_INSERT = """
INSERT INTO audit_tool_calls (tenant, conversation_id, agent_id, message_id, tool_call_id,
    tool_name, arguments, outcome, confirmation)
VALUES (%(tenant)s, %(conversation_id)s, %(agent_id)s, %(message_id)s, %(tool_call_id)s,
    %(tool_name)s, %(arguments)s, 'running', 'not_required')
ON CONFLICT (conversation_id, tool_call_id) DO NOTHING
"""

_CLAIM_UPDATE = """
UPDATE audit_tool_calls SET outcome = 'running', claimed_by = %(owner)s, claimed_at = now(),
    attempts = attempts + 1, arguments = %(arguments)s,
    confirmation = CASE WHEN %(confirmation)s::text = 'not_required' THEN confirmation
                        ELSE %(confirmation)s::text END,
    decided_by = COALESCE(%(decided_by)s::text, decided_by),
    decided_at = COALESCE(decided_at, CASE WHEN %(decided_by)s::text IS NULL THEN NULL
                                           ELSE now() END),
    updated_at = now()
WHERE conversation_id = %(conversation_id)s AND tool_call_id = %(tool_call_id)s
"""


class WorkerDB:
    def __init__(self, url: str, *, max_size: int = POOL_MAX_SIZE) -> None:
        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, open=True,
                                   kwargs={"autocommit": True})

    def close(self) -> None:
        self.pool.close()

    def _all(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def _one(self, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _run(self, sql: str, params: dict[str, Any]) -> None:
        with self.pool.connection() as conn:
            conn.execute(sql, params)

    # ------------------------------------------------------------ memory

    def load_memory(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = self._all("SELECT body FROM conversation_messages WHERE conversation_id = %(conv)s"
                         " ORDER BY id", {"conv": conversation_id})
        return [dict(r["body"]) for r in rows]

    def save_turn(self, conversation_id: str, tenant: str, message_id: str,
                  messages: list[dict[str, Any]], max_messages: int) -> None:
        """Persist one turn (idempotent by message id + position), then trim old turns."""
        with self.pool.connection() as conn, conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO conversation_messages (conversation_id, tenant, message_id, seq,"
                    " role, body) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (conversation_id, message_id, seq) DO NOTHING",
                    [(conversation_id, tenant, message_id, i, m["role"], Jsonb(m))
                     for i, m in enumerate(messages)])
            conn.execute(_TRIM, {"conv": conversation_id, "max": max_messages})

    # ------------------------------------------------------------ outcomes

    def get_outcome(self, message_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM message_outcomes WHERE message_id = %(id)s",
                         {"id": message_id})

    def latest_awaiting(self, conversation_id: str) -> dict[str, Any] | None:
        """The newest message of the conversation that asked for a confirmation."""
        return self._one(
            "SELECT * FROM message_outcomes WHERE conversation_id = %(conv)s"
            " AND pending_tool IS NOT NULL ORDER BY updated_at DESC LIMIT 1",
            {"conv": conversation_id})

    def set_outcome(self, *, message_id: str, conversation_id: str, tenant: str, agent_id: str,
                    status: str, reply: str | None, pending_tool: str | None = None,
                    pending_ttl: int | None = None, resumed_by: str | None = None) -> None:
        """Store a message's outcome; ``resumed_by``: the decision whose resumed run
        ended with it."""
        self._run(
            "INSERT INTO message_outcomes (message_id, conversation_id, tenant, agent_id, status,"
            " reply, pending_tool, pending_until, resumed_by) VALUES (%(id)s, %(conv)s,"
            " %(tenant)s, %(agent)s, %(status)s, %(reply)s, %(tool)s,"
            " CASE WHEN %(ttl)s::int IS NULL THEN NULL"
            "      ELSE now() + make_interval(secs => %(ttl)s::int) END, %(by)s)"
            " ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status,"
            " reply = EXCLUDED.reply, resumed_by = EXCLUDED.resumed_by,"
            " pending_tool = COALESCE(EXCLUDED.pending_tool, message_outcomes.pending_tool),"
            " pending_until = COALESCE(EXCLUDED.pending_until, message_outcomes.pending_until),"
            " updated_at = now()",
            {"id": message_id, "conv": conversation_id, "tenant": tenant, "agent": agent_id,
             "status": status, "reply": reply, "tool": pending_tool, "ttl": pending_ttl,
             "by": resumed_by})

    # ------------------------------------------------------------ LLM journal

    def journal_started(self, message_id: str, call_id: str, phase: str) -> None:
        """Note an LLM request about to be sent (see :mod:`worker.turn`)."""
        self._run("INSERT INTO llm_journal (message_id, call_id, phase)"
                  " VALUES (%(m)s, %(c)s, %(p)s) ON CONFLICT DO NOTHING",
                  {"m": message_id, "c": call_id, "p": phase})

    def audit_interrupted(self, row: dict[str, Any]) -> None:
        """An ``error`` audit row for each journaled call of the message that has none:
        its worker died while the call was in flight."""
        self._run(
            "INSERT INTO audit_llm_calls (tenant, conversation_id, agent_id, message_id,"
            " call_key, alias, request_id, outcome, error)"
            " SELECT %(tenant)s, %(conversation_id)s, %(agent_id)s, j.message_id,"
            " j.message_id || ':llm:' || j.call_id, %(alias)s, j.call_id, 'error',"
            " 'interrupted: the worker stopped during this call; the message was redelivered'"
            " FROM llm_journal j WHERE j.message_id = %(message_id)s"
            " ON CONFLICT (call_key) DO NOTHING", row)

    # ------------------------------------------------------------ audit

    def audit_llm_call(self, row: dict[str, Any]) -> None:
        self._run(
            "INSERT INTO audit_llm_calls (tenant, conversation_id, agent_id, message_id, call_key,"
            " alias, deployment, request_id, prompt_tokens, completion_tokens, cost_usd,"
            " latency_ms, outcome, error) VALUES (%(tenant)s, %(conversation_id)s, %(agent_id)s,"
            " %(message_id)s, %(call_key)s, %(alias)s, %(deployment)s, %(request_id)s,"
            " %(prompt_tokens)s, %(completion_tokens)s, %(cost_usd)s, %(latency_ms)s,"
            " %(outcome)s, %(error)s) ON CONFLICT (call_key) DO NOTHING", row)

    def tool_result(self, conversation_id: str, tool_call_id: str) -> dict[str, Any] | None:
        """A finished tool call's record (``outcome`` ok/error), if any."""
        return self._one(
            "SELECT tool_name, arguments, outcome, result FROM audit_tool_calls"
            " WHERE conversation_id = %(conv)s AND tool_call_id = %(id)s"
            " AND outcome IN ('ok', 'error')",
            {"conv": conversation_id, "id": tool_call_id})

    def claim_tool_call(self, row: dict[str, Any], owner: str
                        ) -> dict[str, Any]:
        """Claim a tool call before it runs (``outcome`` running, ``claimed_by`` owner,
        ``attempts`` + 1), in one transaction with the row locked. Returns the row as it
        was: its ``outcome`` ok/error means finished (nothing claimed, use its result);
        otherwise the call is now ``owner``'s and ``attempts`` is the claim's number
        (more than 1: an earlier claim's worker stopped before recording a result)."""
        params = {**row, "arguments": Jsonb(row["arguments"]), "owner": owner}
        with self.pool.connection() as conn, conn.transaction(), \
                conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_CLAIM_INSERT, params)
            cur.execute("SELECT tool_name, arguments, outcome, result, claimed_by, attempts"
                        " FROM audit_tool_calls WHERE conversation_id = %(conversation_id)s"
                        " AND tool_call_id = %(tool_call_id)s FOR UPDATE", params)
            found = cur.fetchone()
            assert found is not None  # inserted above if missing, and rows are never deleted
            if found["outcome"] in ("ok", "error"):
                return dict(found)
            cur.execute(_CLAIM_UPDATE, params)
            return {**found, "attempts": int(found["attempts"]) + 1}

    def audit_tool_call(self, row: dict[str, Any]) -> None:
        """Insert or update one tool call (keyed by conversation + tool call id); a call
        claimed by another owner (``claimed_by``) is left to that owner."""
        params = {"claimed_by": None, **row, "arguments": Jsonb(row["arguments"])}
        self._run(
            "INSERT INTO audit_tool_calls (tenant, conversation_id, agent_id, message_id,"
            " tool_call_id, tool_name, arguments, outcome, result, confirmation, decided_by,"
            " decided_at) VALUES (%(tenant)s, %(conversation_id)s, %(agent_id)s, %(message_id)s,"
            " %(tool_call_id)s, %(tool_name)s, %(arguments)s, %(outcome)s, %(result)s,"
            " %(confirmation)s, %(decided_by)s,"
            " CASE WHEN %(decided_by)s::text IS NULL AND %(confirmation)s::text IN"
            "      ('not_required', 'pending') THEN NULL ELSE now() END)"
            " ON CONFLICT (conversation_id, tool_call_id) DO UPDATE SET"
            " outcome = EXCLUDED.outcome, result = EXCLUDED.result, arguments = EXCLUDED.arguments,"
            " confirmation = CASE WHEN EXCLUDED.confirmation = 'not_required'"
            "   THEN audit_tool_calls.confirmation ELSE EXCLUDED.confirmation END,"
            " decided_by = COALESCE(EXCLUDED.decided_by, audit_tool_calls.decided_by),"
            " decided_at = COALESCE(audit_tool_calls.decided_at, EXCLUDED.decided_at),"
            " updated_at = now()"
            " WHERE audit_tool_calls.outcome NOT IN ('ok', 'error')"
            " AND (audit_tool_calls.outcome <> 'running' OR audit_tool_calls.claimed_by"
            "      IS NOT DISTINCT FROM %(claimed_by)s::text)", params)

    def expire_tool_calls(self, conversation_id: str, message_id: str) -> None:
        """Mark a message's calls that waited for a confirmation as expired (never run)."""
        self._run("UPDATE audit_tool_calls SET outcome = 'expired', confirmation = 'expired',"
                  " decided_at = now(), updated_at = now() WHERE conversation_id = %(conv)s"
                  " AND message_id = %(m)s AND outcome = 'pending'",
                  {"conv": conversation_id, "m": message_id})
