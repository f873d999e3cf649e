"""The actors on Dramatiq's StubBroker (in-process worker), with the real service on
PostgreSQL and Redis, and the proxy faked at the HTTP transport."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import httpx
import openai
import pytest
import redis
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.results import Results
from dramatiq.results.backends import StubBackend
from pydantic import ValidationError

from sdk import AsyncGateway, tool
from tests.sdk.fakes import BASE_URL, FAST_RETRY, chat, error
from worker.actors import Actors, declare
from worker.agents import AgentConfigError, AgentSpec
from worker.broker import middleware, should_retry
from worker.db import WorkerDB
from worker.errors import InvalidMessage, TenantKeysError, WorkerSettingsError
from worker.redis_store import RedisStore
from worker.service import NOTHING_PENDING_REPLY, OUTAGE_REPLY, ConversationService
from worker.settings import WorkerSettings


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class FakeProxy:
    """Answers in order; records every request body."""

    def __init__(self) -> None:
        self.answers: list[httpx.Response] = []
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import json

        self.requests.append(json.loads(request.content))
        return self.answers.pop(0) if self.answers else error(500, "no answer scripted")


@pytest.fixture
def proxy() -> FakeProxy:
    return FakeProxy()


@pytest.fixture
def db(pg_url: str) -> Iterator[WorkerDB]:
    database = WorkerDB(pg_url, max_size=2)
    yield database
    database.close()


@pytest.fixture
def stub(proxy: FakeProxy, db: WorkerDB, redis_url: str,
         redis_prefix: str) -> Iterator[tuple[StubBroker, Actors, Worker]]:
    previous = dramatiq.get_broker()
    settings = WorkerSettings(namespace=redis_prefix, memory_max_messages=50)
    broker = StubBroker(middleware=middleware(settings))
    broker.add_middleware(Results(backend=StubBackend()))
    dramatiq.set_broker(broker)  # Message.get_result finds the results backend here
    client = openai.AsyncOpenAI(base_url=BASE_URL, api_key="k",
                                http_client=httpx.AsyncClient(
                                    transport=httpx.MockTransport(proxy)))
    gateway = AsyncGateway(client=client, retry=FAST_RETRY)
    spec = AgentSpec(name="Stubby", alias="fast", tools=["x.add"])
    service = ConversationService(settings, db, RedisStore(redis.Redis.from_url(redis_url),
                                                           redis_prefix),
                                  {"stubby": (spec, [add])}, lambda _tenant: gateway)
    actors = declare(broker, lambda: service)
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    yield broker, actors, worker
    worker.stop()
    broker.close()
    dramatiq.set_broker(previous)


def _message(conv: str, text: str = "hi", agent: str = "stubby",
             message_id: str | None = None) -> dict[str, Any]:
    return {"tenant": "acme", "conversation_id": conv, "agent_id": agent, "text": text,
            "message_id": message_id or uuid.uuid4().hex}


def _run(stub: tuple[StubBroker, Actors, Worker], payload: dict[str, Any]) -> dict[str, Any]:
    broker, actors, worker = stub
    sent = actors.handle_message.send(payload)
    broker.join("conversations", fail_fast=True)
    worker.join()
    value: dict[str, Any] = sent.get_result(block=True, timeout=5000)
    return value


def test_tool_loop_and_redelivery_answers_from_storage(stub: Any, proxy: FakeProxy) -> None:
    conv = f"c-{uuid.uuid4().hex[:8]}"
    proxy.answers = [chat(tool_calls=[("add", {"a": 1, "b": 2}, "x")]), chat("three")]
    payload = _message(conv, "1+2?")
    assert _run(stub, payload)["text"] == "three"
    assert len(proxy.requests) == 2
    assert proxy.requests[1]["messages"][-1]["content"] == "3"
    again = _run(stub, payload)  # the same message delivered again
    assert again["text"] == "three" and again["status"] == "completed"
    assert len(proxy.requests) == 2  # nothing was re-run


def test_invalid_message_is_dead_lettered_without_retry(stub: Any, proxy: FakeProxy) -> None:
    broker, actors, worker = stub
    actors.handle_message.send({"tenant": "acme", "text": "no ids"})
    with pytest.raises(InvalidMessage, match="conversation_id: Field required") as caught:
        broker.join("conversations", fail_fast=True)
    worker.join()
    assert "no ids" not in str(caught.value)  # the fields, never their values
    assert len(broker.dead_letters) == 1
    assert proxy.requests == []


def test_unknown_agent_gets_a_polite_failure(stub: Any, proxy: FakeProxy) -> None:
    reply = _run(stub, _message(f"c-{uuid.uuid4().hex[:8]}", agent="nobody"))
    assert reply["status"] == "failed" and "no agent called 'nobody'" in reply["text"]
    assert proxy.requests == []


def test_outage_is_answered_politely_and_not_retried(stub: Any, proxy: FakeProxy) -> None:
    proxy.answers = [error(503, "all deployments down")] * 3
    reply = _run(stub, _message(f"c-{uuid.uuid4().hex[:8]}"))
    assert reply == {**reply, "status": "failed", "text": OUTAGE_REPLY}
    assert len(proxy.requests) == 1  # the proxy's 503: its retries are spent, not repeated


def test_confirm_with_nothing_pending(stub: Any) -> None:
    broker, actors, worker = stub
    sent = actors.confirm.send({"conversation_id": "c-none", "approved": True})
    broker.join("conversations", fail_fast=True)
    worker.join()
    reply = sent.get_result(block=True, timeout=5000)
    assert reply["status"] == "nothing_pending" and reply["text"] == NOTHING_PENDING_REPLY


def test_retry_policy() -> None:
    retry = should_retry(3)
    assert retry(0, RuntimeError("db away")) and not retry(3, RuntimeError("db away"))
    with pytest.raises(ValidationError) as caught:
        AgentSpec.model_validate({})
    assert not retry(0, caught.value)
    assert not retry(0, AgentConfigError("bad file"))
    assert not retry(0, TenantKeysError("bad keys file"))  # any WorkerConfigError
    assert not retry(0, WorkerSettingsError("POOL_API_KEY", "not set"))


def test_memory_trims_oldest_whole_turns(db: WorkerDB) -> None:
    conv = f"c-{uuid.uuid4().hex[:8]}"
    turn = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None,
             "tool_calls": [{"id": "t", "type": "function",
                             "function": {"name": "add", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "r"},
            {"role": "assistant", "content": "a"}]
    for i in range(3):
        db.save_turn(conv, "acme", f"m{i}", [{**m, "n": i} for m in turn], max_messages=9)
    kept = db.load_memory(conv)
    assert [m["n"] for m in kept] == [1] * 4 + [2] * 4  # turn 0 trimmed whole
    db.save_turn(conv, "acme", "m2", turn, max_messages=9)  # a redelivered turn: no duplicate
    assert len(db.load_memory(conv)) == 8
    db.save_turn(conv, "acme", "m3", turn * 3, max_messages=9)  # alone over the limit: kept
    assert len(db.load_memory(conv)) == 12
