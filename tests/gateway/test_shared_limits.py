"""Limits and budgets that hold across proxy processes (Redis): two proxies on one
database and one Redis ("a", one worker; "w2", ``--workers 2``), and "w2" alone.

Each request of the races costs $0.10 (``fast``: 500,000 completion tokens at
$0.0000002) and asks ``max_tokens`` accordingly; the provider takes a moment to
answer, so the requests really are in flight together.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
import redis

from llm_pool.cli import main
from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from proxy.admission.reservations import live_reserved, month_key
from proxy.storage.shared import gateway_prefix
from tests.gateway.conftest import SHARED_AUTH_TTL, SharedProxies
from tests.gateway.support import new_tenant, spend_rows

pytestmark = pytest.mark.integration

COST_TOKENS = 500_000  # x $0.0000002 (fast-1 output) = $0.10
AUTH_TTL = SHARED_AUTH_TTL
NAMESPACES: dict[int, str] = {}


def proxies_namespace(proxies: dict[str, ProxyProcess]) -> str:
    return NAMESPACES[id(proxies)]


@pytest.fixture(scope="module")
def proxies(shared_proxies: SharedProxies) -> dict[str, ProxyProcess]:
    """"a": one worker; "w2": ``--workers 2``; one database, one Redis (started once for
    the gateway tests, see tests/gateway/conftest.py)."""
    started = {"a": shared_proxies.a, "w2": shared_proxies.w2}
    NAMESPACES[id(started)] = shared_proxies.namespace
    return started


def script(completion: int, delay: float = 0.0, prompt: int = 10) -> str:
    step = {"text": "ok", "prompt_tokens": prompt, "completion_tokens": completion,
            "delay": delay}
    return f"[[script:{json.dumps({'steps': [step]})}]]"


def chat(url: str, key: str, content: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "fast", "messages": [{"role": "user", "content": content}],
                            **extra}, timeout=60)


def burst(urls: list[str], key: str, count: int, content: str, **extra: Any
          ) -> list[httpx.Response]:
    """``count`` requests at once, alternating between ``urls``."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: chat(urls[i % len(urls)], key, content, **extra),
                             range(count)))


def seed_spend(pg_url: str, tenant: str, amount: float) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO spend (request_id, tenant_id, call_type, cost_usd, status, "
                     "created_at) SELECT %s, id, 'acompletion', %s, 'ok', now() FROM tenants "
                     "WHERE name = %s", (f"seed-{uuid.uuid4().hex}", amount, tenant))


def month_spend(pg_url: str, tenant: str, wait_for: int, timeout: float = 20.0) -> float:
    """The tenant's total spend once ``wait_for`` rows are written."""
    deadline = time.monotonic() + timeout
    while len(rows := spend_rows(pg_url, "t.name = %s", (tenant,))) < wait_for:
        assert time.monotonic() < deadline, f"{len(rows)} of {wait_for} spend rows written"
        time.sleep(0.2)
    time.sleep(0.5)  # nothing more comes
    return float(sum(r["cost_usd"] for r in spend_rows(pg_url, "t.name = %s", (tenant,))))


def budget_race(urls: list[str], pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "race", budget="1")
    with psycopg.connect(pg_url, autocommit=True) as conn:  # above the default cap
        conn.execute("UPDATE tenants SET max_tokens = %s WHERE name = %s", (COST_TOKENS, tenant))
    seed_spend(pg_url, tenant, 0.45)  # $0.55 left: five requests of $0.10
    results = burst(urls, key, 50, f"race {script(COST_TOKENS, delay=0.5)}",
                    max_tokens=COST_TOKENS)
    answered = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert {r.status_code for r in refused} <= {429}, [r.text for r in refused][:3]
    assert all(r.json()["error"]["type"] == "budget_exceeded" for r in refused)
    assert len(answered) >= 5, f"only {len(answered)} answered: the budget covered 5"
    spent = month_spend(pg_url, tenant, wait_for=1 + len(answered))
    assert spent <= 1.0 + 0.1 + 1e-6, f"spent ${spent:.4f} of a $1 budget"


def test_budget_race_across_two_proxies(proxies: dict[str, ProxyProcess],
                                        scripted: ScriptedProvider, pg_url: str) -> None:
    budget_race([proxies["a"].url, proxies["w2"].url], pg_url)


def test_budget_race_with_two_workers(proxies: dict[str, ProxyProcess],
                                      scripted: ScriptedProvider, pg_url: str) -> None:
    budget_race([proxies["w2"].url], pg_url)


def test_rpm_is_exact_across_proxies(proxies: dict[str, ProxyProcess],
                                     scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "rpm", rpm=30)
    urls = [proxies["a"].url, proxies["w2"].url]
    results = burst(urls, key, 60, "hello")
    assert sorted({r.status_code for r in results}) == [200, 429]
    assert sum(r.status_code == 200 for r in results) == 30
    limited = next(r for r in results if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert all(r.headers["x-pool-limits"] == "shared" for r in results if r.status_code == 200)


def test_tpm_counts_long_replies_across_proxies(proxies: dict[str, ProxyProcess],
                                                scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "tpm", tpm=1000)
    results = burst([proxies["a"].url, proxies["w2"].url], key, 10,
                    f"long {script(5000, delay=0.3)}")
    answered = sum(r.status_code == 200 for r in results)
    assert answered >= 1
    month_spend(pg_url, tenant, wait_for=answered)
    rows = spend_rows(pg_url, "t.name = %s", (tenant,))
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert tokens <= 1000 + 5000 + 10, f"{tokens} tokens through a 1000 tpm limit"
    again = chat(proxies["w2"].url, key, f"more {script(5000)}")  # the window is full
    assert again.status_code == 429 and "tokens per minute" in again.json()["error"]["message"]


def test_tenants_set_applies_on_running_proxies_within_the_ttl(
        proxies: dict[str, ProxyProcess], scripted: ScriptedProvider, pg_url: str,
        redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant, key = new_tenant(pg_url, "settable")
    urls = [proxies["a"].url, proxies["w2"].url]
    assert all(chat(url, key, "free").status_code == 200 for url in urls)
    monkeypatch.setenv("POOL_DATABASE_URL", pg_url)

    assert main(["tenants", "set", tenant, "--budget", "0"]) == 0
    assert capsys.readouterr().out.startswith(
        f"tenant {tenant}: budget 0 USD/month, rpm -, tpm -, max_n default")
    time.sleep(AUTH_TTL + 0.5)
    for url in urls:
        refused = chat(url, key, "now?")
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "budget_exceeded"

    # the last minute's requests count: 2 answered (the refused ones are not counted)
    assert main(["tenants", "set", tenant, "--budget", "none", "--rpm", "3"]) == 0
    capsys.readouterr()
    time.sleep(AUTH_TTL + 0.5)
    assert [chat(url, key, "again").status_code for url in urls] == [200, 429]

    monkeypatch.setenv("POOL_REDIS_URL", redis_url)
    monkeypatch.setenv("POOL_NAMESPACE", proxies_namespace(proxies))
    assert main(["tenants", "show", tenant]) == 0
    shown = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert shown["budget_usd"] == "-" and shown["rpm"] == "3" and shown["tpm"] == "-"
    assert shown["reserved_usd"] == "0.000000" and float(shown["month_spend_usd"]) > 0
    assert main(["tenants", "set", tenant, "--rpm", "0"]) == 2
    assert main(["tenants", "set", "no-such-tenant", "--rpm", "5"]) == 1
    assert main(["tenants", "set", tenant]) == 2


def test_a_stream_settles_its_reservation(proxies: dict[str, ProxyProcess],
                                          scripted: ScriptedProvider, pg_url: str,
                                          redis_url: str) -> None:
    tenant, key = new_tenant(pg_url, "stream", budget="5")
    with httpx.stream("POST", f"{proxies['a'].url}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {key}"}, timeout=60,
                      json={"model": "fast", "stream": True, "max_tokens": 1000,
                            "messages": [{"role": "user", "content": "stream please"}]}
                      ) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    assert "[DONE]" in body
    assert month_spend(pg_url, tenant, wait_for=1) > 0
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = %s", (tenant,)).fetchone()
    assert row is not None
    prefix = gateway_prefix(proxies_namespace(proxies), pg_url)
    client = redis.Redis.from_url(redis_url)
    assert live_reserved(client, prefix, int(row[0])) == 0  # released: nothing in flight
    assert float(client.get(f"{prefix}:t:{row[0]}:spent:{month_key()}") or 0) > 0
