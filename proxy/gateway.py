"""The gateway's process-wide state, and the ``CustomLogger`` the YAML names.

``litellm_settings.callbacks: ["proxy.gateway.callbacks"]`` loads :data:`callbacks`:

- ``async_pre_call_hook``: rejects a tenant over its monthly budget (429
  ``budget_exceeded``, see :mod:`proxy.budget`);
- ``async_log_success_event`` / ``async_log_failure_event``: one spend row per
  request, queued to the batched writer (see :mod:`proxy.spend`).

The state (settings, PostgreSQL pool, key cache, budget totals, spend writer) is
created on first use, inside the proxy's event loop (:func:`gateway`).

Shutdown: uvicorn handles SIGTERM by draining, then re-raises the signal with the
default handler, which kills the process before the event loop ends or ``atexit``
runs. So the gateway chains its own handler in front of uvicorn's: it writes the
buffered spend rows synchronously, then lets uvicorn drain (rows of the requests
still finishing are written as they come).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import UserAPIKeyAuth
from psycopg_pool import AsyncConnectionPool

from proxy.auth import KeyResolver
from proxy.budget import BudgetTracker
from proxy.db import open_async_pool
from proxy.settings import GatewaySettings
from proxy.spend import SpendWriter, row_from_payload
from proxy.tenants import KeyIdentity, lookup_key

__all__ = ["Gateway", "GatewayCallbacks", "callbacks", "gateway"]

log = logging.getLogger("llm_pool.gateway")


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._pool: AsyncConnectionPool | None = None
        self._pool_lock: asyncio.Lock | None = None
        self.keys = KeyResolver(self._lookup, ttl=settings.auth_cache_ttl,
                                max_stale=settings.auth_max_stale)
        self.budget = BudgetTracker(self.pool, settings.budget_refresh_seconds,
                                    first_read_timeout=settings.db_timeout)
        self.writer = SpendWriter(
            database_url=settings.database_url, pool=self.pool,
            batch_size=settings.spend_batch_size, flush_interval=settings.spend_flush_interval,
            buffer_max=settings.spend_buffer_max, retry_max=settings.spend_retry_max,
            on_committed=self.budget.committed)
        _flush_on_signals(self.writer)

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


_gateway: Gateway | None = None


def gateway() -> Gateway:
    global _gateway
    if _gateway is None:
        _gateway = Gateway(GatewaySettings.from_env())
    return _gateway


class GatewayCallbacks(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict: UserAPIKeyAuth, cache: Any,
                                  data: dict[str, Any], call_type: str) -> dict[str, Any]:
        meta = user_api_key_dict.metadata or {}
        budget = meta.get("pool_budget_usd")
        if meta.get("pool_principal") == "tenant" and budget:
            await gateway().budget.check(str(meta.get("pool_tenant")),
                                         int(meta["pool_tenant_id"]), float(budget))
        return data

    async def async_post_call_failure_hook(
            self, request_data: dict[str, Any], original_exception: Exception,
            user_api_key_dict: UserAPIKeyAuth, traceback_str: str | None = None,
    ) -> HTTPException | None:
        """LiteLLM rejects a request carrying ``api_base``/credentials with a ValueError
        that, without Prisma installed, reaches the client as a bare 500: make it a 400."""
        message = str(original_exception)
        if isinstance(original_exception, ValueError) and message.startswith("Rejected Request"):
            return HTTPException(status_code=400, detail=message)
        return None

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any,
                                      start_time: Any, end_time: Any) -> None:
        self._record(kwargs)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any,
                                      start_time: Any, end_time: Any) -> None:
        self._record(kwargs)

    def _record(self, kwargs: dict[str, Any]) -> None:
        try:
            row = row_from_payload(kwargs.get("standard_logging_object"))
            if row is not None:
                gw = gateway()
                gw.budget.queued(row)  # counted even if the buffer must drop the row
                gw.writer.add(row)
        except Exception:  # a logging hook must never break a request
            log.exception("spend: could not record a request")


callbacks = GatewayCallbacks()
