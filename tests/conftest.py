"""Test harness: real PostgreSQL, real Redis, the real LiteLLM proxy as a subprocess,
and the scripted provider standing in for the LLM vendor.

Integration fixtures fail (never skip) with a message saying how to start a
missing service: CI must run them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, start_proxy
from llm_pool.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, REPO_ROOT
from proxy.storage.db import migrate

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MASTER_KEY = "sk-test-master-key"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"


# ----------------------------------------------------------------- no real providers


@pytest.fixture(autouse=True)
def _no_real_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt of this test process to reach a host other than loopback."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK and not name.startswith("127."):
            raise AssertionError(f"test tried to reach a real host: {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


# ----------------------------------------------------------------- PostgreSQL


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this run, migrated (``pool db migrate``), dropped afterwards."""
    base = os.environ.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL)
    admin = _with_db(base, "postgres")
    name = f"llm_pool_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {admin} ({exc}).\n"
                    f"Start it with: {START_PG}\n(or set POOL_DATABASE_URL)", pytrace=False)
    url = _with_db(base, name)
    migrate(url)  # the gateway's schema: the proxy's custom_auth and callbacks need it
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("POOL_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc}).\nStart it with: {START_REDIS}\n"
                    "(or set POOL_REDIS_URL)", pytrace=False)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix private to one test; its keys are deleted afterwards."""
    prefix = f"llmpool-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


# ----------------------------------------------------------------- provider and proxy


@pytest.fixture(scope="session")
def provider() -> Iterator[ScriptedProvider]:
    with ScriptedProvider() as running:
        yield running


@pytest.fixture
def scripted(provider: ScriptedProvider) -> Iterator[ScriptedProvider]:
    """The shared scripted provider, with rules, scripts and request log cleared."""
    provider.reset()
    yield provider
    provider.reset()


@pytest.fixture(scope="session")
def proxy_env(provider: ScriptedProvider, pg_url: str) -> dict[str, str]:
    return {
        "POOL_PROVIDER_URL": f"{provider.url}/v1",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "POOL_DATABASE_URL": pg_url,
    }


@pytest.fixture(scope="session")
def offline_proxy(proxy_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ProxyProcess]:
    """The real stock proxy on ``config/offline.yaml``, pointed at the scripted provider."""
    log = tmp_path_factory.mktemp("proxy") / "offline-proxy.log"
    running = start_proxy(REPO_ROOT / "config" / "offline.yaml", env=proxy_env, log_path=log)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
