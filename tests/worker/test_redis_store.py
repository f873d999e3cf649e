"""Retention of what the worker keeps in Redis (real Redis, a scratch prefix)."""

from __future__ import annotations

import redis

from worker.models import Event
from worker.redis_store import RedisStore
from worker.settings import DEFAULT_EVENT_RETENTION, WorkerSettings


def test_an_event_stream_expires_after_its_retention(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisStore(client, redis_prefix, retention=120)
    event = Event(type="received", conversation_id="c-ret", message_id="m-1", data={})
    assert store.append_event(event, "run:1")
    key = store.stream_key("c-ret")
    assert 0 < int(client.ttl(key)) <= 120
    client.expire(key, 5)  # a later event renews the retention
    assert store.append_event(event.model_copy(update={"message_id": "m-2"}), "run:1")
    assert int(client.ttl(key)) > 5
    channel = f"{redis_prefix}:replies"
    store.append_event(event.model_copy(update={"message_id": "m-3"}), "run:reply",
                       stream=channel)
    assert 0 < int(client.ttl(channel)) <= 120  # a reply channel expires too


def test_the_retention_setting_and_its_default() -> None:
    assert WorkerSettings(event_retention=3600).event_retention == 3600
    assert WorkerSettings().event_retention == DEFAULT_EVENT_RETENTION == 7 * 24 * 3600
