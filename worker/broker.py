"""The Dramatiq broker: Redis, with our middleware policy.

- **Retries**: an unexpected error (PostgreSQL away, a bug) is retried with
  exponential backoff up to ``max_retries`` times; an invalid message or agents
  file never is (retrying cannot fix it). A provider outage is not an error at
  all here: the service answers politely and the message completes.
- **TimeLimit**: one message's run is stopped after ``time_limit_ms``.
- **AgeLimit**, **ShutdownNotifications**, **Callbacks**, **Pipelines**: Dramatiq's defaults.
- **Results** in Redis: each actor's return value (the :class:`~worker.models.Reply`).
- Dead workers' messages are requeued after ``heartbeat_ms`` (at-least-once).
- **Redis restarts**: every client (broker, results, the worker's store; see
  :func:`redis_client`) retries a command through a connection failure for up to
  ``REDIS_OUTAGE_SECONDS``. Without it, a message being worked on when Redis went
  away failed, its retry could not be queued (Redis down) and it was then acked:
  lost. With it, the run waits for Redis and goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from pydantic import ValidationError
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.agents import AgentConfigError
from worker.settings import WorkerSettings

__all__ = [
    "MAX_BACKOFF_MS", "MIN_BACKOFF_MS", "REDIS_OUTAGE_SECONDS", "RESULT_TTL_MS", "build_broker",
    "middleware", "redis_client", "should_retry",
]

MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 60_000
RESULT_TTL_MS = 24 * 3600 * 1000
PERMANENT_ERRORS = (ValidationError, AgentConfigError)
REDIS_OUTAGE_SECONDS = 30.0  # how long a Redis command waits for Redis to come back
REDIS_RETRY_PAUSE = 0.5  # longest pause between two tries (first: 50 ms, doubling)


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client whose commands ride out a Redis restart of up to ``REDIS_OUTAGE_SECONDS``
    (connection refused or dropped, ``LOADING`` while Redis reads its AOF)."""
    retries = int(REDIS_OUTAGE_SECONDS / REDIS_RETRY_PAUSE) + 4
    retry = Retry(ExponentialBackoff(cap=REDIS_RETRY_PAUSE, base=0.05), retries)
    return redis.Redis.from_url(url, retry=retry, **options)


def should_retry(max_retries: int) -> Callable[[int, BaseException], bool]:
    def retry_when(retries: int, exc: BaseException) -> bool:
        return retries < max_retries and not isinstance(exc, PERMANENT_ERRORS)
    return retry_when


def middleware(settings: WorkerSettings) -> list[Middleware]:
    """Dramatiq's default middleware, with our retry policy and time limit."""
    return [
        AgeLimit(), TimeLimit(time_limit=settings.time_limit_ms), ShutdownNotifications(),
        Callbacks(), Pipelines(),
        Retries(max_retries=settings.max_retries, min_backoff=MIN_BACKOFF_MS,
                max_backoff=MAX_BACKOFF_MS, retry_when=should_retry(settings.max_retries)),
    ]


def build_broker(settings: WorkerSettings) -> RedisBroker:
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=redis_client(settings.redis_url), namespace=f"{settings.namespace}:dramatiq",
        middleware=middleware(settings), heartbeat_timeout=settings.heartbeat_ms,
        maintenance_chance=settings.maintenance_chance)
    # redis-py 8 defaults to a 5 s socket timeout, shorter than a blocking get_result
    client = redis_client(settings.redis_url, socket_timeout=None)
    backend = RedisBackend(client=client, namespace=f"{settings.namespace}:results")
    broker.add_middleware(Results(  # type: ignore[no-untyped-call]
        backend=backend, store_results=True, result_ttl=RESULT_TTL_MS))
    return broker
