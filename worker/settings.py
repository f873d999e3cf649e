"""Worker settings, read from the environment once, at the edge.

``POOL_DATABASE_URL``, ``POOL_REDIS_URL``, ``POOL_PROXY_URL``, ``POOL_API_KEY`` (else
``LITELLM_MASTER_KEY``), ``POOL_AGENTS_FILE``, ``POOL_TENANT_KEYS_FILE``,
``POOL_NAMESPACE``, ``POOL_CONFIRM_TTL`` (seconds an undecided confirmation waits),
``POOL_MEMORY_MAX_MESSAGES``, ``POOL_WORKER_HEARTBEAT_MS`` (a worker silent this long
is dead: its messages are requeued), ``POOL_WORKER_TIME_LIMIT_MS``,
``POOL_WORKER_MAX_RETRIES``, ``POOL_WORKER_TOOL_THREADS`` (threads running sync tools,
per worker process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llm_pool.settings import DEFAULT_DATABASE_URL, DEFAULT_PROXY_URL, DEFAULT_REDIS_URL, REPO_ROOT

__all__ = [
    "DEFAULT_CONFIRM_TTL",
    "DEFAULT_MEMORY_MAX_MESSAGES",
    "DEFAULT_NAMESPACE",
    "WorkerSettings",
]

DEFAULT_CONFIRM_TTL = 600  # seconds a pending confirmation waits for the user
DEFAULT_MEMORY_MAX_MESSAGES = 50  # per conversation; oldest whole turns are trimmed
DEFAULT_NAMESPACE = "llm-pool"  # prefix of every Redis key the worker writes
DEFAULT_HEARTBEAT_MS = 60_000  # a worker silent this long is dead: its messages are requeued
DEFAULT_TIME_LIMIT_MS = 10 * 60_000  # one message's run
DEFAULT_MAX_RETRIES = 3  # redeliveries after an unexpected error (not provider outages)
DEFAULT_TOOL_THREADS = 16  # sync tools run on at most this many threads per process


@dataclass(frozen=True)
class WorkerSettings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    proxy_url: str = DEFAULT_PROXY_URL
    api_key: str | None = None
    agents_file: Path = REPO_ROOT / "config" / "agents.yaml"
    tenant_keys_file: Path | None = None  # YAML tenant -> proxy key (see worker.tenant_keys)
    namespace: str = DEFAULT_NAMESPACE
    confirm_ttl: int = DEFAULT_CONFIRM_TTL
    memory_max_messages: int = DEFAULT_MEMORY_MAX_MESSAGES
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    time_limit_ms: int = DEFAULT_TIME_LIMIT_MS
    max_retries: int = DEFAULT_MAX_RETRIES
    tool_threads: int = DEFAULT_TOOL_THREADS

    @classmethod
    def from_env(cls) -> WorkerSettings:
        env = os.environ
        api_key = env.get("POOL_API_KEY") or env.get("LITELLM_MASTER_KEY")
        return cls(
            database_url=env.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("POOL_REDIS_URL", DEFAULT_REDIS_URL),
            proxy_url=env.get("POOL_PROXY_URL", DEFAULT_PROXY_URL),
            api_key=api_key,
            agents_file=Path(env.get("POOL_AGENTS_FILE", str(cls.agents_file))),
            tenant_keys_file=Path(env["POOL_TENANT_KEYS_FILE"])
            if env.get("POOL_TENANT_KEYS_FILE") else None,
            namespace=env.get("POOL_NAMESPACE", DEFAULT_NAMESPACE),
            confirm_ttl=int(env.get("POOL_CONFIRM_TTL", DEFAULT_CONFIRM_TTL)),
            memory_max_messages=int(env.get("POOL_MEMORY_MAX_MESSAGES",
                                            DEFAULT_MEMORY_MAX_MESSAGES)),
            heartbeat_ms=int(env.get("POOL_WORKER_HEARTBEAT_MS", DEFAULT_HEARTBEAT_MS)),
            time_limit_ms=int(env.get("POOL_WORKER_TIME_LIMIT_MS", DEFAULT_TIME_LIMIT_MS)),
            max_retries=int(env.get("POOL_WORKER_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
            tool_threads=int(env.get("POOL_WORKER_TOOL_THREADS", DEFAULT_TOOL_THREADS)),
        )
