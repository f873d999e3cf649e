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
| ``POOL_JOURNAL_CLAIM_IDLE`` | 10 s | journal entries held unwritten this long are taken over |
| ``POOL_METRICS_KEY`` | (none) | a key that may read ``GET /metrics`` and nothing else |
| ``POOL_MAX_TAGS`` | 16 | most tags a request may carry (``tags``, ``metadata.tags`` ...) |
| ``POOL_MAX_TAG_CHARS`` | 64 | longest tag |

Read with pydantic-settings. A bad value is a :class:`~proxy.errors.ConfigError` naming
the variable (``POOL_SPEND_BATCH_SIZE: expected an integer, got 'abc'``); nothing falls
back silently. The three settings without a default (``LITELLM_MASTER_KEY``,
``POOL_REDIS_URL``, ``POOL_METRICS_KEY``) take an empty value as unset (compose passes
``${VAR:-}``); every other one refuses an empty value: unset it for the default.
Flags take ``1/0``, ``true/false``, ``yes/no``, ``on/off``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from proxy.errors import ConfigError
from proxy.storage.tenants import Caps
from sdk.settings_errors import describe_settings_error

__all__ = ["DEFAULT_CAPS", "DEFAULT_DATABASE_URL", "DEFAULT_TAG_LIMITS", "ProxySettings",
           "TagLimits"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/llm_pool"
DEFAULT_CAPS = Caps(max_n=4, max_tokens=16_384, max_prompt_tokens=131_072)
DEFAULT_MAX_TAGS = 16
DEFAULT_MAX_TAG_CHARS = 64
OPTIONAL = ("LITELLM_MASTER_KEY", "POOL_REDIS_URL", "POOL_METRICS_KEY")  # empty: unset
FLAGS = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class TagLimits:
    """How many tags a request may carry, and how long each (:mod:`proxy.edge.tags`)."""

    max_tags: int = DEFAULT_MAX_TAGS
    max_chars: int = DEFAULT_MAX_TAG_CHARS


DEFAULT_TAG_LIMITS = TagLimits()
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("pool_proxy_environ", default=None)


def _env(name: str, default: Any, **checks: Any) -> Any:
    return Field(default, validation_alias=name, **checks)


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source, reading ``from_env``'s mapping."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


class ProxySettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, frozen=True, extra="ignore",
                                      validate_by_name=True, validate_default=False)

    database_url: Annotated[str, Field(min_length=1)] = _env("POOL_DATABASE_URL",
                                                              DEFAULT_DATABASE_URL)
    master_key: str | None = _env("LITELLM_MASTER_KEY", None)
    auth_cache_ttl: float = _env("POOL_AUTH_CACHE_TTL", 5.0, ge=0)
    auth_max_stale: float = _env("POOL_AUTH_MAX_STALE", 3600.0, ge=0)
    budget_refresh_seconds: float = _env("POOL_BUDGET_REFRESH_SECONDS", 5.0, ge=0.05)
    spend_flush_interval: float = _env("POOL_SPEND_FLUSH_INTERVAL", 1.0, ge=0.01)
    spend_batch_size: int = _env("POOL_SPEND_BATCH_SIZE", 200, ge=1)
    spend_buffer_max: int = _env("POOL_SPEND_BUFFER_MAX", 100_000, ge=1)
    spend_retry_max: float = _env("POOL_SPEND_RETRY_MAX", 5.0, ge=0.01)
    db_timeout: float = _env("POOL_DB_TIMEOUT", 2.0, ge=0.1)
    max_request_mb: float = _env("POOL_MAX_REQUEST_MB", 4.0, ge=0.001)
    default_max_n: int = _env("POOL_DEFAULT_MAX_N", DEFAULT_CAPS.max_n, ge=1)
    default_max_tokens: int = _env("POOL_DEFAULT_MAX_TOKENS", DEFAULT_CAPS.max_tokens, ge=1)
    default_max_prompt_tokens: int = _env("POOL_DEFAULT_MAX_PROMPT_TOKENS",
                                          DEFAULT_CAPS.max_prompt_tokens, ge=1)
    redis_url: str | None = _env("POOL_REDIS_URL", None)
    namespace: Annotated[str, Field(min_length=1)] = _env("POOL_NAMESPACE", "llm-pool")
    limits_fail_closed: bool = _env("POOL_LIMITS_FAIL_CLOSED", False)
    redis_timeout: float = _env("POOL_REDIS_TIMEOUT", 2.0, ge=0.01)
    reservation_ttl: float = _env("POOL_RESERVATION_TTL", 900.0, ge=1)
    journal_claim_idle: float = _env("POOL_JOURNAL_CLAIM_IDLE", 10.0, ge=0.1)
    metrics_key: str | None = _env("POOL_METRICS_KEY", None)
    max_tags: int = _env("POOL_MAX_TAGS", DEFAULT_MAX_TAGS, ge=0)
    max_tag_chars: int = _env("POOL_MAX_TAG_CHARS", DEFAULT_MAX_TAG_CHARS, ge=1)

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _environ.get()
        return (init_settings, _Environ(settings_cls, os.environ if environ is None else environ))

    @field_validator("master_key", "redis_url", "metrics_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("limits_fail_closed", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() not in FLAGS:
                raise ValueError(f"expected 1 or 0 (true/false, yes/no, on/off), got {value!r}")
            return FLAGS[value.strip().lower()]
        return value

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1_000_000)

    @property
    def tag_limits(self) -> TagLimits:
        return TagLimits(max_tags=self.max_tags, max_chars=self.max_tag_chars)

    @property
    def default_caps(self) -> Caps:
        return Caps(max_n=self.default_max_n, max_tokens=self.default_max_tokens,
                    max_prompt_tokens=self.default_max_prompt_tokens)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxySettings:
        """The settings from ``env`` (default: ``os.environ``); :class:`ConfigError`
        naming the variable for a bad or empty value."""
        values = os.environ if env is None else env
        names = {str(f.validation_alias) for f in cls.model_fields.values()}
        given = {name: values[name] for name in names if name in values}
        empty = sorted(n for n, v in given.items() if v.strip() == "" and n not in OPTIONAL)
        if empty:
            raise ConfigError(empty[0], "is set but empty; unset it for the default")
        token = _environ.set(given)
        try:
            return cls()
        except ValidationError as exc:
            raise _config_error(exc) from None
        finally:
            _environ.reset(token)


def _config_error(exc: ValidationError) -> ConfigError:
    return ConfigError(*describe_settings_error(exc, ProxySettings))
