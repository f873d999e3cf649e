"""The Dramatiq broker: Redis, with our middleware policy.

- **Retries**: an unexpected error (PostgreSQL away, a bug) is retried with
  exponential backoff up to ``max_retries`` times; an invalid message or agents
  file never is (retrying cannot fix it). A provider outage is not an error at
  all here: the service answers politely and the message completes.
- **TimeLimit**: one message's run is stopped after ``time_limit_ms``.
- **AgeLimit**, **ShutdownNotifications**, **Callbacks**, **Pipelines**: Dramatiq's defaults.
- **Results** in Redis: each actor's return value (the :class:`~worker.models.Reply`).
- Dead workers' messages are requeued after ``heartbeat_ms`` (at-least-once).
"""

from __future__ import annotations

from collections.abc import Callable

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

from worker.agents import AgentConfigError
from worker.settings import WorkerSettings

__all__ = [
    "MAX_BACKOFF_MS", "MIN_BACKOFF_MS", "RESULT_TTL_MS", "build_broker", "middleware",
    "should_retry",
]

MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 60_000
RESULT_TTL_MS = 24 * 3600 * 1000
PERMANENT_ERRORS = (ValidationError, AgentConfigError)


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
        url=settings.redis_url, namespace=f"{settings.namespace}:dramatiq",
                         middleware=middleware(settings), heartbeat_timeout=settings.heartbeat_ms,
                         maintenance_chance=settings.maintenance_chance)
    # redis-py 8 defaults to a 5 s socket timeout, shorter than a blocking get_result
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=None)
    backend = RedisBackend(client=client, namespace=f"{settings.namespace}:results")
    broker.add_middleware(Results(  # type: ignore[no-untyped-call]
        backend=backend, store_results=True, result_ttl=RESULT_TTL_MS))
    return broker
