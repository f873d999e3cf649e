"""``GET /health/readiness``: the gateway's own stores, not LiteLLM's Prisma slot.

LiteLLM's readiness reports ``"db": "Not connected"`` on a healthy gateway: it looks at
its Prisma client, which this gateway never uses (no ``DATABASE_URL``). :class:`Readiness`,
an ASGI layer the start-up puts in front of LiteLLM's app (:mod:`proxy.plugin.startup`;
LiteLLM's router is not touched), answers ``GET /health/readiness`` itself with what the
gateway depends on:

``{"status": "healthy" | "degraded", "postgres": "connected" | "unreachable: ...",
"redis": "connected" | "unreachable: ..." | "not configured", "spend_buffer_rows": N,
"litellm_version": "..."}``, always HTTP 200: with PostgreSQL or Redis away the gateway
still serves (known keys from the cache, spend rows buffered), so it is ``degraded``,
not down. Like every route but liveness, it is the operator's (master key, see
:mod:`proxy.edge.guard`).

Settings: ``POOL_REDIS_URL`` (optional here) the Redis the gateway shares state in.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi.responses import JSONResponse

__all__ = ["PROBE_TIMEOUT", "Readiness", "install", "readiness"]

PROBE_TIMEOUT = 2.0  # seconds per store
PATH = "/health/readiness"


class _Writer(Protocol):
    @property
    def buffered(self) -> int: ...


class State(Protocol):
    """What readiness reads of :class:`proxy.plugin.gateway.ProxyState`."""

    @property
    def writer(self) -> _Writer: ...

    async def pool(self) -> Any: ...


def _redis_url() -> str | None:
    return os.environ.get("POOL_REDIS_URL") or None


async def _postgres(state: State) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            pool = await state.pool()
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception as exc:  # any failure is the answer, not an error of this route
        return f"unreachable: {type(exc).__name__}"
    return "connected"


async def _redis() -> str:
    url = _redis_url()
    if url is None:
        return "not configured"
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT,
                                          socket_timeout=PROBE_TIMEOUT)
    try:
        await client.ping()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        await client.aclose()
    return "connected"


async def readiness(state: State) -> JSONResponse:
    import litellm

    postgres, redis = await asyncio.gather(_postgres(state), _redis())
    healthy = postgres == "connected" and redis in ("connected", "not configured")
    return JSONResponse({
        "status": "healthy" if healthy else "degraded", "postgres": postgres, "redis": redis,
        "spend_buffer_rows": state.writer.buffered,
        "litellm_version": getattr(litellm, "version", None) or _version(),
    })


def _version() -> str:
    from importlib.metadata import version

    return version("litellm")


ASGIApp = Callable[..., Awaitable[None]]


def _path(scope: Any) -> str:
    path = str(scope.get("path") or "/")
    root = str(scope.get("root_path") or "").rstrip("/")
    return path[len(root):] or "/" if root and path.startswith(root + "/") else path


class Readiness:
    """Answers ``GET /health/readiness`` (see the module docstring); passes all else on."""

    def __init__(self, app: ASGIApp, state: Callable[[], State]) -> None:
        self.app = app
        self._state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (scope.get("type") == "http" and scope.get("method") in ("GET", "HEAD")
                and _path(scope) == PATH):
            answer = await readiness(self._state())
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: ASGIApp, state: Callable[[], State]) -> Readiness:
    """``app`` behind a :class:`Readiness` layer reading ``state()``."""
    return Readiness(app, state)
