"""Hostile and broken requests through the real proxy, with a valid tenant key unless
the case is about the key. Every one gets a clear 4xx with a message (never a 500),
nothing reaches the provider, and the proxy still answers a normal request after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant

pytestmark = pytest.mark.integration

HI = [{"role": "user", "content": "hi"}]
HUGE = 5 * 1024 * 1024  # characters in one message


@pytest.fixture(scope="module")
def tenants(pg_url: str) -> dict[str, str]:
    """Two tenants' keys: "mine" and "theirs"."""
    return {"mine": new_tenant(pg_url, "hostile")[1], "theirs": new_tenant(pg_url, "victim")[1]}


@pytest.fixture
def http(fault_proxy: ProxyProcess, tenants: dict[str, str], scripted: ScriptedProvider
         ) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_proxy.url, timeout=60,
                      headers={"Authorization": f"Bearer {tenants['mine']}"}) as client:
        yield client
    # after every case: nothing reached the provider, and the proxy is fine
    assert scripted.requests() == [], "a hostile request reached the provider"
    with httpx.Client(base_url=fault_proxy.url, timeout=30) as client:
        assert client.get("/health/liveliness").status_code == 200
        ok = client.post("/v1/chat/completions", json={"model": "backup", "messages": HI},
                         headers={"Authorization": f"Bearer {tenants['mine']}"})
        assert ok.status_code == 200, ok.text


def _clear_4xx(response: httpx.Response, *statuses: int) -> str:
    """The error message of a 4xx JSON error answer."""
    assert response.status_code in (statuses or range(400, 500)), \
        f"{response.status_code}: {response.text[:500]}"
    body = response.json()
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, list | dict):  # FastAPI validation details
        message = json.dumps(message)
    assert isinstance(message, str) and message.strip(), body
    assert "Traceback" not in message
    return message


def _chat(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json=body)


BAD_BODIES = {
    "truncated-json": b'{"model": "backup", "messages": [{"role": "user", "content": "hi"',
    "not-json": b"model=backup&messages=hi",
    "json-array": b'[{"model": "backup"}]',
    "json-string": b'"hello"',
    "empty": b"",
    "invalid-utf8": b'{"model": "backup", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_malformed_bodies(name: str, http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=BAD_BODIES[name],
                         headers={"Content-Type": "application/json"})
    _clear_4xx(response)


WRONG_TYPES: dict[str, dict[str, Any]] = {
    "messages-a-string": {"model": "backup", "messages": "hi"},
    "messages-missing": {"model": "backup"},
    "messages-empty": {"model": "backup", "messages": []},
    "message-without-role": {"model": "backup", "messages": [{"content": "hi"}]},
    "content-a-number": {"model": "backup", "messages": [{"role": "user", "content": 42}]},
    "max-tokens-a-string": {"model": "backup", "messages": HI, "max_tokens": "x"},
    "temperature-a-list": {"model": "backup", "messages": HI, "temperature": [1]},
    "model-missing": {"messages": HI},
    "model-a-number": {"model": 7, "messages": HI},
    "unknown-alias": {"model": "gpt-4-turbo", "messages": HI},
    "credential-in-metadata": {"model": "backup", "messages": HI,
                               "metadata": {"aws_secret_access_key": "x"}},
}


@pytest.mark.parametrize("name", WRONG_TYPES)
def test_wrong_types_and_credential_fields(name: str, http: httpx.Client) -> None:
    _clear_4xx(_chat(http, **WRONG_TYPES[name]))


def test_huge_message(http: httpx.Client) -> None:
    response = _chat(http, model="backup",
                     messages=[{"role": "user", "content": "a" * HUGE}])
    message = _clear_4xx(response, 413)
    assert "too large" in message


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "aws_secret_access_key"])
def test_client_side_provider_settings_are_rejected(field: str, http: httpx.Client) -> None:
    response = _chat(http, model="backup", messages=HI, **{field: "http://attacker.example/v1"})
    message = _clear_4xx(response, 400)
    assert field in message


@pytest.mark.parametrize("key", [None, "sk-pool-not-a-key", "Bearer", "x" * 5000, "é'\"; --"])
def test_invalid_or_missing_key(key: str | None, fault_proxy: ProxyProcess,
                                http: httpx.Client) -> None:
    headers = {} if key is None else {"Authorization": f"Bearer {key}".encode()}
    response = httpx.post(f"{fault_proxy.url}/v1/chat/completions", headers=headers,
                          json={"model": "backup", "messages": HI}, timeout=30)
    _clear_4xx(response, 401)


ADMIN_READS = [
    ("GET", "/spend/logs"), ("GET", "/spend/logs?api_key={theirs}"),
    ("GET", "/global/spend"), ("GET", "/global/spend/logs"), ("GET", "/global/spend/keys"),
    ("GET", "/global/spend/teams"), ("GET", "/global/spend/report"),
    ("GET", "/spend/tags"), ("GET", "/key/info?key={theirs}"), ("GET", "/key/list"),
    ("POST", "/key/generate"), ("POST", "/key/update"), ("POST", "/key/delete"),
    ("GET", "/team/list"), ("GET", "/team/info?team_id=victim"), ("GET", "/user/info"),
    ("GET", "/user/list"), ("GET", "/customer/list"), ("GET", "/health"),
    ("GET", "/get/config/callbacks"), ("GET", "/config/list?config_type=general_settings"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_READS)
def test_tenant_cannot_reach_admin_routes(method: str, path: str, http: httpx.Client,
                                          tenants: dict[str, str]) -> None:
    url = path.format(theirs=tenants["theirs"])
    response = http.request(method, url, json={} if method == "POST" else None)
    _clear_4xx(response, 401, 403)
    assert tenants["theirs"] not in response.text
