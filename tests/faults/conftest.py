"""One dedicated proxy for the fault tests (``tests/faults/faults.yaml``: ``primary``
falling back to ``backup``, a 1.5 s timeout, no retries, no cooldowns), so that
scripted outages never poison the session's shared proxy. Its PostgreSQL goes
through a :class:`TcpForwarder` that a test can cut and restore: to the proxy,
that is what a PostgreSQL restart looks like (the shared server keeps running)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llm_pool.runtime import ProxyProcess, start_proxy
from tests.gateway.tcp_forwarder import TcpForwarder, via_port

FAULTS_CONFIG = Path(__file__).with_name("faults.yaml")
ROUTER_TIMEOUT = 1.5  # seconds, router_settings.timeout in faults.yaml
AUTH_CACHE_TTL = 0.5  # key lookups expire during a PostgreSQL outage: the stale path is used


@pytest.fixture(scope="package")
def pg_forwarder(pg_url: str) -> Iterator[TcpForwarder]:
    parts = urlsplit(pg_url)
    running = TcpForwarder((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    yield running
    running.stop()


@pytest.fixture(scope="package")
def fault_proxy(proxy_env: dict[str, str], pg_url: str, pg_forwarder: TcpForwarder,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    env = {**proxy_env, "POOL_DATABASE_URL": via_port(pg_url, pg_forwarder.port),
           "POOL_SPEND_FLUSH_INTERVAL": "0.2", "POOL_SPEND_RETRY_MAX": "0.5",
           "POOL_AUTH_CACHE_TTL": str(AUTH_CACHE_TTL), "POOL_DB_TIMEOUT": "1",
           "POOL_BUDGET_REFRESH_SECONDS": "0.5"}
    log = tmp_path_factory.mktemp("faults") / "fault-proxy.log"
    running = start_proxy(FAULTS_CONFIG, env=env, log_path=log)
    yield running
    running.stop()
