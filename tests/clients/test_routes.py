"""`/v1/responses` and `/v1/messages` over plain HTTP for every alias of
config/offline.yaml, whose upstream (the scripted provider) speaks chat completions
only: LiteLLM bridges both APIs to it (the YAML's bridging settings). Each call is one
spend row for the tenant. Stateful Responses features get a clear 400; errors on the
Anthropic route come in Anthropic's shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

from llm_pool.settings import REPO_ROOT
from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration

ALIASES = sorted({m["model_name"] for m in yaml.safe_load(
    (REPO_ROOT / "config" / "offline.yaml").read_text())["model_list"]})
ASK = "what is the weather in Paris"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "the weather",
                  "parameters": SCHEMA}
MESSAGES_TOOL = {"name": "get_weather", "description": "the weather", "input_schema": SCHEMA}


def _post(tenant: Tenant, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tenant.key}"}
    if path.startswith("/v1/messages"):
        headers = {"x-api-key": tenant.key, "anthropic-version": "2023-06-01"}
    return httpx.post(f"{tenant.proxy_url}{path}", json=body, headers=headers, timeout=60)


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line[5:]) for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def _output_text(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


@pytest.mark.parametrize("alias", ALIASES)
def test_responses_on_every_alias(tenant: Tenant, alias: str) -> None:
    plain = _post(tenant, "/v1/responses", {"model": alias, "input": "hello there"})
    assert plain.status_code == 200, plain.text
    assert "You said: hello there" in _output_text(plain.json())

    events = _events(_post(tenant, "/v1/responses",
                           {"model": alias, "input": "hello stream", "stream": True}))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert "You said: hello stream" in deltas
    assert events[-1]["type"] == "response.completed"

    first = _post(tenant, "/v1/responses",
                  {"model": alias, "input": ASK, "tools": [RESPONSES_TOOL]})
    calls = [o for o in first.json()["output"] if o["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["get_weather"], first.text
    turn = [{"role": "user", "content": ASK}, calls[0],
            {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "sunny"}]
    second = _post(tenant, "/v1/responses", {"model": alias, "input": turn,
                                             "tools": [RESPONSES_TOOL]})
    assert second.status_code == 200, second.text
    assert "Done. sunny" in _output_text(second.json())
    rows = tenant.spend(4, alias)
    assert {r["call_type"] for r in rows} == {"aresponses"}


@pytest.mark.parametrize("alias", ALIASES)
def test_messages_on_every_alias(tenant: Tenant, alias: str) -> None:
    hello = [{"role": "user", "content": "hello there"}]
    plain = _post(tenant, "/v1/messages", {"model": alias, "max_tokens": 64, "messages": hello})
    assert plain.status_code == 200, plain.text
    assert plain.json()["type"] == "message"
    assert "You said: hello there" in plain.json()["content"][0]["text"]

    events = _events(_post(tenant, "/v1/messages", {"model": alias, "max_tokens": 64,
                                                    "messages": hello, "stream": True}))
    deltas = "".join(e["delta"].get("text", "") for e in events
                     if e["type"] == "content_block_delta")
    assert "You said: hello there" in deltas and events[-1]["type"] == "message_stop"

    ask = [{"role": "user", "content": ASK}]
    first = _post(tenant, "/v1/messages", {"model": alias, "max_tokens": 64, "messages": ask,
                                           "tools": [MESSAGES_TOOL]}).json()
    uses = [b for b in first["content"] if b["type"] == "tool_use"]
    assert first["stop_reason"] == "tool_use" and uses[0]["name"] == "get_weather", first
    turn = [*ask, {"role": "assistant", "content": first["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0]["id"],
                                          "content": "sunny"}]}]
    second = _post(tenant, "/v1/messages", {"model": alias, "max_tokens": 64, "messages": turn,
                                            "tools": [MESSAGES_TOOL]})
    assert second.status_code == 200, second.text
    assert "Done. sunny" in second.json()["content"][0]["text"]
    rows = tenant.spend(4, alias)
    assert {r["call_type"] for r in rows} == {"anthropic_messages"}


@pytest.mark.parametrize(("field", "value"), [
    ("store", True), ("previous_response_id", "resp_123"), ("conversation", "conv_1"),
    ("background", True),
])
def test_stateful_responses_features_are_a_clear_400(tenant: Tenant, field: str,
                                                     value: Any) -> None:
    answer = _post(tenant, "/v1/responses", {"model": "fast", "input": "hi", field: value})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == field and "keeps no responses" in error["message"]
    stateless = _post(tenant, "/v1/responses", {"model": "fast", "input": "hi", "store": False})
    assert stateless.status_code == 200, stateless.text


def _anthropic_error(answer: httpx.Response, status: int, kind: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


def test_anthropic_route_errors_have_anthropic_shape(tenant: Tenant) -> None:
    url = f"{tenant.proxy_url}/v1/messages"
    ok = {"model": "fast", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    _anthropic_error(httpx.post(url, json=ok, timeout=30), 401, "authentication_error")
    _anthropic_error(httpx.post(url, json=ok, headers={"x-api-key": "sk-pool-nope"}, timeout=30),
                     401, "authentication_error")
    assert "max_tokens" in _anthropic_error(
        _post(tenant, "/v1/messages", {**ok, "max_tokens": "many"}), 400, "invalid_request_error")
    assert "aws_secret_access_key" in _anthropic_error(
        _post(tenant, "/v1/messages", {**ok, "aws_secret_access_key": "x"}), 400,
        "invalid_request_error")
    not_object = httpx.post(url, content=b"[1, 2]", timeout=30,
                            headers={"x-api-key": tenant.key, "content-type": "application/json"})
    _anthropic_error(not_object, 400, "invalid_request_error")
    _anthropic_error(httpx.get(url, headers={"x-api-key": tenant.key}, timeout=30), 403,
                     "permission_error")  # not a tenant route (the edge guard's 403)
    # the OpenAI routes keep OpenAI's shape
    openai_401 = httpx.post(f"{tenant.base_url}/chat/completions", json=ok, timeout=30)
    assert openai_401.status_code == 401 and "type" in openai_401.json()["error"]
