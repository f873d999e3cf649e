"""The gateway's process-wide state, and the ``CustomLogger`` the YAML names.

``litellm_settings.callbacks: ["proxy.plugin.gateway.callbacks"]`` loads :data:`callbacks`:

- ``async_pre_call_hook``: checks the request as LiteLLM merged it (:mod:`proxy.edge.merged`),
  writes in its output limit, claims its request id (:mod:`proxy.admission.callids`) and
  admits it against its tenant's rpm/tpm limits and
  reserves its estimated cost against its monthly budget (429 ``rate_limit_error``
  / ``budget_exceeded``, see :mod:`proxy.admission.limits`);
- ``async_log_success_event`` / ``async_log_failure_event``: settle the reservation
  to the real cost and journal one spend row per request and per failed provider attempt
  (Redis Stream drained into PostgreSQL, :mod:`proxy.spend.journal`; without Redis, the
  batched in-process writer, :mod:`proxy.spend.rows`);
- ``async_post_call_response_headers_hook``: ``x-pool-limits: shared|local``;
- ``async_post_call_success_hook`` / ``async_post_call_streaming_iterator_hook``: every
  answer names the alias asked for (:mod:`proxy.plugin.answers`).

The state (settings, Redis, PostgreSQL pool, key cache, limits, spend journal and
writer) is created on first use (:func:`proxy_state`); importing this module creates
nothing. The start-up (:mod:`proxy.plugin.startup`) calls :func:`start_serving` once
LiteLLM has loaded the YAML: the journal drainer and the signal handlers start then.
It is a :class:`ProxyState` (not to be confused with the SDK's client, ``sdk.Gateway``).

Shutdown: uvicorn handles SIGTERM by draining, then re-raises the signal with the
default handler, which kills the process before the event loop ends or ``atexit``
runs. So the gateway chains its own handler in front of uvicorn's: it writes the
buffered spend rows synchronously, then lets uvicorn drain (rows of the requests
still finishing are written as they come).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import AsyncGenerator, Sequence
from types import FrameType
from typing import Any

import psycopg
from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import UserAPIKeyAuth
from psycopg_pool import AsyncConnectionPool

from proxy import context
from proxy.admission.budget import BudgetTracker, month_spend
from proxy.admission.callids import CallIds
from proxy.admission.estimate import alias_output_limit, apply_output_limit, warm_up_tokenizer
from proxy.admission.keycache import RedisKeyCache
from proxy.admission.limits import Limits, LocalLimits, Outcome, Ticket
from proxy.admission.tickets import TicketBook, ask_for, count_tokens_ask
from proxy.edge.errors_shape import shape_failure
from proxy.edge.merged import check_merged
from proxy.errors import RequestRefused
from proxy.plugin import answers, internals, metrics
from proxy.plugin.auth import KeyFormats, KeyResolver
from proxy.plugin.refusals import to_litellm
from proxy.settings import ProxySettings
from proxy.spend.journal import SpendJournal
from proxy.spend.rows import SpendRow, SpendWriter, insert_rows, row_from_payload, row_to_json
from proxy.storage.db import open_async_pool
from proxy.storage.shared import SharedRedis, gateway_prefix, safe_url
from proxy.storage.tenants import KeyGate, KeyIdentity, key_gate, lookup_key

__all__ = ["ProxyCallbacks", "ProxyState", "callbacks", "proxy_state", "start_serving"]

log = logging.getLogger("llm_pool.gateway")


class ProxyState:
    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self._pool: AsyncConnectionPool | None = None
        self._pool_lock: asyncio.Lock | None = None
        self.shared = (SharedRedis(settings.redis_url,
                                   gateway_prefix(settings.namespace, settings.database_url),
                                   settings.redis_timeout) if settings.redis_url else None)
        self.keys = KeyResolver(self._lookup, ttl=settings.auth_cache_ttl,
                                max_stale=settings.auth_max_stale,
                                shared=RedisKeyCache(self.shared, settings.auth_max_stale)
                                if self.shared is not None else None)
        self.key_formats = KeyFormats(self._key_gate, ttl=settings.auth_cache_ttl)
        self.budget = BudgetTracker(self.pool, settings.budget_refresh_seconds,
                                    first_read_timeout=settings.db_timeout)
        self.limits = Limits(self.shared, LocalLimits(settings.reservation_ttl),
                             self.budget, self._month_spend,
                             fail_closed=settings.limits_fail_closed,
                             reservation_ttl=settings.reservation_ttl)
        self.tickets = TicketBook(settings.reservation_ttl)
        self.call_ids = CallIds(self.shared)
        self.writer = SpendWriter(
            database_url=settings.database_url, pool=self.pool,
            batch_size=settings.spend_batch_size, flush_interval=settings.spend_flush_interval,
            buffer_max=settings.spend_buffer_max, retry_max=settings.spend_retry_max,
            on_committed=self.budget.committed)
        self.journal = SpendJournal(
            url=settings.redis_url, stream=self.shared.key("spend"), write=self._write_rows,
            batch_size=settings.spend_batch_size, claim_idle=settings.journal_claim_idle,
            retry_max=settings.spend_retry_max) if settings.redis_url and self.shared else None

    async def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            if self._pool_lock is None:
                self._pool_lock = asyncio.Lock()
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await open_async_pool(self.settings.database_url,
                                                       self.settings.db_timeout)
        return self._pool

    async def _lookup(self, key_hash: str) -> KeyIdentity | None:
        return await lookup_key(await self.pool(), key_hash)

    async def _key_gate(self) -> KeyGate:
        return await key_gate(await self.pool())

    async def _month_spend(self, tenant_id: int) -> float | None:
        try:
            return await month_spend(await self.pool(), tenant_id)
        except (psycopg.Error, OSError, TimeoutError):
            return None

    async def _write_rows(self, rows: Sequence[SpendRow]) -> None:
        await insert_rows(await self.pool(), rows)

    def start(self) -> None:
        """Background work that must run without requests (inside the proxy's loop)."""
        if self.journal is not None:
            self.journal.start()
        warm_up_tokenizer()  # its first use loads an encoding: not inside a request burst

    def announce(self) -> None:
        if self.shared is None:
            log.warning("shared state: POOL_REDIS_URL is not set: rpm/tpm limits, budget "
                        "reservations and the spend buffer are per process (pid %d)",
                        os.getpid())
        else:
            log.warning("shared state: Redis %s, namespace %r (limits %s while it is down; "
                        "pid %d)", safe_url(self.shared.url), self.settings.namespace,
                        "refuse (503)" if self.settings.limits_fail_closed else "per process",
                        os.getpid())


def _flush_on_signals(writer: SpendWriter) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set there; atexit and task cancellation remain
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(received: int, frame: FrameType | None, previous: Any = previous) -> None:
            writer.flush_sync()
            writer.hurry()
            if callable(previous):
                previous(received, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(received, signal.SIG_DFL)
                signal.raise_signal(received)

        signal.signal(signum, handler)


_state: ProxyState | None = None


def proxy_state() -> ProxyState:
    global _state
    if _state is None:
        _state = ProxyState(ProxySettings.from_env())
        metrics.instrument(_state)
    return _state


class ProxyCallbacks(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict: UserAPIKeyAuth, cache: Any,
                                  data: dict[str, Any], call_type: str) -> dict[str, Any]:
        try:
            tenant = context.require(user_api_key_dict.metadata)
            if isinstance(tenant, context.TenantContext):
                check_merged(data, tenant, internals.router_aliases, alias_output_limit)
                apply_output_limit(data, call_type, tenant.caps.max_tokens)
                await self._admit(tenant, data, call_type)
        except RequestRefused as exc:
            raise to_litellm(exc) from exc
        return data

    async def admit_count_tokens(self, tenant: context.TenantContext,
                                 body: dict[str, Any]) -> None:
        """``/v1/messages/count_tokens`` (no pre-call hook runs for it): one request of
        the tenant's rpm and its prompt bound of tpm; no cost (providers count tokens
        free of charge), so nothing is reserved against the budget."""
        gw = proxy_state()
        await gw.limits.admit(count_tokens_ask(tenant, body))

    async def _admit(self, tenant: context.TenantContext, data: dict[str, Any],
                     call_type: str) -> None:
        """Count the request against its tenant's rpm/tpm and reserve its estimated cost
        (429 / 503 when refused, see :mod:`proxy.admission.limits`)."""
        gw = proxy_state()
        ask = ask_for(tenant, data, call_type)
        chosen = tenant.client_call_id  # LiteLLM's own ids are unique already
        if chosen:
            await gw.call_ids.claim(ask.request_id, ask.tenant_id)
        try:
            ticket = await gw.limits.admit(ask)
        except BaseException:
            if chosen:
                await gw.call_ids.settle(ask.request_id, ask.tenant_id, answered=False)
            raise
        gw.tickets.add(ask.request_id, ticket)

    async def async_post_call_response_headers_hook(
            self, data: dict[str, Any], user_api_key_dict: UserAPIKeyAuth, response: object,
            request_headers: dict[str, str] | None = None,
            litellm_call_info: dict[str, object] | None = None) -> dict[str, str] | None:
        """``x-pool-limits: shared`` (Redis) or ``local`` (per process: no Redis, or it
        is down) on tenant answers: the flag that limits are degraded."""
        try:
            tenant = context.from_metadata(user_api_key_dict.metadata)
        except context.ContextError:
            return None  # the pre-call hook refused it already
        if not isinstance(tenant, context.TenantContext):
            return None
        return {"x-pool-limits": proxy_state().limits.mode}

    async def async_post_call_success_hook(self, data: dict[str, Any],
                                           user_api_key_dict: UserAPIKeyAuth,
                                           response: Any) -> Any:
        answers.name_the_alias(data, response)  # the alias in model (proxy/plugin/answers.py)

    async def async_post_call_streaming_iterator_hook(
            self, user_api_key_dict: UserAPIKeyAuth, response: Any,
            request_data: dict[str, Any]) -> AsyncGenerator[Any, None]:
        async for chunk in answers.alias_stream(response, request_data):
            yield chunk

    async def async_post_call_failure_hook(
            self, request_data: dict[str, Any], original_exception: Exception,
            user_api_key_dict: UserAPIKeyAuth, traceback_str: str | None = None,
    ) -> HTTPException | None:
        """LiteLLM rejects a request carrying ``api_base``/credentials with a ValueError
        that, without Prisma installed, reaches the client as a bare 500: make it a 400.
        (The request is over: its ticket lets go of its attempts' exceptions.)"""
        proxy_state().tickets.request_over(str(request_data.get("litellm_call_id") or ""))
        if internals.is_rejected_request(original_exception):
            return HTTPException(status_code=400, detail=str(original_exception))
        return shape_failure(request_data, original_exception)  # proxy/edge/errors_shape.py

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any,
                                      start_time: Any, end_time: Any) -> None:
        await self._record(kwargs)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any,
                                      start_time: Any, end_time: Any) -> None:
        await self._record(kwargs, failed=True)

    async def _record(self, kwargs: dict[str, Any], failed: bool = False) -> None:
        """One spend row per provider attempt: LiteLLM logs a request's first failure
        only, so once a failed attempt that reached a provider is recorded, the next
        attempt's failure is let through (:func:`internals.forget_failed_attempt`; the same
        exception logged twice settles once, :meth:`TicketBook.settle`)."""
        try:
            row = row_from_payload(kwargs.get("standard_logging_object"),
                                   usage_estimated=internals.usage_estimated(kwargs),
                                   stream_incomplete=internals.stream_incomplete(kwargs))
            if row is not None:
                await self._settle(row, kwargs.get("exception") if failed else None)
            if row is not None and row.tenant_id is not None:
                await proxy_state().call_ids.settle(row.request_id.split("/attempt-")[0],
                                                    row.tenant_id, row.status == "ok")
            if failed and row is not None and (row.deployment is not None
                                               or row.error_class in internals.UNROUTED_ERRORS):
                internals.forget_failed_attempt(kwargs)
        except Exception:  # a logging hook must never break a request
            log.exception("spend: could not record a request")

    async def _settle(self, row: SpendRow, error: object = None) -> None:
        """Settle the request's reservation to its real (or estimated) cost and journal
        its spend row(s); without Redis the rows go to the in-process writer."""
        gw = proxy_state()
        settled = gw.tickets.settle(row, error)
        if settled is None:  # this attempt's failure is recorded already
            return
        row = settled.row
        await self._journal(row, settled.release, Outcome(
            tokens=row.prompt_tokens + row.completion_tokens, cost=row.cost_usd,
            row=row_to_json(row) if gw.journal is not None else ""))
        for attempt in settled.earlier:  # its cost is counted already
            await self._journal(attempt, None, Outcome(
                tokens=0, cost=0.0,
                row=row_to_json(attempt) if gw.journal is not None else ""), counted=True)

    async def _journal(self, row: SpendRow, release: Ticket | None, outcome: Outcome,
                       counted: bool = False) -> None:
        gw = proxy_state()
        if await gw.limits.settle(release, row.tenant_id, outcome):
            assert gw.journal is not None
            gw.journal.start()
            return
        if not counted:
            gw.budget.queued(row)  # counted even if the buffer must drop the row
        gw.writer.add(row)


callbacks = ProxyCallbacks()


def start_serving() -> None:
    """Called by the start-up (:mod:`proxy.plugin.startup`) inside the proxy's event loop,
    once LiteLLM has loaded the YAML: say which state is shared, write buffered spend rows
    on SIGTERM/SIGINT before uvicorn's own handling, and start the journal drainer."""
    gw = proxy_state()
    gw.announce()
    _flush_on_signals(gw.writer)
    asyncio.get_running_loop().call_soon(gw.start)
