"""Errors a client can act on, on config/config.yaml itself (providers scripted): a
provider overload is a 503 (529 on Messages) with Retry-After; every 429 carries
Retry-After on every route; error texts name the alias, never a provider, a provider
model or the fallback chain; a budget refusal is ``budget_exceeded`` on every route."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant, tokens_script, wait_for_rows
from tests.integration.production_support import deployments, start_production_proxy

pytestmark = pytest.mark.integration

ROUTES = {
    "/v1/chat/completions": lambda text: {"messages": [{"role": "user", "content": text}]},
    "/v1/responses": lambda text: {"input": text},
    "/v1/messages": lambda text: {"max_tokens": 100,
                                  "messages": [{"role": "user", "content": text}]},
}
# what a tenant must never read in an error: providers, provider models, LiteLLM's chain
LEAKS = re.compile(r"anthropic|openai|ollama|claude|gpt-|qwen|exception|litellm|fallback|"
                   r"model group|retried", re.IGNORECASE)


@pytest.fixture(scope="module")
def errors_proxy(tmp_path_factory: pytest.TempPathFactory, proxy_env: dict[str, str],
                 provider: ScriptedProvider) -> Iterator[ProxyProcess]:
    running = start_production_proxy(provider, proxy_env,
                                     tmp_path_factory.mktemp("errors") / "proxy.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tenant_key(pg_url: str) -> str:
    return new_tenant(pg_url, "errors")[1]


def _send(proxy: ProxyProcess, key: str, route: str, alias: str, text: str = "hello",
          stream: bool = False) -> httpx.Response:
    return httpx.post(f"{proxy.url}{route}", timeout=120,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": alias, "stream": stream, **ROUTES[route](text)})


def _error(route: str, response: httpx.Response) -> tuple[str, str]:
    """(type, message) in the route's own error shape."""
    body = response.json()
    if route == "/v1/messages":
        assert body["type"] == "error", body
    return str(body["error"]["type"]), str(body["error"]["message"])


def _overload_everything(provider: ScriptedProvider) -> None:
    provider.add_rule("claude-*", {"status": 529, "error_message": "Overloaded"})
    provider.add_rule("gpt-*", {"status": 503, "error_message": "upstream overloaded"})
    provider.add_rule("qwen3*", {"status": 503, "error_message": "server busy"})


# (runs first: the 429 and overload tests below leave the aliases cooling down)
def test_budget_refusal_is_budget_exceeded_on_every_route_with_the_alias_in_its_row(
        errors_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "errors-poor", budget="0.01")
    spent = _send(errors_proxy, key, "/v1/chat/completions", "economy",
                  tokens_script(100_000, 0))  # $0.075 at gpt-5.4-mini's price
    assert spent.status_code == 200, spent.text
    deadline = time.monotonic() + 15
    while (first := _send(errors_proxy, key, "/v1/chat/completions", "economy")
           ).status_code == 200:
        assert time.monotonic() < deadline, "the budget was never enforced"
        time.sleep(0.2)
    refusals = {route: _send(errors_proxy, key, route, "economy") for route in ROUTES}
    for route, response in refusals.items():
        assert response.status_code == 429, (route, response.text)
        kind, message = _error(route, response)
        assert kind == "budget_exceeded" and not LEAKS.search(message), (route, response.text)
        assert int(response.headers["retry-after"]) >= 1, route
    ids = [r.headers["x-litellm-call-id"] for r in refusals.values()]
    rows = wait_for_rows(pg_url, ids)
    assert {(r["model_alias"], r["status"]) for r in rows.values()} == {("economy", "error")}
    assert first.status_code == 429 and json.loads(first.text)["error"]["type"] == \
        "budget_exceeded"


@pytest.mark.parametrize("route", ROUTES)
def test_provider_429_carries_retry_after_on_every_route(
        errors_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        route: str) -> None:
    # Retry-After 1 s: LiteLLM sleeps what the provider asks before each of num_retries
    # retries (7 s made this test ~22 s per route); the client's header must still be >= 1
    scripted.add_rule("gpt-5.4-mini", {"status": 429, "retry_after": 1,
                                       "error_message": "Rate limit reached for gpt-5.4-mini"})
    response = _send(errors_proxy, tenant_key, route, "economy")
    _, message = _error(route, response)
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "'economy'" in message and not LEAKS.search(message), message


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("alias", ["economy", "quality"])
def test_overload_is_a_503_or_529_with_retry_after_naming_the_alias(
        errors_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str, alias: str,
        route: str, stream: bool) -> None:
    _overload_everything(scripted)
    response = _send(errors_proxy, tenant_key, route, alias, stream=stream)
    kind, message = _error(route, response)
    own = {d.upstream_model for d in deployments() if d.alias == alias}
    if not own & {r["model"] for r in scripted.requests()}:  # still cooling down from before
        assert response.status_code == 429 and "cooldown" in message, response.text
    elif route == "/v1/messages":
        assert (response.status_code, kind) == (529, "overloaded_error"), response.text
    else:
        assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert f"'{alias}'" in message and not LEAKS.search(message), message
