"""One resume per saved confirmation, through the same protocol (:class:`sdk.ResumeStore`)
in both implementations: the SDK's in-memory default and the worker's Redis store
(the one the worker's ``confirm`` actor resumes through); sync and async resumes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sdk import (
    Agent,
    AsyncResumeStore,
    ConfirmationError,
    InMemoryResumeStore,
    Outcome,
    PendingConfirmation,
    ResumeStore,
    tool,
)
from tests.sdk.fakes import FakeProxy, chat
from worker.lease import Lease, LeaseLost
from worker.resumes import RedisResumeStore

pytestmark = pytest.mark.integration  # the Redis store needs Redis

ran: list[str] = []


@tool(requires_confirmation=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    ran.append(f"refund {order_id}")
    return f"refunded {order_id}"


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
          ) -> Iterator[ResumeStore]:
    ran.clear()
    if request.param == "memory":
        yield InMemoryResumeStore()
    else:
        yield RedisResumeStore(redis.Redis.from_url(redis_url), redis_prefix)


def _agent(proxy: FakeProxy, store: ResumeStore, *, sync: bool) -> Agent:
    return Agent(name="support", alias="fast", tools=[refund], resume_store=store,
                 gateway=proxy.gateway() if sync else proxy.async_gateway())


def _paused(run_id: str) -> str:
    proxy = FakeProxy(chat(None, [("refund", {"order_id": 9}, "a")]))
    result = Agent(name="support", alias="fast", tools=[refund],
                   gateway=proxy.gateway()).run("refund 9", run_id=run_id)
    assert result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None
    return result.pending.to_json()


@pytest.mark.parametrize("sync", [True, False], ids=["resume", "aresume"])
def test_a_saved_confirmation_is_resumed_once(store: ResumeStore, sync: bool) -> None:
    assert isinstance(store, AsyncResumeStore)  # both have the coroutine twins
    saved = _paused(f"run-{uuid.uuid4().hex[:8]}")
    proxy = FakeProxy(chat("Refunded."))

    def resume() -> Any:
        agent = _agent(proxy, store, sync=sync)
        pending = PendingConfirmation.from_json(saved)
        if sync:
            return agent.resume(pending, approved=True)
        return asyncio.run(agent.aresume(pending, approved=True))

    first, again = resume(), resume()
    assert ran == ["refund 9"]  # the approved tool ran once
    assert len(proxy.requests) == 1  # and the model was asked once
    assert again.text == first.text == "Refunded." and again.outcome is Outcome.COMPLETED
    assert [c.usage for c in again.llm_calls] == [c.usage for c in first.llm_calls]


def test_a_resume_still_running_is_refused(store: ResumeStore) -> None:
    saved = _paused(f"run-{uuid.uuid4().hex[:8]}")
    assert store.claim(PendingConfirmation.from_json(saved).resume_key)  # someone else
    with pytest.raises(ConfirmationError, match="resumed already"):
        asyncio.run(_agent(FakeProxy(chat("x")), store, sync=False).aresume(
            PendingConfirmation.from_json(saved), approved=True))
    assert ran == []


def test_the_worker_store_takes_over_only_under_a_newer_lease(redis_url: str,
                                                              redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    dead = RedisResumeStore(client, redis_prefix, lease=Lease("m1", "token-dead"))
    assert dead.claim("m1:1:call_a")  # its worker dies before finishing
    assert not RedisResumeStore(client, redis_prefix).claim("m1:1:call_a")  # no lease: no
    heir = RedisResumeStore(client, redis_prefix, lease=Lease("m1", "token-heir"))
    assert heir.claim("m1:1:call_a")  # holds the run's lease now: takes it over
    heir.finish("m1:1:call_a", '{"done": 1}')
    for late in (dead, RedisResumeStore(client, redis_prefix, lease=Lease("m1", "token-3"))):
        assert not late.claim("m1:1:call_a")  # finished: nobody resumes it again
        assert late.result("m1:1:call_a") == '{"done": 1}'
    assert 0 < int(client.ttl(heir.key("m1:1:call_a"))) <= heir.ttl
    lost = RedisResumeStore(client, redis_prefix, lease=Lease("m2", "t", lost=True))
    with pytest.raises(LeaseLost):
        lost.claim("m2:1:call_b")
