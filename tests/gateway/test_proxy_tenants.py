"""Tenant keys, spend rows, budgets and limits through the real proxy (config/offline.yaml),
the official openai client and the scripted provider."""

from __future__ import annotations

import time

import httpx
import openai
import psycopg
import pytest

from llm_pool.cli import main
from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.conftest import MASTER_KEY
from tests.gateway.support import (
    add_key,
    client,
    expected_cost,
    new_tenant,
    spend_rows,
    tokens_script,
    wait_for_rows,
)

pytestmark = pytest.mark.integration

AUTH_CACHE_TTL = 5.0  # the default POOL_AUTH_CACHE_TTL the shared proxy runs with
BUDGET_REFRESH = 5.0  # the default POOL_BUDGET_REFRESH_SECONDS


def ask(proxy: ProxyProcess, key: str, model: str, text: str) -> tuple[str, float]:
    """One chat completion: (call id, LiteLLM's cost header)."""
    raw = client(proxy.url, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}])
    raw.parse()
    return raw.headers["x-litellm-call-id"], float(raw.headers["x-litellm-response-cost"])


def test_two_tenants_chat_rows_carry_tenant_alias_deployment_tokens_and_cost(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    acme, acme_key = new_tenant(pg_url, "acme", label="acme-svc")
    beta, beta_key = new_tenant(pg_url, "beta", label="beta-svc")
    acme_calls = [ask(offline_proxy, acme_key, "fast", f"hi {tokens_script(1000, 500)}")
                  for _ in range(2)]
    beta_calls = [ask(offline_proxy, beta_key, "economy", f"hi {tokens_script(2000, 300)}")]

    rows = wait_for_rows(pg_url, [c for c, _ in acme_calls + beta_calls])
    for call_id, header_cost in acme_calls:
        row = rows[call_id]
        assert (row["tenant"], row["key_label"], row["model_alias"], row["deployment"],
                row["provider_model"], row["call_type"], row["status"]) == (
            acme, "acme-svc", "fast", "fast-1", "openai/fast-1", "acompletion", "ok")
        assert (row["prompt_tokens"], row["completion_tokens"]) == (1000, 500)
        assert float(row["cost_usd"]) == pytest.approx(expected_cost("fast-1", 1000, 500))
        assert float(row["cost_usd"]) == pytest.approx(header_cost) and header_cost > 0
        assert row["latency_ms"] > 0 and row["error_class"] is None
    (beta_call, beta_cost), = beta_calls
    assert rows[beta_call]["tenant"] == beta
    assert rows[beta_call]["deployment"] == "economy-1"
    assert float(rows[beta_call]["cost_usd"]) == pytest.approx(beta_cost)
    assert beta_cost == pytest.approx(expected_cost("economy-1", 2000, 300))
    # a key of one tenant never records under the other
    assert {r["request_id"] for r in spend_rows(pg_url, "t.name = %s", (acme,))} == {
        c for c, _ in acme_calls}
    assert {r["request_id"] for r in spend_rows(pg_url, "t.name = %s", (beta,))} == {beta_call}


def test_streaming_is_costed_from_the_final_usage(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "stream")
    raw = client(offline_proxy.url, key).chat.completions.with_raw_response.create(
        model="fast", stream=True,
        messages=[{"role": "user", "content": f"stream {tokens_script(4321, 1234, 'a b c d')}"}])
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "a b c d"
    row = wait_for_rows(pg_url, [raw.headers["x-litellm-call-id"]])[raw.headers[
        "x-litellm-call-id"]]
    # the provider's usage chunk (not a local token estimate) is what gets billed
    assert (row["tenant"], row["prompt_tokens"], row["completion_tokens"]) == (tenant, 4321, 1234)
    assert float(row["cost_usd"]) == pytest.approx(expected_cost("fast-1", 4321, 1234))
    assert row["status"] == "ok" and row["deployment"] == "fast-1"


def test_embeddings_row(offline_proxy: ProxyProcess, scripted: ScriptedProvider,
                        pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "embed")
    texts = ["x" * 400, "y" * 800]  # the provider counts len // 4 tokens: 100 + 200
    raw = client(offline_proxy.url, key).embeddings.with_raw_response.create(
        model="embedder", input=texts)
    assert len(raw.parse().data) == 2
    call_id = raw.headers["x-litellm-call-id"]
    row = wait_for_rows(pg_url, [call_id])[call_id]
    assert (row["tenant"], row["call_type"], row["model_alias"], row["deployment"]) == (
        tenant, "aembedding", "embedder", "embedder-1")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (300, 0)
    assert float(row["cost_usd"]) == pytest.approx(expected_cost("embedder-1", 300, 0))
    assert float(row["cost_usd"]) == pytest.approx(float(raw.headers["x-litellm-response-cost"]))


def test_failed_request_lands_as_an_error_row(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "fails")
    scripted.add_rule("economy-*", {"status": 500, "error_message": "economy is down"})
    with pytest.raises(openai.InternalServerError) as caught:
        client(offline_proxy.url, key).chat.completions.create(
            model="economy", messages=[{"role": "user", "content": "hi"}])
    call_id = caught.value.response.headers["x-litellm-call-id"]
    row = wait_for_rows(pg_url, [call_id])[call_id]
    assert (row["tenant"], row["status"], row["error_class"], row["model_alias"],
            row["deployment"]) == (tenant, "error", "InternalServerError", "economy", "economy-1")
    assert float(row["cost_usd"]) == 0 and row["prompt_tokens"] == 0


def test_fallback_is_one_ok_row_for_the_answering_deployment(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "fallback")
    scripted.add_rule("quality-*", {"status": 500})
    call_id, cost = ask(offline_proxy, key, "quality", "hi")
    deadline = time.monotonic() + 10
    # the failed first attempt may be written first; the answer then replaces it
    while (row := wait_for_rows(pg_url, [call_id])[call_id])["status"] != "ok":
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    assert (row["model_alias"], row["deployment"]) == ("fast", "fast-1")
    assert float(row["cost_usd"]) == pytest.approx(cost) and cost > 0
    time.sleep(1.5)  # a late failure event must not overwrite it
    assert [(r["status"], r["deployment"]) for r in spend_rows(
        pg_url, "s.request_id = %s", (call_id,))] == [("ok", "fast-1")]


def test_master_key_spend_is_recorded_without_a_tenant(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    call_id, _ = ask(offline_proxy, MASTER_KEY, "fast", "admin call")
    row = wait_for_rows(pg_url, [call_id])[call_id]
    assert (row["tenant_id"], row["key_label"], row["status"]) == (None, "master key", "ok")


# ----------------------------------------------------------------- auth


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error: dict[str, object] = body["error"]
    return error


def _post_chat(proxy: ProxyProcess, key: str | None, **extra: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(f"{proxy.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": "fast", "messages": [{"role": "user", "content": "hi"}],
                            **extra})


def test_unknown_key_is_a_clear_401(offline_proxy: ProxyProcess, scripted: ScriptedProvider
                                    ) -> None:
    response = _post_chat(offline_proxy, "sk-pool-not-a-real-key")
    assert response.status_code == 401
    error = _error(response)
    assert error["type"] == "auth_error"
    assert error["message"] == "invalid API key: sk-pool-not-... is not a valid key"
    assert _post_chat(offline_proxy, None).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client(offline_proxy.url, "sk-wrong").models.list()
    assert scripted.requests() == []


def test_revoked_key_gets_401_within_the_cache_ttl(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tenant, key = new_tenant(pg_url, "revoke", label="doomed")
    other = add_key(pg_url, tenant, "survivor")
    assert _post_chat(offline_proxy, key).status_code == 200
    monkeypatch.setenv("POOL_DATABASE_URL", pg_url)
    assert main(["keys", "revoke", f"{tenant}/doomed"]) == 0
    assert f"revoked key 'doomed' ({key[:16]}...) of tenant {tenant}" in capsys.readouterr().out
    revoked_at = time.monotonic()
    while (response := _post_chat(offline_proxy, key)).status_code == 200:
        assert time.monotonic() - revoked_at < AUTH_CACHE_TTL + 3, "revocation not seen"
        time.sleep(0.25)
    assert response.status_code == 401
    assert _error(response)["message"] == f"invalid API key: {key[:12]}... was revoked"
    assert _post_chat(offline_proxy, other).status_code == 200  # the tenant's other key


def test_tenant_keys_are_confined_to_model_routes(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "confined")
    headers = {"Authorization": f"Bearer {key}"}
    models = httpx.get(f"{offline_proxy.url}/v1/models", headers=headers)
    assert models.status_code == 200 and "fast" in {m["id"] for m in models.json()["data"]}
    for method, path in (("POST", "/key/generate"), ("POST", "/model/new"),
                         ("GET", "/global/spend/logs"), ("POST", "/config/update")):
        response = httpx.request(method, f"{offline_proxy.url}{path}", headers=headers, json={})
        assert response.status_code == 403, (path, response.text)
        assert f"{method} {path} is not available to tenant keys" in response.text


def test_client_side_api_base_is_rejected(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "sneaky")
    response = _post_chat(offline_proxy, key, api_base="http://attacker.example/v1")
    assert response.status_code == 400, response.text
    assert str(_error(response)["message"]).startswith(
        "Rejected Request: api_base is not allowed in request body")
    assert scripted.requests() == []


def test_admin_ui_is_off(offline_proxy: ProxyProcess) -> None:
    assert httpx.get(f"{offline_proxy.url}/sso/key/generate").status_code == 401
    page = httpx.get(f"{offline_proxy.url}/sso/key/generate",
                     headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert "Admin UI is Disabled" in page.text


# ----------------------------------------------------------------- budgets and limits


def test_tenant_over_budget_gets_the_budget_error_and_the_other_does_not(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    poor, poor_key = new_tenant(pg_url, "poor", budget="0.05")
    _, rich_key = new_tenant(pg_url, "rich", budget="50")
    expensive = f"hi {tokens_script(1_000_000, 0)}"  # fast-1: $0.10
    ask(offline_proxy, poor_key, "fast", expensive)  # under budget when it started
    deadline = time.monotonic() + 5
    while (response := _post_chat(offline_proxy, poor_key)).status_code == 200:
        assert time.monotonic() < deadline, "the budget was never enforced"
        time.sleep(0.1)
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    error = _error(response)
    assert error["type"] == "budget_exceeded"
    assert error["message"] == (
        f"tenant {poor} has reached its monthly budget of $0.05 (spent $0.10)")
    with pytest.raises(openai.RateLimitError) as caught:  # what the SDK sees
        client(offline_proxy.url, poor_key).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "again"}])
    assert caught.value.status_code == 429
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "budget_exceeded"
    ask(offline_proxy, rich_key, "fast", expensive)  # the other tenant is unaffected
    assert _post_chat(offline_proxy, rich_key).status_code == 200


def test_budget_counts_spend_recorded_by_other_proxies(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "shared", budget="1")
    assert _post_chat(offline_proxy, key).status_code == 200
    with psycopg.connect(pg_url, autocommit=True) as conn:  # another proxy's spend
        conn.execute("INSERT INTO spend (request_id, tenant_id, call_type, cost_usd, status, "
                     "created_at) SELECT 'elsewhere-' || id, id, 'acompletion', 1.5, 'ok', now() "
                     "FROM tenants WHERE name = %s", (tenant,))
    deadline = time.monotonic() + BUDGET_REFRESH + 3
    while (response := _post_chat(offline_proxy, key)).status_code == 200:
        assert time.monotonic() < deadline, "spend written elsewhere never counted"
        time.sleep(0.25)
    assert response.status_code == 429 and _error(response)["type"] == "budget_exceeded"
    assert "monthly budget of $1.00 (spent $1.50" in str(_error(response)["message"])


def test_rpm_limit_is_per_tenant_across_its_keys(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, first = new_tenant(pg_url, "limited", rpm=2)
    second = add_key(pg_url, tenant, "second")
    _, free_key = new_tenant(pg_url, "unlimited")
    assert _post_chat(offline_proxy, first).status_code == 200
    assert _post_chat(offline_proxy, second).status_code == 200
    limited = _post_chat(offline_proxy, second)
    assert limited.status_code == 429, limited.text
    assert f"Rate limit exceeded for team: {tenant}" in str(_error(limited)["message"])
    assert _post_chat(offline_proxy, first).status_code == 429
    assert all(_post_chat(offline_proxy, free_key).status_code == 200 for _ in range(3))
