"""``/metrics`` on a real two-worker proxy after real traffic: LiteLLM's Prometheus
integration (per tenant, key label, alias, deployment) and the gateway's own figures,
added up over both worker processes; readable with the master key or POOL_METRICS_KEY
only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, start_proxy
from tests.gateway.support import expected_cost, new_tenant, spend_rows, tokens_script

pytestmark = pytest.mark.integration

METRICS_KEY = "sk-metrics-test-only"
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def two_worker_proxy(proxy_env: dict[str, str], redis_url: str,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    log = tmp_path_factory.mktemp("metrics") / "proxy.log"
    env = {**proxy_env, "POOL_METRICS_KEY": METRICS_KEY, "POOL_SPEND_FLUSH_INTERVAL": "0.2",
           "POOL_AUTH_CACHE_TTL": "600", "POOL_REDIS_URL": redis_url}
    running = start_proxy(Path("config/offline.yaml").resolve(), env=env, workers=2,
                          log_path=log)
    yield running
    running.stop()


def _scrape(url: str, key: str | None = METRICS_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/metrics/", headers=headers, timeout=30)


def _samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for found, value in samples.get(name, [])
               if all(found.get(k) == v for k, v in labels.items()))


def _chat(url: str, key: str, model: str, content: str) -> httpx.Response:
    # a new connection per request, so that both worker processes get some
    with httpx.Client(timeout=60) as http:
        return http.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": model, "messages": [{"role": "user", "content": content}]})


def _settled(url: str, requests: int, timeout: float = 30.0) -> Samples:
    """Scrape until the gateway's own counters have seen ``requests`` tenant requests and
    written their rows, none left waiting (its poller runs every second)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = _samples(_scrape(url).text)
        checks = (_total(samples, "pool_key_cache_hits_total")
                  + _total(samples, "pool_key_cache_misses_total"),
                  _total(samples, "pool_spend_rows_written_total") >= requests,
                  _total(samples, "pool_spend_buffer_rows"))
        if checks == (requests, True, 0) or time.monotonic() > deadline:
            assert checks == (requests, True, 0)
            return samples
        time.sleep(0.5)


def test_metrics_after_real_traffic(two_worker_proxy: ProxyProcess, pg_url: str,
                                    scripted: ScriptedProvider) -> None:
    url = two_worker_proxy.url
    tenant, key = new_tenant(pg_url, "metrics", label="billing")
    for _ in range(6):
        assert _chat(url, key, "fast", tokens_script(10, 5)).status_code == 200
    scripted.add_rule("quality-*", {"status": 500, "error_message": "provider outage"})
    fallback = _chat(url, key, "quality", tokens_script(10, 5))
    assert fallback.status_code == 200 and fallback.headers["x-litellm-model-id"] == "fast-1"
    scripted.reset()
    scripted.add_rule("economy-*", {"status": 400, "error_message": "bad request"})
    assert _chat(url, key, "economy", "x").status_code == 400

    samples = _settled(url, 8)
    rows = spend_rows(pg_url, "t.name = %s", (tenant,))
    # one row per request; the fallback's failed first attempt may have a row of its own
    assert len([r for r in rows if r["status"] == "ok"]) == 7 and len(rows) >= 8
    # one key-store query per worker process that saw the key (each has its own cache)
    assert 1 <= _total(samples, "pool_key_cache_misses_total") <= 2
    ours = {"team": tenant, "api_key_alias": "billing"}
    assert _total(samples, "litellm_requests_metric_total", **ours) == 7  # the 400 is a failure
    assert _total(samples, "litellm_requests_metric_total", **ours, model_id="fast-1") == 7
    assert _total(samples, "litellm_deployment_successful_fallbacks_total",
                  team=tenant, requested_model="quality", fallback_model="fast") == 1
    assert _total(samples, "litellm_proxy_failed_requests_metric_total", **ours) == 1
    assert _total(samples, "litellm_total_tokens_metric_total", **ours) == 7 * 15
    spent = _total(samples, "litellm_spend_metric_total", **ours)
    assert spent == pytest.approx(7 * expected_cost("fast-1", 10, 5))
    assert spent == pytest.approx(float(sum((r["cost_usd"] for r in rows), Decimal(0))))
    assert _total(samples, "pool_spend_buffer_rows") == 0
    assert _total(samples, "pool_spend_rows_dropped_total") == 0
    assert _total(samples, "pool_spend_rows_written_total") >= 8
    assert _total(samples, "pool_spend_seconds_since_last_write") == 0
    assert _total(samples, "pool_key_store_errors_total") == 0
    # both workers answer scrapes with the same totals (PROMETHEUS_MULTIPROC_DIR)
    for _ in range(4):
        again = _samples(_scrape(url).text)
        assert _total(again, "litellm_requests_metric_total", **ours) == 7


def test_metrics_are_refused_to_tenants_and_anonymous_callers(
        two_worker_proxy: ProxyProcess, pg_url: str) -> None:
    url = two_worker_proxy.url
    _, key = new_tenant(pg_url, "metrics-refused")
    assert _scrape(url, None).status_code == 401
    assert _scrape(url, key).status_code == 403
    assert _scrape(url, METRICS_KEY + "x").status_code == 403
    master = _scrape(url, "sk-test-master-key")
    assert master.status_code == 200 and "pool_spend_buffer_rows" in master.text
    other = httpx.get(f"{url}/health/readiness", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert other.status_code == 403


def test_get_metrics_without_the_slash_answers_200(two_worker_proxy: ProxyProcess) -> None:
    bare = httpx.get(f"{two_worker_proxy.url}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert bare.status_code == 200 and "pool_spend_buffer_rows" in bare.text  # not a 307


def test_readiness_reports_our_postgres_and_redis(two_worker_proxy: ProxyProcess) -> None:
    ready = httpx.get(f"{two_worker_proxy.url}/health/readiness",
                      headers={"Authorization": "Bearer sk-test-master-key"}, timeout=30)
    body = ready.json()
    assert ready.status_code == 200, body
    assert (body["status"], body["postgres"], body["redis"]) == (
        "healthy", "connected", "connected")
    assert "db" not in body  # LiteLLM's Prisma slot


def test_no_cost_map_warnings_at_start(two_worker_proxy: ProxyProcess) -> None:
    log = two_worker_proxy.log_path.read_text(errors="replace")
    assert "cost map" not in log, [line for line in log.splitlines() if "cost map" in line]
