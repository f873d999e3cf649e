"""Fixtures of the gateway tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_pool.runtime import ProxyProcess
from tests.gateway.support import forget, start_many
from tests.gateway.tcp_forwarder import TcpForwarder, forwarded_postgres

SHARED_AUTH_TTL = 1.0  # seconds a key lookup is trusted by the shared proxies


@pytest.fixture(scope="module")
def pg_forwarder(pg_url: str) -> Iterator[TcpForwarder]:
    """The test PostgreSQL behind a :class:`TcpForwarder` the module's tests may cut."""
    with forwarded_postgres(pg_url) as running:
        yield running


@dataclass(frozen=True)
class SharedProxies:
    a: ProxyProcess  # one worker
    w2: ProxyProcess  # ``--workers 2``
    namespace: str  # their POOL_NAMESPACE in the shared Redis


@pytest.fixture(scope="package")
def shared_proxies(proxy_env: dict[str, str], redis_url: str, repo_root: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedProxies]:
    """Two proxies on ``config/offline.yaml``, one database, one Redis namespace, key
    lookups trusted :data:`SHARED_AUTH_TTL`: started once (side by side) for the gateway
    modules whose tests need proxies that share state (test_request_rules,
    test_shared_limits; each test uses tenants of its own)."""
    namespace = f"llmpool-test-{uuid.uuid4().hex[:10]}"
    env = {**proxy_env, "POOL_REDIS_URL": redis_url, "POOL_NAMESPACE": namespace,
           "POOL_AUTH_CACHE_TTL": str(SHARED_AUTH_TTL)}
    started = start_many({"a": env, "w2": env}, repo_root, tmp_path_factory.mktemp("shared"),
                         workers={"w2": 2})
    yield SharedProxies(started["a"], started["w2"], namespace)
    for proxy in started.values():
        proxy.stop()
    forget(redis_url, namespace)
