"""The gateway's knobs, read from the environment once (:meth:`ProxySettings.from_env`).

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
| ``POOL_DEFAULT_MAX_N`` | 4 | largest ``n`` a tenant may ask for (per-tenant override) |
| ``POOL_DEFAULT_MAX_TOKENS`` | 16384 | largest ``max_tokens`` & co. (per-tenant override) |
| ``POOL_DEFAULT_MAX_PROMPT_TOKENS`` | 131072 | largest estimated prompt (per-tenant override) |
| ``POOL_REDIS_URL`` | (none) | Redis for state shared by every proxy process; unset: per process |
| ``POOL_NAMESPACE`` | ``llm-pool`` | prefix of the gateway's Redis keys (``<ns>:gw:...``) |
| ``POOL_LIMITS_FAIL_CLOSED`` | 0 | 1: Redis unreachable -> 503 + Retry-After (0: per process) |
| ``POOL_REDIS_TIMEOUT`` | 2 s | socket timeout of Redis calls on the request path |
| ``POOL_RESERVATION_TTL`` | 900 s | an unsettled budget reservation (process died) expires |
| ``POOL_COMPLETION_ESTIMATE`` | 256 | tokens reserved without ``max_tokens``, no history yet |
| ``POOL_JOURNAL_CLAIM_IDLE`` | 10 s | journal entries held unwritten this long are taken over |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from llm_pool.settings import DEFAULT_DATABASE_URL
from proxy.errors import ConfigError
from proxy.tenants import Caps

__all__ = ["ProxySettings"]

AUTH_CACHE_TTL = 5.0
AUTH_MAX_STALE = 3600.0
BUDGET_REFRESH_SECONDS = 5.0
SPEND_FLUSH_INTERVAL = 1.0
SPEND_BATCH_SIZE = 200
SPEND_BUFFER_MAX = 100_000
SPEND_RETRY_MAX = 5.0
DB_TIMEOUT = 2.0
MAX_REQUEST_MB = 4.0
DEFAULT_CAPS = Caps(max_n=4, max_tokens=16_384, max_prompt_tokens=131_072)
DEFAULT_NAMESPACE = "llm-pool"
REDIS_TIMEOUT = 2.0
RESERVATION_TTL = 900.0
COMPLETION_ESTIMATE = 256
JOURNAL_CLAIM_IDLE = 10.0


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


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(name, f"expected 1 or 0, got {raw!r}")


@dataclass(frozen=True)
class ProxySettings:
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
    default_caps: Caps = DEFAULT_CAPS
    redis_url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    limits_fail_closed: bool = False
    redis_timeout: float = REDIS_TIMEOUT
    reservation_ttl: float = RESERVATION_TTL
    completion_estimate: int = COMPLETION_ESTIMATE
    journal_claim_idle: float = JOURNAL_CLAIM_IDLE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxySettings:
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
            default_caps=Caps(**{
                cap: int(_number(env, f"POOL_DEFAULT_{cap.upper()}", default, minimum=1))
                for cap, default in vars(DEFAULT_CAPS).items()}),
            redis_url=env.get("POOL_REDIS_URL") or None,
            namespace=env.get("POOL_NAMESPACE") or DEFAULT_NAMESPACE,
            limits_fail_closed=_flag(env, "POOL_LIMITS_FAIL_CLOSED"),
            redis_timeout=_number(env, "POOL_REDIS_TIMEOUT", REDIS_TIMEOUT, minimum=0.01),
            reservation_ttl=_number(env, "POOL_RESERVATION_TTL", RESERVATION_TTL, minimum=1),
            completion_estimate=int(_number(env, "POOL_COMPLETION_ESTIMATE", COMPLETION_ESTIMATE,
                                            minimum=0)),
            journal_claim_idle=_number(env, "POOL_JOURNAL_CLAIM_IDLE", JOURNAL_CLAIM_IDLE,
                                       minimum=0.1),
        )
