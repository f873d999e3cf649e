"""A message a live worker process fetched but never received (Redis crashed after the
fetch ran, before its reply arrived) is answered within seconds, not when the process
dies: :mod:`worker.reclaim` requeues it. The lost fetch is set up exactly: the message
stored and in the worker process's acknowledgement set, in no queue."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from tests.integration.worker_harness import WorkerCluster, result, script
from tests.worker.test_reclaim import lost_in_a_fetch
from worker.broker import PoolRedisBroker
from worker.models import InboundMessage

pytestmark = pytest.mark.integration


def _worker_broker_id(cluster: WorkerCluster, broker: PoolRedisBroker) -> str:
    client = redis.Redis.from_url(cluster.settings.redis_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ids = {m.decode() for m in client.zrange(f"{broker.namespace}:__heartbeats__", 0, -1)}
        others = ids - {broker.broker_id}
        if len(others) == 1:
            return others.pop()
        time.sleep(0.1)
    raise AssertionError("the worker process sent no heartbeat")


def test_a_message_lost_in_a_fetch_is_answered_while_the_worker_lives(
        cluster: WorkerCluster) -> None:
    worker = cluster.start()
    actor = cluster.actors.handle_message
    broker = actor.broker
    assert isinstance(broker, PoolRedisBroker)
    owner = _worker_broker_id(cluster, broker)
    conversation = f"lost-fetch-{uuid.uuid4().hex[:8]}"
    inbound = InboundMessage(tenant="acme", conversation_id=conversation, agent_id="tester",
                             text="hello " + script({"text": "found again"}),
                             message_id=uuid.uuid4().hex)
    message = actor.message(inbound.model_dump())
    lost_in_a_fetch(broker, message, owner)
    reply = result(cluster._tag(message), timeout_ms=20_000)
    assert (reply["status"], reply["text"]) == ("completed", "found again")
    assert "fetched but never received" in worker.text()
