"""The service's counters (worker/counters.py) on the real service, PostgreSQL and Redis,
read from a private Prometheus registry: what the expire actor found, and labels bounded
by the agents file. (The counts after real traffic: tests/integration/test_worker_metrics.py.)"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import prometheus_client as prom
import pytest
import redis

from worker.agents import AgentSpec
from worker.counters import UNKNOWN, Counters
from worker.db import WorkerDB
from worker.models import ExpireMessage, InboundMessage
from worker.redis_store import RedisStore
from worker.service import ConversationService
from worker.settings import WorkerSettings


@pytest.fixture
def counted(pg_url: str, redis_url: str, redis_prefix: str
            ) -> Iterator[tuple[ConversationService, prom.CollectorRegistry]]:
    registry, counters = prom.CollectorRegistry(), Counters()
    counters.enable(registry)
    db = WorkerDB(pg_url, max_size=1)
    store = RedisStore(redis.Redis.from_url(redis_url), redis_prefix)
    agents: dict[str, Any] = {"helper": (AgentSpec(name="H", alias="fast"), [])}
    yield ConversationService(WorkerSettings(namespace=redis_prefix), db, store, agents,
                              lambda _tenant: None,  # type: ignore[arg-type,return-value]
                              counters), registry
    db.close()


def _value(registry: prom.CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _pending(service: ConversationService, conv: str, message_id: str, *, expires_in: float,
             resumed_by: str | None = None) -> None:
    record = {"message": {"message_id": message_id}, "expires_at": time.time() + expires_in,
              "resumed_by": resumed_by, "calls": [], "decisions": {}}
    service.store.client.set(service.store.pending_key(conv), json.dumps(record), ex=60)


def test_expire_runs_say_what_they_found(
        counted: tuple[ConversationService, prom.CollectorRegistry]) -> None:
    service, registry = counted
    conv, message = f"c-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    due = ExpireMessage(conversation_id=conv, message_id=message)
    _pending(service, conv, message, expires_in=60)
    assert asyncio.run(service.expire(due)) is None
    _pending(service, conv, message, expires_in=-1, resumed_by="d1")  # decided in time
    assert asyncio.run(service.expire(due)) is None
    service.store.client.delete(service.store.pending_key(conv))
    assert asyncio.run(service.expire(due)) is None  # ended already
    runs = {r: _value(registry, "pool_worker_expire_runs_total", result=r)
            for r in ("early", "decided", "gone", "expired")}
    assert runs == {"early": 1, "decided": 1, "gone": 1, "expired": 0}


def test_an_unknown_agent_is_counted_under_one_label(
        counted: tuple[ConversationService, prom.CollectorRegistry]) -> None:
    service, registry = counted
    for agent in ("nobody", "nobody-else"):
        message = InboundMessage(tenant="acme", conversation_id=f"c-{uuid.uuid4().hex[:8]}",
                                 agent_id=agent, text="hi", message_id=uuid.uuid4().hex)
        assert asyncio.run(service.handle(message)).status == "failed"
    assert _value(registry, "pool_worker_turns_total", agent=UNKNOWN, outcome="failed") == 2
    assert _value(registry, "pool_worker_turns_total", agent="nobody", outcome="failed") == 0
