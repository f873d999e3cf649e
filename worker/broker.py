"""The Dramatiq broker: Redis, with our middleware policy.

- **Retries**: an unexpected error (PostgreSQL away, a bug) is retried with
  exponential backoff up to ``max_retries`` times; an invalid message, a
  :class:`~worker.errors.WorkerConfigError` (settings, agents or tenant keys file)
  or a refusal by the gateway never is (retrying cannot fix it). A provider outage
  is not an error at all here: the service answers politely and the message completes.
- **TimeLimit**: one message's run is stopped after ``time_limit_ms``.
- **AgeLimit**, **ShutdownNotifications**, **Callbacks**, **Pipelines**: Dramatiq's defaults.
- **Results** in Redis: each actor's return value (the :class:`~worker.models.Reply`).
- **AsyncIO** (:class:`AsyncIOWaits`): the actors are coroutines on one event loop
  per worker process (``--threads`` bounds how many messages a process holds at once;
  the threads only wait, and look for an interrupt (a time limit, a shutdown) every
  ``INTERRUPT_CHECK_SECONDS``, not Dramatiq's 0.1 s: 100 waiting threads woke 1000
  times a second, each wake-up taking the GIL from the loop). **CurrentMessage**: an
  answer's default decision id is its message id.
- **Redelivery**: a dead worker's unacked messages are requeued by Dramatiq's
  queue maintenance once its heartbeat is ``heartbeat_ms`` old. Stock Dramatiq runs
  maintenance only at random (``maintenance_chance``, 1 command in 1000), which
  took 12-28 minutes on an idle queue; :class:`Maintenance` runs it (and sends
  this process's heartbeat, even when all its threads are busy) every
  ``MAINTENANCE_INTERVAL_MS``, so messages are back within ``heartbeat_ms`` plus
  about a second. It also gives back, within about two seconds, messages this live
  process fetched but never received (:mod:`worker.reclaim`: a Redis crash during a
  fetch, a consumer restarted after a long outage); stock Dramatiq waits for the
  process to die.
- **Stopping** (:class:`StopInTime`): SIGTERM to the whole process group (systemd's
  default) reaches a worker process twice, from the group and from Dramatiq's main
  process, and Dramatiq takes the second as "exit now" inside its own shutdown, which
  hung for more than 90 s. A worker process takes the first SIGTERM only, stops
  gracefully, and exits hard ``STOP_GRACE_SECONDS`` after it at the latest. A message
  cut short that way is redelivered after the heartbeat (run leases and tool call
  claims make that safe, see docs/workers.md).
- **Stack dumps** (:class:`~worker.stacks.StackDumps`): ``SIGUSR1`` to a worker
  process logs what each of its threads and runs is waiting on.
- **Rate limits**: :class:`~worker.errors.RetryLater` becomes ``dramatiq.Retry``
  with the gateway's ``Retry-After`` as the delay (up to ``RATE_LIMIT_RETRIES`` times).
- **Redis restarts**: every client (broker, results, the worker's store; see
  :func:`redis_client`) retries a command through a connection failure for up to
  ``REDIS_OUTAGE_SECONDS``. Without it, a message being worked on when Redis went
  away failed, its retry could not be queued (Redis down) and it was then acked:
  lost. With it, the run waits for Redis and goes on.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
import redis
import redis.asyncio as aioredis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
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

from worker.errors import GatewayRefusedError, InvalidMessage, WorkerConfigError
from worker.logs import LogPolicy
from worker.reclaim import Reclaimer
from worker.settings import WorkerSettings
from worker.stacks import StackDumps

__all__ = [
    "INTERRUPT_CHECK_SECONDS", "MAINTENANCE_INTERVAL_MS", "MAX_BACKOFF_MS", "MIN_BACKOFF_MS",
    "RATE_LIMIT_RETRIES", "REDIS_OUTAGE_SECONDS", "RESULT_TTL_MS", "STOP_GRACE_SECONDS",
    "AsyncIOWaits", "Maintenance",
    "PoolRedisBroker", "StopInTime", "ToolThreads",
    "async_redis_client", "build_broker",
    "middleware", "persistence_warning", "redis_client", "should_retry",
]

log = logging.getLogger(__name__)

MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 60_000
RESULT_TTL_MS = 24 * 3600 * 1000
PERMANENT_ERRORS = (ValidationError, WorkerConfigError, GatewayRefusedError, InvalidMessage)
RATE_LIMIT_RETRIES = 10  # redeliveries of a rate-limited message (each after Retry-After)
MAINTENANCE_INTERVAL_MS = 1_000  # queue maintenance and heartbeat, per worker process
REDIS_OUTAGE_SECONDS = 30.0  # how long a Redis command waits for Redis to come back
REDIS_RETRY_PAUSE = 0.5  # longest pause between two tries (first: 50 ms, doubling)
STOP_GRACE_SECONDS = 8.0  # a worker process exits this long after SIGTERM at the latest
EXIT_KILLED = 1  # Dramatiq's RET_KILLED
# how often a worker thread waiting for its coroutine looks for an interrupt (Dramatiq: 0.1)
INTERRUPT_CHECK_SECONDS = 1.0


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client whose commands ride out a Redis restart of up to ``REDIS_OUTAGE_SECONDS``
    (connection refused or dropped, ``LOADING`` while Redis reads its AOF)."""
    retries = int(REDIS_OUTAGE_SECONDS / REDIS_RETRY_PAUSE) + 4
    retry = Retry(ExponentialBackoff(cap=REDIS_RETRY_PAUSE, base=0.05), retries)
    return redis.Redis.from_url(url, retry=retry, **options)


def async_redis_client(url: str, **options: Any) -> aioredis.Redis:
    """The ``redis.asyncio`` twin of :func:`redis_client` (same outage ride-out)."""
    from redis.asyncio.retry import Retry as AsyncRetry

    retries = int(REDIS_OUTAGE_SECONDS / REDIS_RETRY_PAUSE) + 4
    retry = AsyncRetry(ExponentialBackoff(cap=REDIS_RETRY_PAUSE, base=0.05), retries)
    return aioredis.Redis.from_url(url, retry=retry, **options)


def persistence_warning(client: redis.Redis) -> str | None:
    """A warning when Redis keeps nothing on disk (no AOF, no RDB snapshots): a
    restart then loses every queued message and pending confirmation. ``None`` when
    it persists, or when it does not let us ask (``CONFIG`` disabled)."""
    try:
        aof: Any = client.config_get("appendonly")
        rdb: Any = client.config_get("save")
    except redis.RedisError:
        return None
    if aof.get("appendonly") == "yes" or (rdb.get("save") or "").strip():
        return None
    return ("warning: Redis keeps nothing on disk (appendonly no, no RDB save points): a Redis "
            "restart loses every queued message and pending confirmation. See README.md, "
            "'Production Redis settings'.")


def should_retry(max_retries: int) -> Callable[[int, BaseException], bool]:
    def retry_when(retries: int, exc: BaseException) -> bool:
        if isinstance(exc, dramatiq.Retry):
            return retries < RATE_LIMIT_RETRIES
        return retries < max_retries and not isinstance(exc, PERMANENT_ERRORS)
    return retry_when


class PoolRedisBroker(RedisBroker):
    """Dramatiq's Redis broker, with queue maintenance on demand (:meth:`maintain`)
    and the process's lost fetches given back (:meth:`reclaim`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self._forced = threading.local()
        self.reclaimer = Reclaimer()

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        return self.reclaimer.track(super().consume(queue_name, prefetch, timeout))

    def reclaim(self) -> int:
        """Requeue messages this process fetched but none of its consumers holds
        (:mod:`worker.reclaim`); how many."""
        return self.reclaimer.run(self)

    def _should_do_maintenance(self, command: str) -> int:
        if getattr(self._forced, "on", False):
            return 1
        return int(super()._should_do_maintenance(command))

    def maintain(self) -> None:
        """Requeue dead workers' unacked messages now (every declared queue, delay
        queues too) and refresh this process's heartbeat."""
        self._forced.on = True
        try:
            for queue in sorted(self.get_declared_queues() | self.get_declared_delay_queues()):
                self.do_qsize(queue)
        finally:
            self._forced.on = False


class AsyncIOWaits(AsyncIO):
    """Dramatiq's AsyncIO middleware, whose worker threads, each waiting for its
    message's coroutine, look for an interrupt (``TimeLimit``, a shutdown) every
    ``interval`` seconds instead of every 0.1 s: a time limit or a stop takes effect
    up to ``interval`` later, and a worker holding 100 messages wakes 100 times a
    second instead of 1000 (CPU per message: bench/README.md, section 4)."""

    def __init__(self, interval: float = INTERRUPT_CHECK_SECONDS) -> None:
        super().__init__()
        self.interval = interval

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        super().before_worker_boot(broker, worker)  # type: ignore[no-untyped-call]
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.interrupt_check_ival = self.interval


class ToolThreads(Middleware):
    """Bounds the event loop's default executor, where sync tools run
    (``asyncio.to_thread``), to ``threads`` threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            executor = ThreadPoolExecutor(self.threads, thread_name_prefix="pool-tool")
            loop_thread.loop.call_soon_threadsafe(loop_thread.loop.set_default_executor,
                                                  executor)


class StopInTime(Middleware):
    """In a worker process: the first SIGTERM stops it (Dramatiq's handler), a repeated
    one is ignored, and the process exits hard ``grace`` seconds after the first."""

    def __init__(self, grace: float = STOP_GRACE_SECONDS) -> None:
        self.grace = grace
        self.stopping = False

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # not a `dramatiq` worker process (a test's Worker)
        dramatiqs = signal.getsignal(signal.SIGTERM)
        if not callable(dramatiqs):
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            if self.stopping:  # the same stop, delivered again (group + main process)
                return
            self.stopping = True
            timer = threading.Timer(self.grace, os._exit, args=(EXIT_KILLED,))
            timer.daemon = True
            timer.start()
            dramatiqs(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


class Maintenance(Middleware):
    """Runs :meth:`PoolRedisBroker.maintain` every ``interval_ms`` in a worker process."""

    def __init__(self, interval_ms: int = MAINTENANCE_INTERVAL_MS) -> None:
        self.interval = interval_ms / 1000
        self.stopped = threading.Event()

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        if isinstance(broker, PoolRedisBroker):
            threading.Thread(target=self._loop, args=(broker,), name="pool-maintenance",
                             daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self.stopped.set()

    def _loop(self, broker: PoolRedisBroker) -> None:
        while not self.stopped.wait(self.interval):
            try:
                broker.maintain()
                broker.reclaim()
            except redis.RedisError as exc:  # Redis away: the next round tries again
                log.warning("queue maintenance failed: %s", exc)


def middleware(settings: WorkerSettings) -> list[Middleware]:
    """Dramatiq's default middleware, with our retry policy and time limit, AsyncIO
    and CurrentMessage."""
    return [
        AgeLimit(), TimeLimit(time_limit=settings.time_limit_ms), ShutdownNotifications(),
        Callbacks(), Pipelines(),
        Retries(max_retries=settings.max_retries, min_backoff=MIN_BACKOFF_MS,
                max_backoff=MAX_BACKOFF_MS, retry_when=should_retry(settings.max_retries)),
        AsyncIOWaits(), CurrentMessage(), ToolThreads(settings.tool_threads), LogPolicy(),
        StopInTime(), StackDumps(),
    ]


def build_broker(settings: WorkerSettings) -> PoolRedisBroker:
    broker = PoolRedisBroker(
        client=redis_client(settings.redis_url), namespace=f"{settings.namespace}:dramatiq",
        middleware=[*middleware(settings), Maintenance()], heartbeat_timeout=settings.heartbeat_ms)
    # redis-py 8 defaults to a 5 s socket timeout, shorter than a blocking get_result
    client = redis_client(settings.redis_url, socket_timeout=None)
    backend = RedisBackend(client=client, namespace=f"{settings.namespace}:results")
    broker.add_middleware(Results(  # type: ignore[no-untyped-call]
        backend=backend, store_results=True, result_ttl=RESULT_TTL_MS))
    return broker
