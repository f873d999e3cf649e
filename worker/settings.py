"""Worker settings, read from the environment once, at the edge (:meth:`WorkerSettings.from_env`).

| variable | default | meaning |
|---|---|---|
| ``POOL_DATABASE_URL`` | ``postgresql://postgres@127.0.0.1:5432/llm_pool`` | memory, audit |
| ``POOL_REDIS_URL`` | ``redis://127.0.0.1:6379/0`` | queue, results, events, confirmations |
| ``POOL_PROXY_URL`` | ``http://127.0.0.1:4000`` | the gateway the agents call |
| ``POOL_API_KEY`` | (none) | the worker's key for the gateway (see below) |
| ``POOL_TENANT_KEYS_FILE`` | (none) | YAML ``tenant: key``: a tenant's own key for its messages |
| ``POOL_AGENTS_FILE`` | ``config/agents.yaml`` | the agent definitions |
| ``POOL_NAMESPACE`` | ``llm-pool`` | prefix of every Redis key the worker writes |
| ``POOL_CONFIRM_TTL`` | 600 s | how long an undecided confirmation waits |
| ``POOL_MEMORY_MAX_MESSAGES`` | 50 | memory per conversation; the oldest whole turns go |
| ``POOL_WORKER_HEARTBEAT_MS`` | 60000 | a worker silent this long is dead: messages requeued |
| ``POOL_WORKER_TIME_LIMIT_MS`` | 600000 | one message's run |
| ``POOL_WORKER_MAX_RETRIES`` | 3 | redeliveries after an unexpected error |
| ``POOL_WORKER_TOOL_THREADS`` | 16 | threads running sync tools, per worker process |
| ``POOL_EVENT_RETENTION`` | 604800 s (7 d) | a quiet conversation's event stream expires after it |

Read with pydantic-settings. A bad value is a :class:`~worker.errors.WorkerSettingsError`
naming the variable (``POOL_CONFIRM_TTL: expected an integer, got 'abc'``). The two
settings without a default (``POOL_API_KEY``, ``POOL_TENANT_KEYS_FILE``) take an empty
value as unset (compose and ``.env.example`` pass them empty); every other one refuses
an empty value: unset it for the default.

The worker's key is ``POOL_API_KEY`` and nothing else: there is no fallback to
``LITELLM_MASTER_KEY``. A worker (:meth:`WorkerSettings.require_proxy_key`) refuses to
start without it, unless ``POOL_TENANT_KEYS_FILE`` gives the keys (tenants not in the
file then fail loudly). To bill the worker's traffic to the master key, say so: set
``POOL_API_KEY`` to the master key's value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sdk.settings_errors import describe_settings_error
from worker.errors import WorkerSettingsError

__all__ = [
    "DEFAULT_AGENTS_FILE",
    "DEFAULT_CONFIRM_TTL",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_HEARTBEAT_MS",
    "DEFAULT_MEMORY_MAX_MESSAGES",
    "DEFAULT_NAMESPACE",
    "DEFAULT_PROXY_URL",
    "DEFAULT_REDIS_URL",
    "WorkerSettings",
]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/llm_pool"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PROXY_URL = "http://127.0.0.1:4000"
DEFAULT_AGENTS_FILE = Path(__file__).resolve().parent.parent / "config" / "agents.yaml"
DEFAULT_CONFIRM_TTL = 600  # seconds a pending confirmation waits for the user
DEFAULT_MEMORY_MAX_MESSAGES = 50  # per conversation; oldest whole turns are trimmed
DEFAULT_NAMESPACE = "llm-pool"  # prefix of every Redis key the worker writes
DEFAULT_HEARTBEAT_MS = 60_000  # a worker silent this long is dead: its messages are requeued
DEFAULT_TIME_LIMIT_MS = 10 * 60_000  # one message's run
DEFAULT_MAX_RETRIES = 3  # redeliveries after an unexpected error (not provider outages)
DEFAULT_TOOL_THREADS = 16  # sync tools run on at most this many threads per process
DEFAULT_EVENT_RETENTION = 7 * 24 * 3600  # seconds a quiet conversation's events are kept

OPTIONAL = frozenset({"api_key", "tenant_keys_file"})  # an empty value means unset


def _env(name: str, default: Any, **checks: Any) -> Any:
    return Field(default, validation_alias=name, **checks)


class WorkerSettings(BaseSettings):
    """The worker's settings; ``WorkerSettings(field=...)`` takes the others from the
    environment too (use :meth:`from_env` for errors that name the variable)."""

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True, extra="ignore",
                                      validate_by_name=True, validate_by_alias=True)

    database_url: str = _env("POOL_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url: str = _env("POOL_REDIS_URL", DEFAULT_REDIS_URL)
    proxy_url: str = _env("POOL_PROXY_URL", DEFAULT_PROXY_URL)
    api_key: str | None = _env("POOL_API_KEY", None, repr=False)
    agents_file: Path = _env("POOL_AGENTS_FILE", DEFAULT_AGENTS_FILE)
    tenant_keys_file: Path | None = _env("POOL_TENANT_KEYS_FILE", None)
    namespace: str = _env("POOL_NAMESPACE", DEFAULT_NAMESPACE)
    confirm_ttl: int = _env("POOL_CONFIRM_TTL", DEFAULT_CONFIRM_TTL, ge=1)
    memory_max_messages: int = _env("POOL_MEMORY_MAX_MESSAGES", DEFAULT_MEMORY_MAX_MESSAGES,
                                    ge=1)
    heartbeat_ms: int = _env("POOL_WORKER_HEARTBEAT_MS", DEFAULT_HEARTBEAT_MS, ge=1)
    time_limit_ms: int = _env("POOL_WORKER_TIME_LIMIT_MS", DEFAULT_TIME_LIMIT_MS, ge=1)
    max_retries: int = _env("POOL_WORKER_MAX_RETRIES", DEFAULT_MAX_RETRIES, ge=0)
    tool_threads: int = _env("POOL_WORKER_TOOL_THREADS", DEFAULT_TOOL_THREADS, ge=1)
    event_retention: int = _env("POOL_EVENT_RETENTION", DEFAULT_EVENT_RETENTION, ge=60)

    @field_validator("*", mode="before")
    @classmethod
    def _empty(cls, value: Any, info: ValidationInfo) -> Any:
        if not (isinstance(value, str) and value.strip() == ""):
            return value
        if info.field_name in OPTIONAL:
            return None
        raise ValueError("is set but empty; unset it for the default")

    @classmethod
    def from_env(cls) -> WorkerSettings:
        """The settings from the environment; :class:`WorkerSettingsError` naming the
        variable for a bad or empty value."""
        try:
            return cls()
        except ValidationError as exc:
            raise _settings_error(exc) from None

    def require_proxy_key(self) -> WorkerSettings:
        """These settings, checked for running a worker: it needs a key for the gateway."""
        if self.api_key is None and self.tenant_keys_file is None:
            raise WorkerSettingsError(
                "POOL_API_KEY", "not set: the key the worker calls the gateway with (a tenant "
                "key from `pool keys create`, or the master key's value to bill the master "
                "key; there is no fallback to LITELLM_MASTER_KEY), or give every tenant's key "
                "in POOL_TENANT_KEYS_FILE")
        return self


def _settings_error(exc: ValidationError) -> WorkerSettingsError:
    return WorkerSettingsError(*describe_settings_error(exc, WorkerSettings))
