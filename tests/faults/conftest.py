"""One dedicated proxy for the fault tests (``tests/faults/faults.yaml``: ``primary``
falling back to ``backup``, a 1.5 s timeout, no retries, no cooldowns), so that
scripted outages never poison the session's shared proxy. Its PostgreSQL goes
through a :class:`TcpForwarder` that a test can cut and restore: to the proxy,
that is what a PostgreSQL restart looks like (the shared server keeps running)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_pool.runtime import ProxyProcess, start_proxy
from tests.gateway.tcp_forwarder import TcpForwarder, forwarded_postgres, outage_env

FAULTS_CONFIG = Path(__file__).with_name("faults.yaml")
ROUTER_TIMEOUT = 1.5  # seconds, router_settings.timeout in faults.yaml


@pytest.fixture(scope="package")
def pg_forwarder(pg_url: str) -> Iterator[TcpForwarder]:
    with forwarded_postgres(pg_url) as running:
        yield running


@pytest.fixture(scope="package")
def fault_proxy(proxy_env: dict[str, str], pg_url: str, pg_forwarder: TcpForwarder,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    env = outage_env(proxy_env, pg_url, pg_forwarder)
    log = tmp_path_factory.mktemp("faults") / "fault-proxy.log"
    running = start_proxy(FAULTS_CONFIG, env=env, log_path=log)
    yield running
    running.stop()
