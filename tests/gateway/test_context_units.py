"""The tenant context ``custom_auth`` hands the hooks (proxy.context): what it writes
comes back the same through LiteLLM's metadata, and a missing or malformed one refuses a
tenant's request (fail closed) instead of serving it without limits."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from litellm.proxy._types import ProxyException, UserAPIKeyAuth
from starlette.requests import Request

from proxy import context
from proxy.context import MASTER, ContextError, TenantContext, from_metadata, require, to_metadata
from proxy.edge.caps import Limits
from proxy.plugin import auth, gateway
from proxy.spend.rows import row_from_payload
from proxy.storage.tenants import Caps, KeyIdentity, hash_key

CAPS = Limits(max_n=4, max_tokens=100, max_prompt_tokens=1000)
ACME = TenantContext(7, "acme", 5.25, 60, None, CAPS, client_call_id=True)


@pytest.mark.parametrize("ctx", [ACME, TenantContext(8, "b", None, None, 0, CAPS), MASTER])
def test_the_context_comes_back_as_it_was_written(ctx: context.Context) -> None:
    meta = to_metadata(ctx)
    assert from_metadata(meta) == ctx == require(meta)
    through_json = json.loads(json.dumps(meta))  # LiteLLM copies it into logging payloads
    assert from_metadata(through_json) == ctx
    assert from_metadata(copy.deepcopy(meta)) == ctx


def test_no_context_is_none_for_the_spend_rows_and_an_error_for_the_hooks() -> None:
    for meta in (None, {}, {"user_api_key_hash": "x"}):
        assert from_metadata(meta) is None
        with pytest.raises(ContextError) as caught:
            require(meta)
        assert caught.value.code == "500"


def _broken() -> list[dict[str, Any]]:
    good = to_metadata(ACME)[context.METADATA_KEY]
    cases: list[dict[str, Any]] = [{"principal": "admin"}, {}, {"principal": "tenant"}]
    for name, bad in (("tenant_id", "7"), ("tenant_id", True), ("tenant", None),
                      ("budget_usd", "5.25"), ("rpm", 1.5), ("tpm", "60"),
                      ("client_call_id", "yes"), ("caps", None),
                      ("caps", {"max_n": 4, "max_tokens": 100}),
                      ("caps", {**good["caps"], "max_tokens": "100"})):
        cases.append({**good, name: bad})
    cases.append({k: v for k, v in good.items() if k != "tenant_id"})
    return cases


@pytest.mark.parametrize("found", [*_broken(), "tenant", ["tenant"]])
def test_a_malformed_context_is_refused(found: Any) -> None:
    with pytest.raises(ContextError):
        from_metadata({context.METADATA_KEY: found})


def _request() -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}
    return Request({"type": "http", "method": "GET", "path": "/v1/models",
                    "headers": [(b"x-litellm-call-id", b"c1")], "query_string": b"",
                    "root_path": ""}, receive)


def test_custom_auth_writes_the_tenants_context(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-pool-test"
    identity = KeyIdentity(key_id=1, label="svc", tenant_id=7, tenant="acme",
                           monthly_budget_usd=5.25, rpm_limit=60, tpm_limit=None,
                           revoked=False, caps=Caps(max_n=4))

    async def lookup(key_hash: str) -> KeyIdentity | None:
        return identity if key_hash == hash_key(key) else None

    async def scenario() -> tuple[UserAPIKeyAuth, UserAPIKeyAuth]:
        resolver = auth.KeyResolver(lookup, ttl=60, max_stale=60)
        tenant = await auth.authenticate(resolver, "sk-master", _request(), key,
                                         default_caps=Caps(max_n=1, max_tokens=100,
                                                           max_prompt_tokens=1000))
        master = await auth.authenticate(resolver, "sk-master", _request(), "sk-master")
        return tenant, master
    monkeypatch.setattr(auth, "key_format", lambda _key: 3)  # any shape passes the gate
    tenant, master = asyncio.run(scenario())
    assert from_metadata(tenant.metadata) == ACME
    assert from_metadata(master.metadata) is MASTER


def test_the_pre_call_hook_refuses_a_request_without_a_valid_context() -> None:
    for meta in ({}, {context.METADATA_KEY: {"principal": "tenant", "tenant_id": 7}}):
        with pytest.raises(ProxyException) as caught:
            asyncio.run(gateway.callbacks.async_pre_call_hook(
                UserAPIKeyAuth(metadata=meta), None, {"model": "fast"}, "acompletion"))
        assert caught.value.code == "500" and "context" in caught.value.message
    data = {"model": "fast"}
    assert asyncio.run(gateway.callbacks.async_pre_call_hook(
        UserAPIKeyAuth(metadata=to_metadata(MASTER)), None, data, "acompletion")) is data


def test_the_spend_row_reads_the_tenant_from_the_context() -> None:
    payload = {"litellm_call_id": "c1", "status": "success", "call_type": "acompletion",
               "metadata": {"user_api_key_auth_metadata": to_metadata(ACME)}}
    row = row_from_payload(payload)
    assert row is not None and row.tenant_id == 7
    master = row_from_payload({**payload, "metadata": {
        "user_api_key_auth_metadata": to_metadata(MASTER)}})
    assert master is not None and master.tenant_id is None
