"""Tenant isolation through the real proxy on ``config/offline.yaml``: routes denied by
default, nothing about upstreams leaves, one tenant's bad requests never cool a deployment
down for the others, upstream client errors stay client errors, consumption caps."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from proxy.edge.routes import PUBLIC_ROUTES, TENANT_ROUTES
from proxy.storage.tenants import Caps, create_key, create_tenant
from tests.conftest import MASTER_KEY
from tests.gateway.support import new_tenant, unique, wait_for_rows

pytestmark = pytest.mark.integration


def script(*steps: dict[str, Any]) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


def chat(proxy: ProxyProcess, key: str, model: str, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions", timeout=60,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": text}],
                            **extra})


# ----------------------------------------------------------------- routes


def _app_routes() -> Iterator[tuple[str, str]]:
    """(method, concrete path) for every route of the proxy app this LiteLLM ships."""
    from litellm.proxy.proxy_server import app
    from starlette.routing import Mount, Route, WebSocketRoute

    for route in app.routes:  # routes added at import (most are added at start-up)
        path = re.sub(r"\{[^}]+\}", "x1", getattr(route, "path", ""))
        if isinstance(route, WebSocketRoute):
            yield "WEBSOCKET", path
        elif isinstance(route, Mount):
            for method in ("GET", "POST"):
                yield method, path.rstrip("/") + "/x1"
        elif isinstance(route, Route):
            for method in sorted(route.methods or {"GET"}):
                yield method, path


def _call(client: httpx.Client, method: str, path: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if method == "WEBSOCKET":  # a handshake the proxy must refuse (uvicorn then sends 403)
        headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        status = client.get(path, headers=headers).status_code
        return {403: 401}.get(status, status) if key is None else status
    return client.request(method, path, headers=headers, content=b"{}").status_code


def _served_routes(proxy: ProxyProcess) -> Iterator[tuple[str, str]]:
    """(method, concrete path) for every route the running proxy documents."""
    spec = httpx.get(f"{proxy.url}/openapi.json", timeout=60,
                     headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    for path, operations in spec["paths"].items():
        for method in operations:
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                yield method.upper(), re.sub(r"\{[^}]+\}", "x1", path)


def test_every_route_outside_the_allowlist_refuses_tenants_and_anonymous_callers(
        offline_proxy: ProxyProcess, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "routes")
    routes = sorted(set(_app_routes()) | set(_served_routes(offline_proxy)))
    assert len(routes) > 300, "the route enumeration found too few routes to be trusted"
    leaks: list[str] = []
    with httpx.Client(base_url=offline_proxy.url, timeout=30) as client:
        for method, path in routes:
            if (method, path) in TENANT_ROUTES or (method, path) in PUBLIC_ROUTES:
                continue
            as_tenant, anonymous = (_call(client, method, path, key),
                                    _call(client, method, path, None))
            if as_tenant != 403 or anonymous != 401:
                leaks.append(f"{method} {path}: tenant {as_tenant}, no key {anonymous}")
        allowed = {route: _call(client, *route, key) for route in sorted(TENANT_ROUTES)}
        unauthenticated = {route: _call(client, *route, None) for route in sorted(TENANT_ROUTES)}
        master_docs = client.get("/openapi.json", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        liveness = client.get("/health/liveliness")
    assert not leaks, f"{len(leaks)} routes do not refuse:\n" + "\n".join(leaks)
    assert all(status not in (401, 403, 404, 405) for status in allowed.values()), allowed
    assert set(unauthenticated.values()) == {401}, unauthenticated
    assert master_docs.status_code == 200 and liveness.status_code == 200


def test_pass_through_files_and_info_routes_are_refused_by_name(
        offline_proxy: ProxyProcess, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "routes")
    headers = {"Authorization": f"Bearer {key}"}
    for method, path in (("POST", "/openai/v1/chat/completions"), ("GET", "/v1/files"),
                         ("DELETE", "/v1/files/file-1"), ("GET", "/v1/batches"),
                         ("GET", "/v1/model/info"), ("GET", "/v1/responses/resp_1"),
                         ("DELETE", "/v1/responses/resp_1"), ("POST", "/v1/vector_stores")):
        got = httpx.request(method, f"{offline_proxy.url}{path}", headers=headers, json={})
        assert got.status_code == 403, (method, path, got.text)
        assert f"{method} {path} is not available to tenant keys" in got.json()["error"]["message"]
    models = httpx.get(f"{offline_proxy.url}/v1/models", headers=headers).json()["data"]
    assert {m["id"] for m in models} >= {"fast", "quality", "embedder"}
    exposed = {field for m in models for field in m}
    assert not exposed & {"api_base", "litellm_params", "model_info", "input_cost_per_token",
                          "output_cost_per_token"}, models


# ----------------------------------------------------------------- leaks


def test_nothing_about_upstreams_reaches_a_tenant(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "leak")
    upstream = scripted.url  # http://127.0.0.1:PORT
    port = upstream.rsplit(":", 1)[1]
    headers = {"Authorization": f"Bearer {key}"}
    url = offline_proxy.url
    answers = [
        chat(offline_proxy, key, "fast", "hello"),
        httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=60,
                   json={"model": "fast", "stream": True,
                         "messages": [{"role": "user", "content": "stream please"}]}),
        httpx.post(f"{url}/v1/embeddings", headers=headers, timeout=60,
                   json={"model": "embedder", "input": ["a", "b"]}),
        chat(offline_proxy, key, "fast", script(
            {"status": 404, "error_message": f"no route at {upstream}/v1/x"})),
        chat(offline_proxy, key, "economy", script(
            {"status": 500, "error_message": f"crashed at {upstream}/v1 (127.0.0.1:{port})"})),
        chat(offline_proxy, key, "fast", script(
            {"status": 422, "error_message": f"unprocessable, see {upstream}/docs"})),
        httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=60,
                   json={"model": "fast", "stream": True, "messages": [{"role": "user",
                         "content": script({"status": 500,
                                            "error_message": f"{upstream} failed"})}]}),
        chat(offline_proxy, key, "no-such-alias", "hi"),
    ]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert all(a.status_code >= 400 for a in answers[3:6]), [a.status_code for a in answers]
    for answer in answers:
        text = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        assert upstream not in text and port not in text and "127.0.0.1" not in text, text
        assert not any(k.startswith("llm_provider-") for k in answer.headers), answer.headers
        assert "x-litellm-model-api-base" not in answer.headers
        assert "x-litellm-version" not in answer.headers
    assert answers[0].headers["x-litellm-model-id"] == "fast-1"
    assert "[upstream]" in answers[3].text


# ----------------------------------------------------------------- cooldowns


def test_one_tenants_rejected_requests_never_cool_an_alias_down_for_another(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, noisy = new_tenant(pg_url, "noisy")
    _, quiet = new_tenant(pg_url, "quiet")
    marks = {"quality": unique("noisy-q"), "fast": unique("noisy-f")}
    rejections = [{"status": status, "error_message": "rejected"}
                  for status in (404, 400, 422, 401)]
    noisy_codes: list[int] = []
    quiet_codes: list[int] = []

    def noisy_tenant() -> None:
        for i in range(20):
            alias = ("quality", "fast")[i % 2]
            noisy_codes.append(chat(offline_proxy, noisy, alias,
                                    f"{marks[alias]} {script(rejections[i % 4])}").status_code)

    def quiet_tenant() -> None:
        for i in range(50):
            quiet_codes.append(chat(offline_proxy, quiet, ("quality", "fast")[i % 2],
                                    f"normal request {i}").status_code)

    threads = [threading.Thread(target=noisy_tenant), threading.Thread(target=quiet_tenant)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert quiet_codes == [200] * 50, quiet_codes
    assert len(noisy_codes) == 20 and all(400 <= c < 500 and c != 429 for c in noisy_codes), \
        noisy_codes
    # no fallback to another group: rejected quality requests never reached fast-1
    reached = {alias: [r["model"] for r in scripted.requests()
                       if mark in json.dumps(r.get("messages") or "")]
               for alias, mark in marks.items()}
    assert len(reached["quality"]) >= 10 and "fast-1" not in reached["quality"], reached
    assert reached["fast"] == ["fast-1"] * 10, reached


# ----------------------------------------------------------------- upstream client errors


def test_an_upstream_422_is_a_client_error_with_the_providers_message_and_an_error_row(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "unproc")
    got = chat(offline_proxy, key, "fast",
               script({"status": 422, "error_message": "temperature must be at most 2"}))
    assert got.status_code == 422, got.text
    assert "temperature must be at most 2" in got.json()["error"]["message"]
    row = wait_for_rows(pg_url, [got.headers["x-litellm-call-id"]])[
        got.headers["x-litellm-call-id"]]
    assert (row["tenant"], row["status"], row["model_alias"]) == (tenant, "error", "fast")
    assert len(scripted.requests("fast-1")) == 1  # not retried, not dropped-and-resent


# ----------------------------------------------------------------- caps


def _reached(scripted: ScriptedProvider, mark: str) -> int:
    return sum(mark in json.dumps(r.get("messages") or "") for r in scripted.requests())


@pytest.mark.parametrize(("extra", "named"), [
    ({"n": 5}, "n=5 is over tenant {t}'s cap max_n=4"),
    ({"max_tokens": 16_385}, "max_tokens=16,385 is over tenant {t}'s cap max_tokens=16,384"),
    ({"max_completion_tokens": 10**9}, "max_completion_tokens=1,000,000,000 is over"),
])
def test_requests_over_a_default_cap_are_refused_before_the_provider(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str,
        extra: dict[str, Any], named: str) -> None:
    tenant, key = new_tenant(pg_url, "caps")
    mark = unique("capped")
    got = chat(offline_proxy, key, "fast", mark, **extra)
    assert got.status_code == 400, got.text
    assert named.format(t=tenant) in got.json()["error"]["message"]
    assert _reached(scripted, mark) == 0
    at_cap = {k: {"n": 4}.get(k, 16_384) for k in extra}
    assert chat(offline_proxy, key, "fast", mark, **at_cap).status_code == 200
    assert _reached(scripted, mark) == 1


def test_a_huge_prompt_is_refused_by_estimate_and_a_tenant_override_lets_it_through(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "prompt")
    mark = unique("huge")
    text = mark + " " + "lorem ipsum " * 50_000  # 600 kB: 600k tokens by the bound
    got = chat(offline_proxy, key, "fast", text)
    assert got.status_code == 400, got.text
    message = got.json()["error"]["message"]
    assert f"is over tenant {tenant}'s cap max_prompt_tokens=131,072" in message
    assert _reached(scripted, mark) == 0
    roomy = unique("roomy")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tenant(conn, roomy, caps=Caps(max_n=6, max_prompt_tokens=700_000))
        roomy_key, _ = create_key(conn, roomy)
    assert chat(offline_proxy, roomy_key, "fast", text, n=6).status_code == 200
    assert _reached(scripted, mark) == 1
    assert chat(offline_proxy, roomy_key, "fast", mark, n=7).status_code == 400


def test_caps_apply_to_the_responses_and_messages_routes_too(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, key = new_tenant(pg_url, "caps")
    headers = {"Authorization": f"Bearer {key}", "x-api-key": key}
    for path, body in (
            ("/v1/responses", {"model": "fast", "input": "hi", "max_output_tokens": 20_000}),
            ("/v1/messages", {"model": "fast", "max_tokens": 20_000,
                              "messages": [{"role": "user", "content": "hi"}]})):
        got = httpx.post(f"{offline_proxy.url}{path}", headers=headers, json=body, timeout=60)
        assert got.status_code == 400, (path, got.text)
        assert f"over tenant {tenant}'s cap max_tokens=16,384" in got.text
    assert scripted.requests() == []


# ----------------------------------------------------------------- router controls

ROUTER_CONTROLS: dict[str, Any] = {
    "num_retries": 50, "max_retries": 50, "timeout": 3600, "stream_timeout": 3600,
    "fallbacks": ["quality"], "context_window_fallbacks": [{"fast": ["quality"]}],
    "mock_response": "free answer", "mock_testing_fallbacks": True,
    "mock_testing_rate_limit_error": True, "mock_timeout": True, "cooldown_time": 0,
    "caching": True, "cache": {"no-cache": True}, "api_base": "http://127.0.0.1:9/v1",
    "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-other", "litellm_metadata": {},
    "model_list": [], "user_api_key_dict": {},
}


@pytest.mark.parametrize("field", sorted(ROUTER_CONTROLS))
def test_a_tenant_cannot_steer_the_router_or_the_upstream(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str,
        field: str) -> None:
    """Retries, timeouts, fallbacks, mocks, caching and upstreams are the operator's:
    a request that sets one is refused, naming it, and nothing is sent."""
    _, key = new_tenant(pg_url, "steer")
    mark = unique("steer")
    got = chat(offline_proxy, key, "fast", mark, **{field: ROUTER_CONTROLS[field]})
    assert got.status_code == 400, got.text
    assert field in got.json()["error"]["message"]
    assert _reached(scripted, mark) == 0


def test_a_request_id_serves_one_request_never_another_tenants(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    """One row per admitted request, never shared: a client-chosen ``x-litellm-call-id``
    (LiteLLM's id of the spend row) is claimed by its request; reusing it, for the same
    tenant or another, is a 409 before anything is sent. Retrying one's own failed
    request under its id stays possible, and its answer replaces the error row."""
    victim, victim_key = new_tenant(pg_url, "victim")
    _, thief_key = new_tenant(pg_url, "thief")
    call_id, mark = unique("call"), unique("reuse")

    def post(key: str, content: str) -> httpx.Response:
        return httpx.post(f"{offline_proxy.url}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {key}",
                                   "x-litellm-call-id": call_id},
                          json={"model": "economy", "messages": [{"role": "user",
                                                                  "content": content}]})

    failed = post(victim_key, script({"status": 500}))
    assert failed.status_code == 503 and failed.headers["x-litellm-call-id"] == call_id
    assert wait_for_rows(pg_url, [call_id])[call_id]["status"] == "error"
    stolen = post(thief_key, mark)
    assert stolen.status_code == 409, stolen.text
    assert stolen.json()["error"]["param"] == "x-litellm-call-id"
    retried = post(victim_key, "hi")  # the client's retry of its failed request
    assert retried.status_code == 200, retried.text
    again = post(victim_key, mark)  # answered: the id is spent
    assert again.status_code == 409, again.text
    row = wait_for_rows(pg_url, [call_id])[call_id]
    deadline = time.monotonic() + 15
    while row["status"] != "ok":
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
        row = wait_for_rows(pg_url, [call_id])[call_id]
    assert (row["tenant"], row["status"]) == (victim, "ok")
    assert _reached(scripted, mark) == 0
