"""What one message costs the worker in PostgreSQL statements, Redis commands and
thread hops (its CPU per message, see bench/README.md, benchmark 4), and the
statements that replaced longer sequences: the one-statement tool call claim, a
run's start on one connection, a turn's end in one transaction. Real PostgreSQL and
Redis; the proxy is faked at the HTTP transport."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import psycopg
import pytest
import redis

from sdk import AsyncGateway, tool
from tests.sdk.fakes import BASE_URL, FAST_RETRY, chat
from worker.agents import AgentSpec
from worker.db import WorkerDB
from worker.models import InboundMessage
from worker.redis_store import RedisStore
from worker.service import ConversationService
from worker.settings import WorkerSettings
from worker.tenant_keys import GATEWAY_SHARDS, gateways_by_tenant

pytestmark = pytest.mark.integration

# one message whose agent makes three LLM calls (tool, tool, reply), first delivery.
# Before the CPU cuts of #19: 22 statements (a look-up and 3 statements for each claim, 2
# transactions), the same Redis commands, 16 thread hops (2 per LLM call, 4 per tool call).
STATEMENTS = 16  # start 3, per LLM call 2 (journal, audit), per tool 2 (claim, result), end 3
REDIS_COMMANDS = 9  # the events (received, 3 llm_call, 2 tool_called, reply) and the lease
HOPS = 9  # start, per LLM call 1 (journal), per tool 2 (claim, result), end


RAN: list[str] = []  # the tools that ran


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    RAN.append("add")
    return a + b


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    RAN.append("lookup")
    return f"value-of-{key}"


def _script(request: httpx.Request) -> httpx.Response:
    done = [m for m in json.loads(request.content)["messages"] if m["role"] == "tool"]
    if not done:
        return chat(tool_calls=[("add", {"a": 1, "b": 2}, "x")])
    if len(done) == 1:
        return chat(tool_calls=[("lookup", {"key": "k"}, "y")])
    return chat("done")


@pytest.fixture
def service(pg_url: str, redis_url: str, redis_prefix: str) -> Iterator[ConversationService]:
    client = openai.AsyncOpenAI(base_url=BASE_URL, api_key="k", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(_script)))
    gateway = AsyncGateway(client=client, retry=FAST_RETRY)
    spec = AgentSpec(name="Counted", alias="fast", tools=["x.add", "x.lookup"])
    db = WorkerDB(pg_url, max_size=2)
    running = ConversationService(
        WorkerSettings(namespace=redis_prefix, redis_url=redis_url),
        db, RedisStore(redis.Redis.from_url(redis_url), redis_prefix),
        {"counted": (spec, [add, lookup])}, lambda _tenant: gateway)
    yield running
    running.io.shutdown()
    db.close()


def _counting(monkeypatch: pytest.MonkeyPatch, service: ConversationService) -> Counter[str]:
    counts: Counter[str] = Counter()

    def count(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[label] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, counted)

    count(psycopg.Cursor, "execute", "statements")
    count(psycopg.Cursor, "executemany", "statements")
    count(redis.Redis, "execute_command", "redis")
    count(redis.asyncio.Redis, "execute_command", "redis")  # the lease (awaited: counted too)
    count(service.io, "submit", "hops")
    return counts


def test_a_three_call_message_costs_a_bounded_number_of_round_trips(
        service: ConversationService, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    message = InboundMessage(tenant="acme", conversation_id=f"c-{uuid.uuid4().hex[:8]}",
                             agent_id="counted", text="go", message_id=uuid.uuid4().hex)
    counts = _counting(monkeypatch, service)
    reply = asyncio.run(service.handle(message))
    assert reply.status == "completed" and reply.text == "done"
    assert counts["statements"] <= STATEMENTS, counts
    assert counts["redis"] <= REDIS_COMMANDS, counts
    assert counts["hops"] <= HOPS, counts
    # the deferred events (LLMCallFinished, ToolCalled) are on the stream, in order
    kinds = [e["type"] for _, e in service.store.read_events(message.conversation_id)]
    assert kinds == ["received", "llm_call", "tool_called", "llm_call", "tool_called",
                     "llm_call", "reply"]
    with psycopg.connect(pg_url) as conn:
        audited = conn.execute("SELECT count(*) FROM audit_llm_calls WHERE message_id = %s"
                               " AND outcome = 'ok'", (message.message_id,)).fetchone()
        tools = conn.execute("SELECT tool_name, outcome, attempts FROM audit_tool_calls"
                             " WHERE message_id = %s ORDER BY id",
                             (message.message_id,)).fetchall()
        memory = conn.execute("SELECT seq, role FROM conversation_messages WHERE message_id = %s"
                              " ORDER BY seq", (message.message_id,)).fetchall()
    assert audited == (3,)
    assert tools == [("add", "ok", 1), ("lookup", "ok", 1)]
    assert memory == [(0, "user"), (1, "assistant"), (2, "tool"), (3, "assistant"),
                      (4, "tool"), (5, "assistant")]


def test_a_redelivered_run_reuses_the_recorded_tool_results(
        service: ConversationService, pg_url: str) -> None:
    """A delivery after a crash before the turn's end (journal rows and recorded tool
    results, no memory, no outcome) is not fresh: it looks each call up and runs no
    tool again; the model reads the recorded results."""
    message = InboundMessage(tenant="acme", conversation_id=f"c-{uuid.uuid4().hex[:8]}",
                             agent_id="counted", text="go", message_id=uuid.uuid4().hex)
    asyncio.run(service.handle(message))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("message_outcomes", "conversation_messages"):  # the end, undone
            conn.execute(f"DELETE FROM {table} WHERE message_id = %s", (message.message_id,))
        conn.execute("UPDATE audit_tool_calls SET result = 'recorded ' || tool_name"
                     " WHERE message_id = %s", (message.message_id,))
    RAN.clear()
    again = asyncio.run(service.handle(message))
    assert again.status == "completed"
    assert RAN == []  # both results came from PostgreSQL
    with psycopg.connect(pg_url) as conn:
        bodies = conn.execute("SELECT body->>'content' FROM conversation_messages"
                              " WHERE message_id = %s AND role = 'tool' ORDER BY seq",
                              (message.message_id,)).fetchall()
    assert bodies == [("recorded add",), ("recorded lookup",)]


def test_claim_is_one_statement_with_the_same_states(pg_url: str) -> None:
    db, message = WorkerDB(pg_url, max_size=1), uuid.uuid4().hex
    row = {"tenant": "acme", "conversation_id": f"c-{message[:8]}", "agent_id": "counted",
           "message_id": message, "tool_call_id": f"{message}:t1", "tool_name": "add",
           "arguments": {"a": 1}, "outcome": "running", "result": None,
           "confirmation": "approved", "decided_by": "ann"}
    try:
        assert db.claim_tool_call(row, "lease-1") == {"outcome": "running", "attempts": 1}
        # taken over (the first claim's worker died): attempts 2, the decision kept
        assert db.claim_tool_call({**row, "confirmation": "not_required", "decided_by": None},
                                  "lease-2") == {"outcome": "running", "attempts": 2}
        db.audit_tool_call({**row, "outcome": "ok", "result": "3", "claimed_by": "lease-1"})
        with psycopg.connect(pg_url) as conn:  # not the owner any more: left alone
            assert conn.execute("SELECT outcome FROM audit_tool_calls WHERE tool_call_id = %s",
                                (row["tool_call_id"],)).fetchone() == ("running",)
        db.audit_tool_call({**row, "outcome": "ok", "result": "3", "claimed_by": "lease-2"})
        finished = db.claim_tool_call(row, "lease-3")  # finished: nothing claimed
        assert (finished["outcome"], finished["result"], finished["attempts"]) == ("ok", "3", 2)
        with psycopg.connect(pg_url) as conn:
            stored = conn.execute(
                "SELECT outcome, claimed_by, attempts, confirmation, decided_by,"
                " decided_at IS NOT NULL FROM audit_tool_calls WHERE tool_call_id = %s",
                (row["tool_call_id"],)).fetchone()
        assert stored == ("ok", "lease-2", 2, "approved", "ann", True)
    finally:
        db.close()


def test_begin_run_reads_outcome_memory_and_journal_on_one_connection(pg_url: str) -> None:
    db, message = WorkerDB(pg_url, max_size=1), uuid.uuid4().hex
    conv = f"c-{message[:8]}"
    audit = {"tenant": "acme", "conversation_id": conv, "agent_id": "counted",
             "message_id": message, "alias": "fast"}
    try:
        assert db.begin_run(message, conv, audit) == (None, [], 0)  # fresh
        db.save_turn(conv, "acme", "earlier", [{"role": "user", "content": "hi"}], 10)
        db.journal_started(message, "call-1", "run")  # a crashed delivery's call
        done, memory, journaled = db.begin_run(message, conv, audit)
        assert (done, memory, journaled) == (None, [{"role": "user", "content": "hi"}], 1)
        db.finish_turn(conv, "acme", message, [{"role": "user", "content": "go"}], 10,
                       agent_id="counted", status="completed", reply="done")
        done, memory, _ = db.begin_run(message, conv, audit)
        assert done is not None and (done["status"], done["reply"]) == ("completed", "done")
        with psycopg.connect(pg_url) as conn:
            interrupted = conn.execute("SELECT outcome FROM audit_llm_calls WHERE message_id = %s",
                                       (message,)).fetchall()
        assert interrupted == [("error",)]  # audited once, though asked twice
        assert db.load_memory(conv) == [{"role": "user", "content": "hi"},
                                        {"role": "user", "content": "go"}]
    finally:
        db.close()


def test_each_key_has_its_own_gateways_handed_out_in_turn() -> None:
    """Several HTTP connection pools per key (httpcore scans a pool's connections on
    every request: one pool of a hundred cost more CPU than the rest of the worker)."""
    gateway_for = gateways_by_tenant("http://127.0.0.1:9", "sk-default", {"acme": "sk-acme"},
                                     shards=3)
    acme = [gateway_for("acme") for _ in range(6)]
    others = [gateway_for(tenant) for tenant in ("globex", "initech", "globex", "globex")]
    assert acme[:3] == acme[3:] and len({id(g) for g in acme}) == 3  # in turn, 3 pools
    assert len({id(g.client._client) for g in acme}) == 3  # each its own httpx client
    assert {g.client.api_key for g in acme} == {"sk-acme"}
    assert {g.client.api_key for g in others} == {"sk-default"}
    assert others[3] is others[0] and not {id(g) for g in others} & {id(g) for g in acme}
    assert GATEWAY_SHARDS == 8
