"""The body checks through the real proxy, on the four model routes: documented
parameters and the few inert provider ones of the unit lists reach the provider; a field
outside the route's schema (the issue's ``frobnicate``, ``extra_body``, metadata keys
LiteLLM reads, cross-API extras), credential-like fields and router controls are a 400
naming them and reach nothing (``no-log`` would have skipped the spend row)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from tests.clients.conftest import Tenant
from tests.gateway.test_validation import OK, PASSING, SCHEMAS

pytestmark = pytest.mark.integration

ISSUE_PARAMS: dict[str, Any] = {
    "top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 1024},
    "reasoning_effort": "low", "metadata": {"trace": "t"}, "tags": ["team-a"],
    "chat_template_kwargs": {"enable_thinking": False}, "frobnicate": {"x": 1},
    "extra_body": {"top_k": 5},
}


def _accepted(route: str, name: str, value: Any) -> bool:
    """Whether the route's schema takes ``name`` (and, for metadata, its keys)."""
    if name == "metadata":
        return set(value) <= {"tags", "user_id"}
    return name in SCHEMAS[route].model_fields


REFUSED_HERE = ["api_key", "api_base", "base_url", "aws_secret_access_key", "aws_region_name",
                "vertex_credentials", "azure_ad_token", "extra_headers", "custom_llm_provider",
                "input_cost_per_token", "metadata.api_key", "extra_body.api_base",
                "num_retries", "fallbacks", "no-log", "litellm_call_id"]


def _post(tenant: Tenant, route: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tenant.key}"}
    return httpx.post(f"{tenant.proxy_url}{route}", json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("route", list(OK))
def test_documented_and_inert_provider_parameters_reach_the_provider_others_are_400(
        tenant: Tenant, scripted: ScriptedProvider, route: str) -> None:
    everything = {**OK[route], **PASSING[route]}
    if "stream" in SCHEMAS[route].model_fields:
        everything["stream"] = False
    answer = _post(tenant, route, everything)
    assert answer.status_code == 200, answer.text
    if route == "/v1/embeddings":
        return
    passed = 0
    for name, value in ISSUE_PARAMS.items():
        answer = _post(tenant, route, {**OK[route], name: value})
        if _accepted(route, name, value):
            assert answer.status_code == 200, (name, answer.text)
            passed += 1
        else:
            assert answer.status_code == 400, (name, answer.text)
            assert name in answer.text, (name, answer.text)
    assert passed >= 2 and len(scripted.requests()) == 1 + passed


def _with(route: str, field: str) -> dict[str, Any]:
    if "." in field:
        outer, inner = field.split(".")
        return {**OK[route], outer: {inner: "x"}}
    return {**OK[route], field: "http://attacker.example/v1"}


@pytest.mark.parametrize("route", list(OK))
def test_credential_like_fields_are_refused_naming_them(
        tenant: Tenant, scripted: ScriptedProvider, route: str) -> None:
    for field in REFUSED_HERE:
        answer = _post(tenant, route, _with(route, field))
        assert answer.status_code == 400, (field, answer.text)
        body = answer.json()
        # the field named (LiteLLM's own check, which runs first for a few of them,
        # names the nested field without its container)
        assert field.rsplit(".", 1)[-1] in body["error"]["message"], (field, body)
    assert scripted.requests() == []
