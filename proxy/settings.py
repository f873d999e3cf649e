"""The gateway's knobs, read from the environment once (:meth:`GatewaySettings.from_env`).

| variable | default | meaning |
|---|---|---|
| ``POOL_DATABASE_URL`` | ``postgresql://postgres@127.0.0.1:5432/llm_pool`` | tenants, keys, spend |
| ``LITELLM_MASTER_KEY`` | (none) | the admin key; accepted by ``custom_auth`` as is |
| ``POOL_AUTH_CACHE_TTL`` | 5 s | how long a key lookup is trusted (revocation delay) |
| ``POOL_AUTH_MAX_STALE`` | 3600 s | how long a known key keeps working while PostgreSQL is away |
| ``POOL_BUDGET_REFRESH_SECONDS`` | 5 s | month-to-date spend re-read from PostgreSQL |
| ``POOL_SPEND_FLUSH_INTERVAL`` | 1 s | the spend writer flushes at least this often |
| ``POOL_SPEND_BATCH_SIZE`` | 200 | ... or as soon as this many rows wait; rows per INSERT batch |
| ``POOL_SPEND_BUFFER_MAX`` | 100000 | rows held while PostgreSQL is away; more: dropped, counted |
| ``POOL_SPEND_RETRY_MAX`` | 5 s | longest pause between write attempts while PostgreSQL is away |
| ``POOL_DB_TIMEOUT`` | 2 s | connect / statement timeout of the gateway's PostgreSQL calls |
| ``POOL_MAX_REQUEST_MB`` | 4 | larger chat/embedding bodies get 413 (send images by URL) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from llm_pool.settings import DEFAULT_DATABASE_URL
from proxy.errors import ConfigError

__all__ = ["GatewaySettings"]

AUTH_CACHE_TTL = 5.0
AUTH_MAX_STALE = 3600.0
BUDGET_REFRESH_SECONDS = 5.0
SPEND_FLUSH_INTERVAL = 1.0
SPEND_BATCH_SIZE = 200
SPEND_BUFFER_MAX = 100_000
SPEND_RETRY_MAX = 5.0
DB_TIMEOUT = 2.0
MAX_REQUEST_MB = 4.0


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class GatewaySettings:
    database_url: str = DEFAULT_DATABASE_URL
    master_key: str | None = None
    auth_cache_ttl: float = AUTH_CACHE_TTL
    auth_max_stale: float = AUTH_MAX_STALE
    budget_refresh_seconds: float = BUDGET_REFRESH_SECONDS
    spend_flush_interval: float = SPEND_FLUSH_INTERVAL
    spend_batch_size: int = SPEND_BATCH_SIZE
    spend_buffer_max: int = SPEND_BUFFER_MAX
    spend_retry_max: float = SPEND_RETRY_MAX
    db_timeout: float = DB_TIMEOUT
    max_request_bytes: int = int(MAX_REQUEST_MB * 1_000_000)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("POOL_DATABASE_URL") or DEFAULT_DATABASE_URL,
            master_key=env.get("LITELLM_MASTER_KEY") or None,
            auth_cache_ttl=_number(env, "POOL_AUTH_CACHE_TTL", AUTH_CACHE_TTL, minimum=0),
            auth_max_stale=_number(env, "POOL_AUTH_MAX_STALE", AUTH_MAX_STALE, minimum=0),
            budget_refresh_seconds=_number(env, "POOL_BUDGET_REFRESH_SECONDS",
                                           BUDGET_REFRESH_SECONDS, minimum=0.05),
            spend_flush_interval=_number(env, "POOL_SPEND_FLUSH_INTERVAL", SPEND_FLUSH_INTERVAL,
                                         minimum=0.01),
            spend_batch_size=int(_number(env, "POOL_SPEND_BATCH_SIZE", SPEND_BATCH_SIZE,
                                         minimum=1)),
            spend_buffer_max=int(_number(env, "POOL_SPEND_BUFFER_MAX", SPEND_BUFFER_MAX,
                                         minimum=1)),
            spend_retry_max=_number(env, "POOL_SPEND_RETRY_MAX", SPEND_RETRY_MAX, minimum=0.01),
            db_timeout=_number(env, "POOL_DB_TIMEOUT", DB_TIMEOUT, minimum=0.1),
            max_request_bytes=int(_number(env, "POOL_MAX_REQUEST_MB", MAX_REQUEST_MB,
                                          minimum=0.001) * 1_000_000),
        )
