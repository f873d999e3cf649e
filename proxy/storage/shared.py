"""The gateway's Redis (``POOL_REDIS_URL``): state shared by every proxy process and replica.

:class:`SharedRedis` wraps one ``redis.asyncio`` client with short timeouts and
tracks whether Redis answers. A failed call marks Redis *down*: a warning is
logged once per outage, :attr:`SharedRedis.degraded` turns True (shown to
clients as ``x-pool-limits: local``), and for ``RETRY_AFTER`` seconds calls fail
at once with :class:`SharedDown` instead of each paying a timeout; callers then
fall back to per-process state (or refuse, ``POOL_LIMITS_FAIL_CLOSED=1``). The
first call that succeeds again logs the recovery.

Every key lives under ``<POOL_NAMESPACE>:gw:<database name>:`` (:func:`gateway_prefix`):
two deployments, or two test runs, on one Redis never mix their tenants.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from proxy.errors import ProxyError

__all__ = ["REDIS_ERRORS", "SharedDown", "SharedRedis", "gateway_prefix", "safe_url"]

log = logging.getLogger("llm_pool.shared")

RETRY_AFTER = 1.0  # seconds without trying Redis again after a failure
RETRIES = 2  # quick retries of a failed call before Redis counts as down
MAX_CONNECTIONS = 32  # per process; requests wait for a free one (Redis calls are short)
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
T = TypeVar("T")


def gateway_prefix(namespace: str, database_url: str) -> str:
    """The prefix of the gateway's Redis keys: its tenants are those of one database."""
    database = urlsplit(database_url).path.strip("/") or "postgres"
    return f"{namespace}:gw:{database}"


class SharedDown(ProxyError):
    """Redis is unreachable (or was, less than ``RETRY_AFTER`` seconds ago)."""


class SharedRedis:
    def __init__(self, url: str, prefix: str, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._clock = clock
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, health_check_interval=30,
            # one stalled event loop (a CPU-bound burst) must not look like an outage
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), RETRIES),
            retry_on_error=[ConnectionError, TimeoutError])
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._down_since: float | None = None
        self._retry_at = 0.0

    def key(self, *parts: object) -> str:
        return ":".join((self.prefix, *(str(p) for p in parts)))

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def script(self, source: str) -> Any:
        """A Lua script (EVALSHA, reloaded by itself after a Redis restart)."""
        return self.client.register_script(source)

    async def call(self, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """``operation(client)``, or :class:`SharedDown` if Redis does not answer."""
        if self._down_since is not None and self._clock() < self._retry_at:
            raise SharedDown()
        try:
            result = await operation(self.client)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            raise SharedDown() from exc
        if self._down_since is not None:
            log.warning("shared state: Redis is back after %.1f s; limits are shared again",
                        self._clock() - self._down_since)
            self._down_since = None
        return result

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = self._clock() + RETRY_AFTER
        if self._down_since is None:
            self._down_since = self._clock()
            log.warning("shared state: Redis at %s is unreachable (%s: %s); limits, "
                        "reservations and the spend journal fall back to this process",
                        safe_url(self.url), type(exc).__name__, exc)


def safe_url(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    return f"{head.split('//')[0]}//***@{tail}" if sep else url
