"""Bounded metadata against the real proxy: 5,000 requests, each with its own User-Agent,
X-Forwarded-For, tag, end user, service tier or unknown model name, add fewer than 100
series to ``/metrics``; tags beyond the caps are refused with 400 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant

pytestmark = pytest.mark.integration

REQUESTS = 5000
NEW_SERIES_MAX = 100
HI = [{"role": "user", "content": "hi"}]


def series(url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every (sample name, labels) ``/metrics`` shows."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics/", headers={"Authorization": "Bearer sk-test-master-key"},
                     timeout=60).raise_for_status().text
    return {(sample.name, tuple(sorted(sample.labels.items())))
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _variant(i: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Request ``i``: one freely chosen value where LiteLLM might make a label of it."""
    body: dict[str, Any] = {"model": "fast", "messages": HI, "max_tokens": 5}
    headers: dict[str, str] = {}
    match i % 6:
        case 0:
            headers["User-Agent"] = f"agent/{i}"
        case 1:
            headers["X-Forwarded-For"] = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        case 2:
            body["tags"] = [f"tag-{i}"]
        case 3:
            body["user"] = f"end-user-{i}"
        case 4:
            body["model"] = f"no-such-model-{i}"  # refused (400/404): a series must not follow
        case _:
            body["metadata"] = {"tags": [f"meta-{i}"]}
    return headers, body


@pytest.fixture
def http(offline_proxy: ProxyProcess, pg_url: str, scripted: ScriptedProvider
         ) -> Iterator[httpx.Client]:
    key = new_tenant(pg_url, "series")[1]
    with httpx.Client(base_url=offline_proxy.url, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_tenant_chosen_values_add_no_series(offline_proxy: ProxyProcess,
                                            http: httpx.Client) -> None:
    def send(i: int) -> int:
        headers, body = _variant(i)
        return http.post("/v1/chat/completions", json=body, headers=headers).status_code

    assert send(0) == 200 and send(4) in (400, 404)  # every kind of series exists once
    before = series(offline_proxy.url)
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(send, range(1, REQUESTS + 1)))
    added = series(offline_proxy.url) - before
    print(f"{REQUESTS} requests: {len(added)} new series, statuses "
          f"{sorted((s, statuses.count(s)) for s in set(statuses))}")
    assert all(s == 200 for i, s in enumerate(statuses, 1) if i % 6 != 4)
    assert len(added) < NEW_SERIES_MAX, sorted(added)[:20]


@pytest.mark.parametrize(("field", "extra", "headers"), [
    ("tags", {"tags": [f"t{i}" for i in range(17)]}, {}),
    ("tags", {"tags": ["x" * 65]}, {}),
    ("tags", {"tags": "not-a-list"}, {}),
    ("metadata.tags", {"metadata": {"tags": [f"t{i}" for i in range(3302)]}}, {}),
    ("litellm_metadata", {"litellm_metadata": {"tags": [{"a": 1}]}}, {}),  # refused whole
    ("x-litellm-tags", {}, {"x-litellm-tags": ",".join(f"t{i}" for i in range(17))}),
    ("tags", {"tags": [f"a{i}" for i in range(10)], "metadata": {"tags": [
        f"b{i}" for i in range(10)]}}, {}),
])
def test_tags_beyond_the_caps_are_refused(field: str, extra: dict[str, Any],
                                          headers: dict[str, str], http: httpx.Client,
                                          scripted: ScriptedProvider) -> None:
    response = http.post("/v1/chat/completions", headers=headers,
                         json={"model": "fast", "messages": HI, **extra})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]
    assert scripted.requests() == []
    ok = http.post("/v1/chat/completions", json={
        "model": "fast", "messages": HI, "tags": [f"t{i}" for i in range(15)] + ["x" * 64],
        "metadata": {"tags": ["t1", "x" * 64]}})
    assert ok.status_code == 200, ok.text  # at the caps: served
