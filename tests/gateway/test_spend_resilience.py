"""The spend writer under stress, on dedicated proxies: PostgreSQL unreachable during a
burst (through a TCP forwarder we cut; the shared server keeps running), and a
graceful shutdown with rows still buffered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant, spend_rows, start_many, wait_for_rows
from tests.gateway.tcp_forwarder import OUTAGE_AUTH_TTL, TcpForwarder, outage_env

pytestmark = pytest.mark.integration

BURST = 60


@pytest.fixture(scope="module")
def proxies(proxy_env: dict[str, str], pg_forwarder: TcpForwarder, pg_url: str,
            repo_root: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, ProxyProcess]]:
    """Two proxies started side by side: "outage" (PostgreSQL through the forwarder,
    quick flushes) and "shutdown" (flushes only at exit)."""
    started = start_many({
        "outage": outage_env(proxy_env, pg_url, pg_forwarder),
        "shutdown": {**proxy_env, "POOL_SPEND_FLUSH_INTERVAL": "3600",
                     "POOL_SPEND_BATCH_SIZE": "100000"},
    }, repo_root, tmp_path_factory.mktemp("resilience"))
    yield started
    for proxy in started.values():
        proxy.stop()


def _chat(proxy: ProxyProcess, key: str, text: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
        json={"model": "fast", "messages": [{"role": "user", "content": text}]}, timeout=30)
    return response.status_code, response.headers.get("x-litellm-call-id", ""), \
        time.monotonic() - started


def test_postgres_outage_during_a_burst(proxies: dict[str, ProxyProcess],
                                        pg_forwarder: TcpForwarder, scripted: ScriptedProvider,
                                        pg_url: str) -> None:
    proxy = proxies["outage"]
    tenant, key = new_tenant(pg_url, "outage", budget="100")
    warm = [_chat(proxy, key, "warm-up") for _ in range(3)]
    assert [status for status, _, _ in warm] == [200] * 3
    wait_for_rows(pg_url, [call for _, call, _ in warm])
    baseline = [_chat(proxy, key, "baseline") for _ in range(10)]
    wait_for_rows(pg_url, [call for _, call, _ in baseline])

    pg_forwarder.cut()
    try:
        time.sleep(OUTAGE_AUTH_TTL * 2)  # cached key expired: it must be served stale
        with ThreadPoolExecutor(max_workers=4) as pool:
            burst = list(pool.map(lambda i: _chat(proxy, key, f"burst {i}"), range(BURST)))
        time.sleep(1.0)  # the writer keeps failing for a while
        # the proxy really lost PostgreSQL: nothing of the burst got through
        assert len(spend_rows(pg_url, "t.name = %s", (tenant,))) == 3 + 10
    finally:
        pg_forwarder.restore()

    statuses = [status for status, _, _ in burst]
    assert statuses == [200] * BURST
    slowest = max(seconds for _, _, seconds in burst)
    assert slowest < 1.0, f"a request took {slowest:.2f} s during the outage"
    calls = [call for _, call, _ in burst]
    assert len(set(calls)) == BURST
    rows = wait_for_rows(pg_url, calls, timeout=20)
    assert {r["status"] for r in rows.values()} == {"ok"}
    all_rows = spend_rows(pg_url, "t.name = %s", (tenant,))
    assert len(all_rows) == 3 + 10 + BURST  # exactly one row per request, none twice


def test_graceful_shutdown_flushes_buffered_rows(proxies: dict[str, ProxyProcess],
                                                 scripted: ScriptedProvider, pg_url: str
                                                 ) -> None:
    proxy = proxies["shutdown"]
    tenant, key = new_tenant(pg_url, "shutdown")
    results = [_chat(proxy, key, f"before exit {i}") for i in range(5)]
    assert [status for status, _, _ in results] == [200] * 5
    time.sleep(1.0)
    assert spend_rows(pg_url, "t.name = %s", (tenant,)) == []  # still buffered
    proxy.stop()
    rows = spend_rows(pg_url, "t.name = %s", (tenant,))
    assert sorted(r["request_id"] for r in rows) == sorted(call for _, call, _ in results)
