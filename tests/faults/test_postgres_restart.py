"""PostgreSQL "restarted" twice under continuous load from several tenants.

The fault proxy reaches PostgreSQL through a TCP forwarder; cutting it drops every
open connection and refuses new ones, then restoring it accepts them again: what a
restart looks like from the proxy (the machine's shared server keeps running).
``tests/gateway/test_spend_resilience.py`` covers one outage during a burst sent
after the cut; here the cuts land *while* requests are in flight and spend batches
are being written, twice, and every request must still succeed and be counted once.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant, spend_rows, wait_for_rows
from tests.gateway.tcp_forwarder import OUTAGE_AUTH_TTL, TcpForwarder

pytestmark = pytest.mark.integration

CLIENTS_PER_TENANT = 2
OUTAGE_SECONDS = 1.5
UP_SECONDS = 1.2


@dataclass
class Sent:
    tenant: str
    status: int
    call_id: str
    seconds: float
    during_outage: bool


@dataclass
class Load:
    proxy: ProxyProcess
    outage: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, tenant: str, key: str) -> None:
        with httpx.Client(base_url=self.proxy.url, timeout=30,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                in_outage = self.outage.is_set()
                started = time.monotonic()
                response = http.post("/v1/chat/completions", json={
                    "model": "fast", "messages": [{"role": "user", "content": f"load {n}"}]})
                sent = Sent(tenant, response.status_code,
                            response.headers.get("x-litellm-call-id", ""),
                            time.monotonic() - started, in_outage or self.outage.is_set())
                with self.lock:
                    self.sent.append(sent)


def _rows_of(pg_url: str, tenants: list[str]) -> int:
    return len(spend_rows(pg_url, "t.name = ANY(%s)", (tenants,)))


def test_postgres_restarted_twice_under_load_loses_nothing(
        fault_proxy: ProxyProcess, pg_forwarder: TcpForwarder, scripted: ScriptedProvider,
        pg_url: str) -> None:
    keys = dict(new_tenant(pg_url, f"pgload{i}", budget="100" if i == 0 else None)
                for i in range(3))
    tenants = list(keys)
    load = Load(fault_proxy)
    with httpx.Client(base_url=fault_proxy.url, timeout=30) as http:  # keys known to the proxy
        warm = [http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "fast", "messages": [{"role": "user", "content": "w"}]})
                for key in keys.values()]
    assert [r.status_code for r in warm] == [200] * 3
    wait_for_rows(pg_url, [r.headers["x-litellm-call-id"] for r in warm])

    threads = [threading.Thread(target=load.client, args=(tenant, key))
               for tenant, key in keys.items() for _ in range(CLIENTS_PER_TENANT)]
    for thread in threads:
        thread.start()
    frozen: list[tuple[int, int]] = []  # (rows early in the outage, rows at its end)
    try:
        for _ in range(2):
            time.sleep(UP_SECONDS)
            load.outage.set()
            pg_forwarder.cut()
            try:
                time.sleep(max(OUTAGE_AUTH_TTL * 2, 0.8))  # cached keys expired: served stale
                early = _rows_of(pg_url, tenants)
                time.sleep(OUTAGE_SECONDS - 0.8)
                frozen.append((early, _rows_of(pg_url, tenants)))
            finally:
                pg_forwarder.restore()
                load.outage.clear()
        time.sleep(UP_SECONDS)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(30)

    sent = load.sent
    failed = [s for s in sent if s.status != 200]
    assert not failed, f"{len(failed)} of {len(sent)} requests failed: {failed[:3]}"
    assert all(early == late for early, late in frozen), f"rows written while cut: {frozen}"
    in_outage = [s for s in sent if s.during_outage]
    assert len(in_outage) >= 10, "the load did not overlap the outages"
    slowest = max(s.seconds for s in sent)
    assert slowest < 2.0, f"a request took {slowest:.2f} s"

    calls = [s.call_id for s in sent]
    assert len(set(calls)) == len(calls) and all(calls)
    rows = wait_for_rows(pg_url, calls, timeout=20)
    assert {r["status"] for r in rows.values()} == {"ok"}
    for tenant in tenants:  # exactly one row per request per tenant: none lost, none twice
        mine = sum(1 for s in sent if s.tenant == tenant)
        assert len(spend_rows(pg_url, "t.name = %s", (tenant,))) == mine + 1  # + warm-up
    print(f"\npostgres restarted twice: {len(sent)} requests ({len(in_outage)} during the "
          f"outages), 0 failed, {len(rows)} spend rows; latency p50 "
          f"{statistics.median(s.seconds for s in sent) * 1000:.0f} ms, "
          f"max {slowest * 1000:.0f} ms")
