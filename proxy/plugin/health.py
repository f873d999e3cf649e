"""``GET /health/readiness``: the gateway's own stores, not LiteLLM's Prisma slot.

LiteLLM's readiness reports ``"db": "Not connected"`` on a healthy gateway: it looks at
its Prisma client, which this gateway never uses (no ``DATABASE_URL``). This route,
put in front of LiteLLM's, answers with what the gateway depends on:

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
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

__all__ = ["PROBE_TIMEOUT", "install", "readiness"]

PROBE_TIMEOUT = 2.0  # seconds per store
PATH = "/health/readiness"


def _redis_url() -> str | None:
    return os.environ.get("POOL_REDIS_URL") or None


async def _postgres() -> str:
    from proxy.plugin.gateway import proxy_state

    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            pool = await proxy_state().pool()
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


async def readiness() -> JSONResponse:
    import litellm

    from proxy.plugin.gateway import proxy_state

    postgres, redis = await asyncio.gather(_postgres(), _redis())
    healthy = postgres == "connected" and redis in ("connected", "not configured")
    return JSONResponse({
        "status": "healthy" if healthy else "degraded", "postgres": postgres, "redis": redis,
        "spend_buffer_rows": proxy_state().writer.buffered,
        "litellm_version": getattr(litellm, "version", None) or _version(),
    })


def _version() -> str:
    from importlib.metadata import version

    return version("litellm")


def install(app: Any) -> None:
    """Put this route ahead of LiteLLM's (routes match in order), once."""
    routes = app.router.routes
    if any(getattr(r, "endpoint", None) is readiness for r in routes):
        return
    routes.insert(0, APIRoute(PATH, readiness, methods=["GET"]))
