"""The worker's PostgreSQL tables (migrations ``0010_worker_conversations.sql``,
``0040_llm_journal_call_id.sql``, ``0050_tool_call_claims.sql``).

Every write is idempotent (``ON CONFLICT``) so a redelivered message can repeat it.

Round trips are counted (they are most of the worker's CPU per message, see
bench/README.md): a run starts with one connection for its outcome, memory and
interrupted calls (:meth:`WorkerDB.begin_run`), a tool call is claimed in one
statement (:meth:`WorkerDB.claim_tool_call`), and a turn ends with its memory and
outcome in one transaction (:meth:`WorkerDB.finish_turn`).

Memory trimming rule: a conversation keeps its most recent *whole turns* (a turn
is the user message and everything the agent added for it: tool calls, tool
results, the reply) whose messages add up to at most ``max_messages``; older turns
are deleted; the newest turn is always kept, even alone over the limit. Trimming
whole turns never leaves a tool result without the assistant message that asked
for it.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

__all__ = ["WorkerDB"]

POOL_MAX_SIZE = 8

_OUTCOME = "SELECT * FROM message_outcomes WHERE message_id = %(id)s"
_MEMORY = "SELECT body FROM conversation_messages WHERE conversation_id = %(conv)s ORDER BY id"

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

_SAVE_TURN = """
INSERT INTO conversation_messages (conversation_id, tenant, message_id, seq, role, body)
SELECT %(conv)s, %(tenant)s, %(message_id)s, (m.seq - 1)::int, m.body->>'role', m.body
FROM jsonb_array_elements(%(bodies)s) WITH ORDINALITY AS m(body, seq)
ON CONFLICT (conversation_id, message_id, seq) DO NOTHING
"""

_SET_OUTCOME = """
INSERT INTO message_outcomes (message_id, conversation_id, tenant, agent_id, status, reply,
    pending_tool, pending_until, resumed_by)
VALUES (%(id)s, %(conv)s, %(tenant)s, %(agent)s, %(status)s, %(reply)s, %(tool)s,
    CASE WHEN %(ttl)s::int IS NULL THEN NULL ELSE now() + make_interval(secs => %(ttl)s::int) END,
    %(by)s)
ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status, reply = EXCLUDED.reply,
    resumed_by = EXCLUDED.resumed_by,
    pending_tool = COALESCE(EXCLUDED.pending_tool, message_outcomes.pending_tool),
    pending_until = COALESCE(EXCLUDED.pending_until, message_outcomes.pending_until),
    updated_at = now()
"""

# the journaled calls of the message without an audit row get an 'interrupted' one; the
# answer is how many calls the message has journaled (0: no delivery ever sent one)
_AUDIT_INTERRUPTED = """
WITH journal AS (SELECT message_id, call_id FROM llm_journal WHERE message_id = %(message_id)s),
audited AS (
    INSERT INTO audit_llm_calls (tenant, conversation_id, agent_id, message_id, call_key, alias,
        request_id, outcome, error)
    SELECT %(tenant)s, %(conversation_id)s, %(agent_id)s, j.message_id,
        j.message_id || ':llm:' || j.call_id, %(alias)s, j.call_id, 'error',
        'interrupted: the worker stopped during this call; the message was redelivered'
    FROM journal j
    ON CONFLICT (call_key) DO NOTHING
)
SELECT count(*) AS journaled FROM journal
"""

# one statement: a new row is inserted claimed (attempts 1); an unfinished one (pending,
# running, declined, expired) is claimed again (attempts + 1; the row is locked, so two
# claims are serialized); a finished one (ok/error) is left alone and nothing is returned
_CLAIM = """
INSERT INTO audit_tool_calls (tenant, conversation_id, agent_id, message_id, tool_call_id,
    tool_name, arguments, outcome, confirmation, decided_by, decided_at, claimed_by,
    claimed_at, attempts)
VALUES (%(tenant)s, %(conversation_id)s, %(agent_id)s, %(message_id)s, %(tool_call_id)s,
    %(tool_name)s, %(arguments)s, 'running', %(confirmation)s, %(decided_by)s,
    CASE WHEN %(decided_by)s::text IS NULL THEN NULL ELSE now() END, %(owner)s, now(), 1)
ON CONFLICT (conversation_id, tool_call_id) DO UPDATE SET outcome = 'running',
    claimed_by = EXCLUDED.claimed_by, claimed_at = now(),
    attempts = audit_tool_calls.attempts + 1, arguments = EXCLUDED.arguments,
    confirmation = CASE WHEN EXCLUDED.confirmation = 'not_required'
                        THEN audit_tool_calls.confirmation ELSE EXCLUDED.confirmation END,
    decided_by = COALESCE(EXCLUDED.decided_by, audit_tool_calls.decided_by),
    decided_at = COALESCE(audit_tool_calls.decided_at, EXCLUDED.decided_at),
    updated_at = now()
WHERE audit_tool_calls.outcome NOT IN ('ok', 'error')
RETURNING attempts
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
        rows = self._all(_MEMORY, {"conv": conversation_id})
        return [dict(r["body"]) for r in rows]

    def begin_run(self, message_id: str, conversation_id: str,
                  interrupted: dict[str, Any] | None
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
        """What a run starts from, on one connection: the message's stored outcome (if
        any: then nothing else is read), the conversation's memory and, with
        ``interrupted`` (the audit row's fields, see :meth:`audit_interrupted`), the
        interrupted calls audited and the number of calls the message has journaled."""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_OUTCOME, {"id": message_id})
            done = cur.fetchone()
            if done is not None:
                return done, [], 0
            cur.execute(_MEMORY, {"conv": conversation_id})
            memory = [dict(r["body"]) for r in cur.fetchall()]
            if interrupted is None:
                return None, memory, 0
            cur.execute(_AUDIT_INTERRUPTED, interrupted)
            found = cur.fetchone()
            return None, memory, int(found["journaled"]) if found is not None else 0

    def save_turn(self, conversation_id: str, tenant: str, message_id: str,
                  messages: list[dict[str, Any]], max_messages: int) -> None:
        """Persist one turn (idempotent by message id + position), then trim old turns."""
        with self.pool.connection() as conn, conn.transaction():
            self._save_turn(conn, conversation_id, tenant, message_id, messages, max_messages)

    @staticmethod
    def _save_turn(conn: Connection[Any], conversation_id: str, tenant: str, message_id: str,
                   messages: list[dict[str, Any]], max_messages: int) -> None:
        conn.execute(_SAVE_TURN, {"conv": conversation_id, "tenant": tenant,
                                  "message_id": message_id, "bodies": Jsonb(messages)})
        conn.execute(_TRIM, {"conv": conversation_id, "max": max_messages})

    def finish_turn(self, conversation_id: str, tenant: str, message_id: str,
                    messages: list[dict[str, Any]], max_messages: int, *, agent_id: str,
                    status: str, reply: str, resumed_by: str | None = None) -> None:
        """:meth:`save_turn` and :meth:`set_outcome` in one transaction: a turn's memory
        is never stored without its outcome (nor the other way round)."""
        with self.pool.connection() as conn, conn.transaction():
            self._save_turn(conn, conversation_id, tenant, message_id, messages, max_messages)
            conn.execute(_SET_OUTCOME, _outcome_params(
                message_id=message_id, conversation_id=conversation_id, tenant=tenant,
                agent_id=agent_id, status=status, reply=reply, resumed_by=resumed_by))

    # ------------------------------------------------------------ outcomes

    def get_outcome(self, message_id: str) -> dict[str, Any] | None:
        return self._one(_OUTCOME, {"id": message_id})

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
        self._run(_SET_OUTCOME, _outcome_params(
            message_id=message_id, conversation_id=conversation_id, tenant=tenant,
            agent_id=agent_id, status=status, reply=reply, pending_tool=pending_tool,
            pending_ttl=pending_ttl, resumed_by=resumed_by))

    # ------------------------------------------------------------ LLM journal

    def journal_started(self, message_id: str, call_id: str, phase: str) -> None:
        """Note an LLM request about to be sent (see :mod:`worker.turn`)."""
        self._run("INSERT INTO llm_journal (message_id, call_id, phase)"
                  " VALUES (%(m)s, %(c)s, %(p)s) ON CONFLICT DO NOTHING",
                  {"m": message_id, "c": call_id, "p": phase})

    def audit_interrupted(self, row: dict[str, Any]) -> int:
        """An ``error`` audit row for each journaled call of the message that has none:
        its worker died while the call was in flight. Returns how many calls the
        message has journaled (0: no delivery of it ever sent an LLM request)."""
        found = self._one(_AUDIT_INTERRUPTED, row)
        return int(found["journaled"]) if found is not None else 0

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
        ``attempts`` + 1), in one statement with the row locked. Returns
        ``{"outcome": "running", "attempts": n}`` when the call is now ``owner``'s
        (``n`` is the claim's number; more than 1: an earlier claim's worker stopped
        before recording a result), or the finished call's record (``outcome`` ok/error:
        nothing claimed, use its ``result``)."""
        params = {**row, "arguments": Jsonb(row["arguments"]), "owner": owner}
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_CLAIM, params)
            claimed = cur.fetchone()
            if claimed is not None:
                return {"outcome": "running", "attempts": int(claimed["attempts"])}
            # finished: rows are never deleted, and a finished row never changes again
            cur.execute("SELECT tool_name, arguments, outcome, result, claimed_by, attempts"
                        " FROM audit_tool_calls WHERE conversation_id = %(conversation_id)s"
                        " AND tool_call_id = %(tool_call_id)s", params)
            found = cur.fetchone()
            assert found is not None
            return dict(found)

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


def _outcome_params(*, message_id: str, conversation_id: str, tenant: str, agent_id: str,
                    status: str, reply: str | None, pending_tool: str | None = None,
                    pending_ttl: int | None = None, resumed_by: str | None = None
                    ) -> dict[str, Any]:
    return {"id": message_id, "conv": conversation_id, "tenant": tenant, "agent": agent_id,
            "status": status, "reply": reply, "tool": pending_tool, "ttl": pending_ttl,
            "by": resumed_by}
