"""Messages a live worker process fetched but never received are requeued
(:mod:`worker.reclaim`), on a real Redis with Dramatiq's own consumer; a message the
consumer holds (prefetched, or handed out and not acknowledged) is left alone. A real
worker process answering such a message: tests/integration/test_worker_lost_fetch.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Message

from worker.broker import PoolRedisBroker, redis_client

QUEUE = "default"


@pytest.fixture
def broker(redis_url: str, redis_prefix: str) -> Iterator[PoolRedisBroker]:
    running = PoolRedisBroker(client=redis_client(redis_url), namespace=redis_prefix)
    running.declare_queue(QUEUE)
    yield running
    running.close()


def _message(label: str) -> Message[Any]:
    return Message(queue_name=QUEUE, actor_name="noop", args=(label,), kwargs={}, options={})


def lost_in_a_fetch(broker: PoolRedisBroker, message: Message[Any], owner: str) -> str:
    """Leave ``message`` as a fetch whose reply never arrived leaves it: stored, in
    ``owner``'s acknowledgement set, in no queue. Its Redis id."""
    redis_id = str(uuid.uuid4())
    stored = message.copy(options={"redis_message_id": redis_id})
    pipe = broker.client.pipeline(transaction=True)
    pipe.hset(f"{broker.namespace}:{message.queue_name}.msgs", redis_id, stored.encode())
    pipe.sadd(f"{broker.namespace}:__acks__.{owner}.{message.queue_name}", redis_id)
    pipe.execute()
    return redis_id


def _next(consumer: Any) -> Any:
    for _ in range(50):
        if (got := next(consumer)) is not None:
            return got
    raise AssertionError("the consumer got nothing")


def test_a_message_no_consumer_holds_is_requeued_on_the_second_round(
        broker: PoolRedisBroker) -> None:
    consumer = broker.consume(QUEUE, prefetch=3, timeout=100)
    broker.enqueue(_message("handed out"))
    broker.enqueue(_message("prefetched"))
    handed = _next(consumer)  # the fetch took both: one handed out, one in the cache
    assert handed.args == ("handed out",) and len(consumer.message_cache) == 1
    lost = lost_in_a_fetch(broker, _message("lost"), broker.broker_id)
    queue_key = f"{broker.namespace}:{QUEUE}"

    assert broker.reclaim() == 0  # first round: it may be a fetch's reply still on its way
    assert broker.client.lrange(queue_key, 0, -1) == []
    assert broker.reclaim() == 1  # second round: no one holds it
    assert broker.client.lrange(queue_key, 0, -1) == [lost.encode()]
    assert broker.reclaim() == 0  # once

    assert _next(consumer).args == ("prefetched",)
    assert _next(consumer).args == ("lost",)  # back, to this very consumer
    consumer.ack(handed)
    assert broker.reclaim() == 0 and broker.reclaim() == 0


def test_another_processs_messages_are_not_touched(broker: PoolRedisBroker) -> None:
    broker.consume(QUEUE, prefetch=1, timeout=100)
    lost_in_a_fetch(broker, _message("someone else's"), "another-worker-process")
    assert broker.reclaim() == 0 and broker.reclaim() == 0
    assert broker.client.lrange(f"{broker.namespace}:{QUEUE}", 0, -1) == []
