"""Spend rows: one per proxied request and one per failed provider attempt of it
(:mod:`proxy.admission.tickets`), built from LiteLLM's ``standard_logging_object`` and
written to PostgreSQL in batches, off the request path.

:class:`SpendWriter` keeps rows in a bounded in-process buffer. A background task
flushes them every ``flush_interval`` seconds, or as soon as ``batch_size`` rows
wait. While PostgreSQL is away the rows stay buffered and the task retries with a
capped backoff; past ``buffer_max`` rows, new rows are dropped, counted and logged.
On SIGTERM/SIGINT (see :mod:`proxy.plugin.gateway`) the buffer is written at once,
synchronously, and rows of requests still draining are written as they come; a
cancelled writer task (loop shutdown) and an ``atexit`` hook write what is left.

Rows are idempotent on ``request_id``: a row written twice (a retried batch whose
commit was not acknowledged) lands once, and a success replaces an earlier error
row of the same request (a fallback: the first deployment failed, the next answered).
Clients may choose the request id (``x-litellm-call-id``), but each id serves one
admitted request (:mod:`proxy.admission.callids`: reused by another tenant, after an
answer or twice at once, it is refused), so each request has its own row; the one reuse
allowed, a tenant's retry of its own failed request, replaces the error row (a row only
ever replaces an error row of the same tenant). A failed attempt's row,
``<id>/attempt-N``, cannot be named: :mod:`proxy.edge.guard` refuses ids with a ``/``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from proxy.context import TenantContext, from_metadata
from proxy.plugin import internals

__all__ = ["STREAM_ERROR", "SpendRow", "SpendWriter", "WriterStats", "dedupe", "insert_rows",
           "row_from_json", "row_from_payload", "row_to_json"]

log = logging.getLogger("llm_pool.spend")

FINAL_FLUSH_TIMEOUT = 5.0  # seconds, at shutdown
INITIAL_RETRY = 0.1  # seconds; doubles up to settings.spend_retry_max
OVERFLOW_LOG_EVERY = 1000  # log the 1st dropped row, then every Nth
ERROR_MESSAGE_MAX = 1000  # characters of an error's message kept on its row

INSERT = """
INSERT INTO spend (request_id, tenant_id, key_label, call_type, model_alias, deployment,
                   provider_model, prompt_tokens, completion_tokens, cost_usd, latency_ms,
                   status, error_class, tags, created_at, estimated, ttfb_ms, error_message)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (request_id) DO UPDATE SET
    tenant_id = EXCLUDED.tenant_id, key_label = EXCLUDED.key_label,
    call_type = EXCLUDED.call_type, model_alias = EXCLUDED.model_alias,
    deployment = EXCLUDED.deployment, provider_model = EXCLUDED.provider_model,
    prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
    cost_usd = EXCLUDED.cost_usd, latency_ms = EXCLUDED.latency_ms, status = EXCLUDED.status,
    error_class = EXCLUDED.error_class, tags = EXCLUDED.tags, created_at = EXCLUDED.created_at,
    estimated = EXCLUDED.estimated, ttfb_ms = EXCLUDED.ttfb_ms,
    error_message = EXCLUDED.error_message
WHERE spend.status = 'error' AND spend.tenant_id IS NOT DISTINCT FROM EXCLUDED.tenant_id
"""


@dataclass(frozen=True)
class SpendRow:
    request_id: str
    tenant_id: int | None  # None: the master key
    key_label: str | None
    call_type: str
    model_alias: str | None
    deployment: str | None  # None when no deployment was called (rejected before routing)
    provider_model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float | None
    status: str  # "ok" | "error"
    error_class: str | None
    tags: list[str] = field(default_factory=list, hash=False)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    estimated: bool = False  # cost estimated (a timed-out or cut call), not reported
    ttfb_ms: float | None = None  # time to the first token (streamed) or to the answer
    error_message: str | None = None  # the error's text, at most ERROR_MESSAGE_MAX characters


def row_to_json(row: SpendRow) -> str:
    """The row as one JSON object (the spend journal's entry, :mod:`proxy.spend.journal`)."""
    values = asdict(row)
    values["created_at"] = row.created_at.isoformat()
    return json.dumps(values, separators=(",", ":"))


def row_from_json(raw: str | bytes) -> SpendRow:
    values = json.loads(raw)
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return SpendRow(**values)


# ----------------------------------------------------------------- payload -> row


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


STREAM_ERROR = "StreamError"  # error_class of a stream logged as a success that did not end
STREAM_ERROR_MESSAGE = ("the provider's stream ended in an error event (or without its end "
                        "event); billed what it had streamed")


def row_from_payload(payload: Mapping[str, Any] | None, usage_estimated: bool = False,
                     stream_incomplete: bool = False) -> SpendRow | None:
    """The row for one ``StandardLoggingPayload``; None when the request was not made
    by a principal of ours (e.g. rejected by ``custom_auth`` itself). ``usage_estimated``:
    the provider reported no usage (a stream without it), LiteLLM counted the tokens.
    ``stream_incomplete``: a success event of a stream that ended in the provider's error
    event: an error row (:data:`STREAM_ERROR`), its usage what LiteLLM had, estimated."""
    if not payload:
        return None
    context = from_metadata(internals.key_auth_metadata(payload))
    request_id = payload.get("litellm_call_id") or payload.get("id")
    if context is None or not request_id:
        return None
    tenant = context if isinstance(context, TenantContext) else None
    called_ok = payload.get("status") == "success"
    ok = called_ok and not stream_incomplete
    error = payload.get("error_information") or {}
    # a deployment was called: its api_base is set (empty when rejected before any
    # deployment), or it answered (LiteLLM's Ollama embedding payload has no api_base);
    # not when the router picked none (a retry or fallback of a request that called one
    # before: the attempts' shared details still name that one, or the next)
    called = (bool(payload.get("api_base"))
              and error.get("error_class") not in internals.UNROUTED_ERRORS) or (
        called_ok and bool(payload.get("model_id")))
    start, end = payload.get("startTime"), payload.get("endTime")
    latency = (end - start) * 1000.0 if isinstance(start, float) and isinstance(end, float) \
        else None
    first = payload.get("completionStartTime")
    ttfb = (first - start) * 1000.0 if called_ok and isinstance(start, float) and \
        isinstance(first, float) and first >= start else None
    message = None if ok else STREAM_ERROR_MESSAGE if called_ok else \
        str(error.get("error_message") or "")[:ERROR_MESSAGE_MAX] or None
    metadata = payload.get("metadata") or {}
    label = metadata.get("user_api_key_alias") or ("master key" if tenant is None else None)
    return SpendRow(
        request_id=str(request_id),
        tenant_id=tenant.tenant_id if tenant is not None else None,
        key_label=label,
        call_type=str(payload.get("call_type") or "unknown"),
        model_alias=payload.get("model_group") or None,
        deployment=(payload.get("model_id") or None) if called else None,
        provider_model=(payload.get("model") or None) if called else None,
        prompt_tokens=_int(payload.get("prompt_tokens")),
        completion_tokens=_int(payload.get("completion_tokens")),
        cost_usd=float(payload.get("response_cost") or 0.0),
        latency_ms=latency,
        status="ok" if ok else "error",
        error_class=None if ok else STREAM_ERROR if called_ok else (
            error.get("error_class") or "UnknownError"),
        tags=[str(t) for t in payload.get("request_tags") or []],
        created_at=datetime.fromtimestamp(start, UTC) if isinstance(start, float)
        else datetime.now(UTC),
        estimated=called_ok and (usage_estimated or stream_incomplete),
        ttfb_ms=ttfb,
        error_message=message,
    )


def dedupe(rows: Iterable[SpendRow]) -> list[SpendRow]:
    """One row per request id: a success wins over errors, else the latest wins."""
    kept: dict[str, SpendRow] = {}
    for row in rows:
        prior = kept.get(row.request_id)
        if prior is None or prior.status == "error":
            kept[row.request_id] = row
    return list(kept.values())


# ----------------------------------------------------------------- the writer


async def insert_rows(pool: AsyncConnectionPool, rows: Sequence[SpendRow]) -> None:
    """One transaction; idempotent on ``request_id`` (see the module docstring)."""
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(INSERT, [astuple(r) for r in dedupe(rows)])


@dataclass
class WriterStats:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    failed_flushes: int = 0
    buffered: int = 0


PoolSource = Callable[[], Awaitable[AsyncConnectionPool]]
Committed = Callable[[Sequence[SpendRow]], None]


class SpendWriter:
    """The bounded buffer and its background flusher (see the module docstring)."""

    def __init__(self, *, database_url: str, pool: PoolSource, batch_size: int,
                 flush_interval: float, buffer_max: int, retry_max: float,
                 on_committed: Committed | None = None) -> None:
        self._url = database_url
        self._pool = pool
        self._batch_size = batch_size
        self._interval = flush_interval
        self._buffer_max = buffer_max
        self._retry_max = retry_max
        self._on_committed = on_committed
        self._rows: deque[SpendRow] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._eager = False
        self.stats = WriterStats()
        atexit.register(self.flush_sync)

    # -- request path: O(1), never blocks, never raises
    def add(self, row: SpendRow) -> bool:
        if len(self._rows) >= self._buffer_max:
            self.stats.dropped += 1
            if self.stats.dropped % OVERFLOW_LOG_EVERY == 1:
                log.error("spend buffer full (%d rows, PostgreSQL unreachable?): dropped %d "
                          "spend rows so far, last %s", self._buffer_max, self.stats.dropped,
                          row.request_id)
            return False
        self._rows.append(row)
        self.stats.queued += 1
        self._ensure_task()
        if (self._eager or len(self._rows) >= self._batch_size) and self._wake is not None:
            self._wake.set()
        return True

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-writer")

    # -- background
    async def _run(self) -> None:
        try:
            while True:
                await self._wait_for_work()
                await self._drain()
        except asyncio.CancelledError:
            await self._final_flush()
            raise

    async def _wait_for_work(self) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._interval)
        self._wake.clear()

    async def _drain(self) -> None:
        """Write full batches until the buffer is empty; on failure, back off and retry."""
        delay = INITIAL_RETRY
        while self._rows:
            batch = list(islice(self._rows, self._batch_size))
            try:
                await insert_rows(await self._pool(), batch)
            except (psycopg.Error, OSError, TimeoutError) as exc:  # PoolTimeout is a psycopg.Error
                self._note_failure(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            self._committed(batch)

    def _committed(self, batch: list[SpendRow]) -> None:
        for row in batch:  # a synchronous flush may have written (and removed) them already
            if self._rows and self._rows[0] is row:
                self._rows.popleft()
        self.stats.written += len(batch)
        if self._failing_since is not None:
            log.warning("spend writer: PostgreSQL is back after %.1f s; %d rows still buffered",
                        time.monotonic() - self._failing_since, len(self._rows))
            self._failing_since = None
        if self._on_committed is not None:
            self._on_committed(batch)

    def _note_failure(self, exc: BaseException) -> None:
        self.stats.failed_flushes += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("spend writer: cannot write to PostgreSQL (%s: %s); keeping %d rows "
                        "buffered and retrying", type(exc).__name__, exc, len(self._rows))

    async def _final_flush(self) -> None:
        rows = dedupe(self._rows)
        if not rows:
            return
        try:
            async with asyncio.timeout(FINAL_FLUSH_TIMEOUT):
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn, conn.cursor() as cur:
                    await cur.executemany(INSERT, [astuple(r) for r in rows])
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.error("spend writer: final flush of %d rows failed (%s)", len(rows), exc)
            return
        self._committed(list(self._rows))

    def flush_sync(self) -> None:
        """Write what is buffered now, blocking (at shutdown: signal handler, atexit)."""
        batch = list(self._rows)
        if not batch:
            return
        try:
            with psycopg.connect(self._url, autocommit=True,
                                 connect_timeout=int(FINAL_FLUSH_TIMEOUT)) as conn:
                conn.cursor().executemany(INSERT, [astuple(r) for r in dedupe(batch)])
        except (psycopg.Error, OSError) as exc:
            log.error("spend writer: %d spend rows could not be written at shutdown (%s)",
                      len(batch), exc)
            return
        self._committed(batch)
        log.info("spend writer: wrote %d buffered spend rows at shutdown", len(batch))

    def hurry(self) -> None:
        """From now on write each row as soon as it comes (shutting down)."""
        self._eager = True
        if self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything buffered now (tests, shutdown)."""
        await self._drain()

    @property
    def buffered(self) -> int:
        return len(self._rows)
