"""The spend journal: spend rows in a Redis Stream, drained into PostgreSQL.

With ``POOL_REDIS_URL`` set, a request's spend row is appended to the stream
``<ns>:gw:spend`` in the same atomic script that settles its reservation
(:mod:`proxy.admission.reservations`), so the row outlives the process the moment the
request is settled: SIGTERM, SIGKILL or a crash lose nothing, even while
PostgreSQL is down (Redis must persist, e.g. AOF, for the journal to survive a
Redis crash too).

Every proxy process runs one :class:`SpendJournal` drainer, a consumer of the
group ``writers``: it takes a batch (its own unacknowledged entries first, then
entries another consumer has held unwritten for ``POOL_JOURNAL_CLAIM_IDLE``
seconds, e.g. a killed process, then new ones), inserts the rows in one
transaction (idempotent on ``request_id``, so a batch written twice lands once),
then acknowledges and deletes the entries. While PostgreSQL is down it retries
with a capped backoff; the entries wait in Redis.

Off the request path but on the proxy's CPU: under load the drainer looks for its own
and others' stale entries at start, after a failure and every half ``claim_idle``
(not before every batch: two Redis calls saved per batch), and after a batch smaller
than ``batch_size`` it waits :data:`LINGER` seconds so that the next one is fuller
(fewer PostgreSQL transactions per row).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from proxy.spend.rows import SpendRow, row_from_json
from proxy.storage.shared import REDIS_ERRORS

__all__ = ["GROUP", "SpendJournal"]

log = logging.getLogger("llm_pool.journal")

GROUP = "writers"
BLOCK_MS = 1000  # a drainer waits this long for new entries
INITIAL_RETRY = 0.1
LINGER = 0.05  # seconds a drainer waits after a partial batch, to write fuller ones
TIDY_EVERY = 600.0  # seconds between removals of consumers that left (restarted processes)
CONSUMER_GONE_MS = 3_600_000  # a consumer idle this long with nothing pending is removed
Write = Callable[[Sequence[SpendRow]], Awaitable[None]]
Entry = tuple[Any, dict[bytes, bytes] | None]


class SpendJournal:
    def __init__(self, *, url: str, stream: str, write: Write, batch_size: int,
                 claim_idle: float, retry_max: float) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=BLOCK_MS / 1000 + 5, socket_connect_timeout=2)
        self.stream = stream
        self._write = write
        self._batch = batch_size
        self._claim_idle_ms = int(claim_idle * 1000)
        self._retry_max = retry_max
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._group_ready = False
        self._tidy_at = time.monotonic() + TIDY_EVERY
        self._stale_at = 0.0  # when to look for own pending and others' idle entries
        self.written = 0

    def start(self) -> None:
        """Start draining (once, in the running loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="spend-journal")

    async def _run(self) -> None:
        delay = INITIAL_RETRY
        while True:
            try:
                entries = await self._next_batch()
                if entries:
                    await self._store(entries)
                elif time.monotonic() >= self._tidy_at:
                    await self._forget_idle_consumers()
                self._recovered()
                delay = INITIAL_RETRY
                if 0 < len(entries) < self._batch:
                    await asyncio.sleep(LINGER)
            except (*REDIS_ERRORS, psycopg.Error) as exc:
                self._stale_at = 0.0  # the batch stays pending: read it again first
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _next_batch(self) -> list[Entry]:
        await self._ensure_group()
        try:
            return await self._read()
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost its data (restarted without persistence)
                self._group_ready = False
                return []
            raise

    async def _read(self) -> list[Entry]:
        if time.monotonic() >= self._stale_at:
            stale = await self._read_stale()
            if stale:
                return stale  # and look again next time: there may be more
            self._stale_at = time.monotonic() + max(self._claim_idle_ms / 2000, 0.5)
        new: Any = await self._client.xreadgroup(GROUP, self.consumer, {self.stream: ">"},
                                                 count=self._batch, block=BLOCK_MS)
        return list(new[0][1]) if new else []

    async def _read_stale(self) -> list[Entry]:
        """Own unacknowledged entries, else entries idle past ``claim_idle`` elsewhere."""
        mine: Any = await self._client.xreadgroup(GROUP, self.consumer, {self.stream: "0"},
                                                  count=self._batch)
        if mine and mine[0][1]:
            return list(mine[0][1])
        claimed: Any = await self._client.xautoclaim(self.stream, GROUP, self.consumer,
                                                self._claim_idle_ms, "0-0", count=self._batch)
        return list(claimed[1]) if claimed[1] else []

    async def _store(self, entries: list[Entry]) -> None:
        rows = [row_from_json(fields[b"row"]) for _, fields in entries
                if fields and b"row" in fields]
        if rows:
            await self._write(rows)
        ids = [entry_id for entry_id, _ in entries]
        await self._client.xack(self.stream, GROUP, *ids)
        await self._client.xdel(self.stream, *ids)
        self.written += len(rows)

    async def _forget_idle_consumers(self) -> None:
        self._tidy_at = time.monotonic() + TIDY_EVERY
        consumers: Any = await self._client.xinfo_consumers(self.stream, GROUP)
        for consumer in consumers:
            if consumer["pending"] == 0 and consumer["idle"] > CONSUMER_GONE_MS:
                await self._client.xgroup_delconsumer(self.stream, GROUP, consumer["name"])

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("spend journal: cannot drain %s (%s: %s); the rows wait in Redis",
                        self.stream, type(exc).__name__, exc)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("spend journal: draining again after %.1f s",
                        time.monotonic() - self._failing_since)
            self._failing_since = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._client.aclose()
