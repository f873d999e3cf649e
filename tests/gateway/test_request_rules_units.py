"""Unit tests of the request rules (#17): headers and query strings
(proxy.edge.headers), model names (proxy.edge.models), the merged request
(proxy.edge.merged), completion limits and prices (proxy.admission.estimate)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.admission import estimate
from proxy.admission.estimate import (
    Price,
    Unpriced,
    alias_prices,
    apply_output_limit,
    completion_limit,
    deployment_price,
)
from proxy.context import TenantContext
from proxy.edge.caps import CapExceeded, Limits, OutputLimitExceeded, estimate_prompt_tokens
from proxy.edge.headers import (
    RefusedHeader,
    TwoKeys,
    allowed_headers,
    check_tenant_headers,
)
from proxy.edge.merged import MERGED_REFUSED, check_merged
from proxy.edge.models import UnknownModel, check_model
from proxy.edge.validation import BadRequest

ALIASES = frozenset({"fast", "quality", "embedder"})
LIMITS = Limits(max_n=2, max_tokens=100, max_prompt_tokens=1000)
TENANT = TenantContext(7, "acme", None, None, None, LIMITS)


def _h(**headers: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]


@pytest.mark.parametrize("name", [
    "x-litellm-num-retries", "x-litellm-timeout", "x-litellm-tags",
    "x-litellm-api-key", "x-litellm-stream-timeout", "x-litellm-spend-logs-metadata",
    "X-LiteLLM-Trace-Id", "litellm-disable-message-redaction", "typesafe-danger-zone-key",
    "x-litellm-keepalive-seconds", "x-litellm-agent-id"])
def test_litellm_control_headers_are_400_naming_them(name: str) -> None:
    with pytest.raises(RefusedHeader) as caught:
        check_tenant_headers([(b"authorization", b"Bearer k"), (name.encode(), b"1")], b"")
    assert caught.value.code == "400" and caught.value.param == name.lower()


@pytest.mark.parametrize("headers", [
    {"authorization": "Bearer a", "x_api_key": "b"}, {"x_api_key": "a", "api_key": "b"},
    {"authorization": "Bearer a", "x_goog_api_key": "b"},
    {"authorization": "Basic a", "x_api_key": "a"}])
def test_two_different_credentials_are_401(headers: dict[str, str]) -> None:
    with pytest.raises(TwoKeys) as caught:
        check_tenant_headers(_h(**headers), b"")
    assert caught.value.code == "401"


def test_a_request_id_header_passes_to_be_claimed() -> None:
    check_tenant_headers(_h(authorization="Bearer a", x_litellm_call_id="id-1"), b"")
    assert (b"x-litellm-call-id", b"id-1") in allowed_headers(_h(x_litellm_call_id="id-1"))


def test_a_request_id_serves_one_request_a_failed_one_may_be_retried() -> None:
    import asyncio

    from proxy.admission.callids import CallIds, CallIdTaken

    async def scenario() -> list[str]:
        ids, seen = CallIds(None), []
        for tenant, call_id, outcome in [(1, "a", "ok"), (1, "a", None), (2, "a", None),
                                         (1, "b", "failed"), (2, "b", None), (1, "b", "ok"),
                                         (1, "b", None), (1, "c", "inflight"), (1, "c", None)]:
            try:
                await ids.claim(call_id, tenant)
            except CallIdTaken as refused:
                assert refused.code == "409" and refused.param == "x-litellm-call-id"
                seen.append(f"{tenant}{call_id}:409")
                await ids.settle(call_id, tenant, answered=False)  # its failure is logged
                continue
            seen.append(f"{tenant}{call_id}:ok")
            if outcome in ("ok", "failed"):
                await ids.settle(call_id, tenant, answered=outcome == "ok")
        return seen

    assert asyncio.run(scenario()) == [
        "1a:ok", "1a:409", "2a:409",  # answered: taken for everyone
        "1b:ok", "2b:409", "1b:ok", "1b:409",  # failed: its tenant may retry it, once answered
        "1c:ok", "1c:409"]  # in flight: not twice at once


def test_one_key_in_one_or_two_headers_passes() -> None:
    check_tenant_headers(_h(authorization="Bearer a"), b"")
    check_tenant_headers(_h(x_api_key="a"), b"")  # the Anthropic SDK
    check_tenant_headers(_h(authorization="Bearer a", x_api_key="a"), b"")
    check_tenant_headers(_h(authorization="Bearer a"), b"beta=true")  # Anthropic's beta client


def test_query_parameters_other_than_beta_are_400() -> None:
    with pytest.raises(RefusedHeader) as caught:
        check_tenant_headers(_h(authorization="Bearer a"), b"beta=true&api-version=2024")
    assert caught.value.param == "api-version"


def test_only_allowlisted_headers_reach_litellm() -> None:
    sent = _h(authorization="Bearer a", content_type="application/json", user_agent="ua",
              x_stainless_lang="python", anthropic_version="2023-06-01",
              x_forwarded_for="10.0.0.1", cache_control="no-cache", traceparent="00-x",
              openai_organization="org", x_session_id="s", x_custom="1", cookie="c=1")
    kept = {name for name, _ in allowed_headers(sent)}
    assert kept == {b"authorization", b"content-type", b"user-agent", b"x-stainless-lang",
                    b"anthropic-version"}


@pytest.mark.parametrize(("model", "why"), [
    ("fast,quality", "is a list"), ("quality,fast,embedder", "is a list"),
    ("openai/fast-1", "provider model"), ("openai/*", "pattern"), ("*", "pattern"),
    ("fast-1", "not a model"), ("fast ", "not a model"), ("FAST", "not a model"),
    (7, "not a string"), (["fast"], "not a string")])
def test_anything_but_one_alias_is_404_naming_it(model: Any, why: str) -> None:
    with pytest.raises(UnknownModel) as caught:
        check_model({"model": model}, lambda: ALIASES)
    assert caught.value.code == "404" and why in caught.value.message
    assert "/v1/models" in caught.value.message and caught.value.param == "model"


def test_an_alias_passes_and_a_long_name_is_shortened() -> None:
    check_model({"model": "fast"}, lambda: ALIASES)
    check_model({}, lambda: ALIASES)  # left to the schema
    with pytest.raises(UnknownModel) as caught:
        check_model({"model": "x" * 10_000}, lambda: ALIASES)
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("name", sorted(MERGED_REFUSED))
def test_a_merged_control_is_refused(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_merged({"model": "fast", "messages": [], name: 1}, TENANT,
                      lambda: ALIASES, NO_LIMIT)
    assert caught.value.param == name


def test_the_merged_request_is_held_to_the_caps_and_the_alias() -> None:
    ok = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100,
          "n": 2, "metadata": {"headers": {}}, "litellm_call_id": "c", "timeout": None}
    check_merged(ok, TENANT, lambda: ALIASES, NO_LIMIT)
    with pytest.raises(CapExceeded):
        check_merged({**ok, "max_tokens": 101}, TENANT, lambda: ALIASES, NO_LIMIT)
    with pytest.raises(CapExceeded):
        check_merged({**ok, "n": 3}, TENANT, lambda: ALIASES, NO_LIMIT)
    with pytest.raises(UnknownModel):
        check_merged({**ok, "model": "fast-1"}, TENANT, lambda: ALIASES, NO_LIMIT)
    # the alias's output limit holds on the merged request too (the default cap gives way)
    fast_1000 = {"fast": 1_000}.get
    check_merged({**ok, "max_tokens": 1_000}, TENANT, lambda: ALIASES, fast_1000)
    with pytest.raises(OutputLimitExceeded):
        check_merged({**ok, "max_tokens": 1_001}, TENANT, lambda: ALIASES, fast_1000)


def NO_LIMIT(alias: str) -> int | None:
    return None


@pytest.fixture
def no_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "group_deployments", lambda _: [])
    estimate.alias_output_limit.cache_clear()
    estimate.alias_prices.cache_clear()


def test_the_completion_limit_is_the_requests_else_the_tenants_cap(no_router: None) -> None:
    assert completion_limit({"model": "fast", "max_tokens": 30, "n": 2}, "acompletion",
                            100) == 60
    assert completion_limit({"model": "fast"}, "acompletion", 100) == 100
    assert completion_limit({"model": "fast", "max_output_tokens": 7}, "aresponses", 100) == 7
    assert completion_limit({"model": "e", "input": ["x"]}, "aembedding", 100) == 0


def test_the_limit_assumed_is_written_into_the_request(no_router: None) -> None:
    chat: dict[str, Any] = {"model": "fast"}
    apply_output_limit(chat, "acompletion", 100)
    responses: dict[str, Any] = {"model": "fast"}
    apply_output_limit(responses, "aresponses", 100)
    asked: dict[str, Any] = {"model": "fast", "max_completion_tokens": 5}
    apply_output_limit(asked, "acompletion", 100)
    embedding: dict[str, Any] = {"model": "e"}
    apply_output_limit(embedding, "aembedding", 100)
    assert (chat, responses, asked, embedding) == (
        {"model": "fast", "max_tokens": 100}, {"model": "fast", "max_output_tokens": 100},
        {"model": "fast", "max_completion_tokens": 5}, {"model": "e"})


def test_the_models_output_limit_lowers_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "group_deployments",
                        lambda _: [{"litellm_params": {"model": "gpt-4o-mini"}}])
    estimate.alias_output_limit.cache_clear()
    assert completion_limit({"model": "mini"}, "acompletion", 10**6) == 16_384
    estimate.alias_output_limit.cache_clear()


@pytest.mark.parametrize(("deployment", "price"), [
    ({"litellm_params": {"model": "openai/house"}}, None),
    ({"litellm_params": {"model": "openai/house"}, "model_info": {"pool_free": True}},
     Price(0, 0)),
    ({"litellm_params": {"model": "openai/house", "input_cost_per_token": 0,
                         "output_cost_per_token": 0}}, Price(0, 0)),
    ({"litellm_params": {"model": "openai/house", "input_cost_per_token": 1e-6}}, None),
    ({"litellm_params": {"model": "openai/house", "input_cost_per_token": 1e-6},
      "model_info": {"mode": "embedding"}}, Price(1e-6, 0)),
    ({"litellm_params": {"model": "openai/house"},
      "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}},
     Price(1e-6, 2e-6)),
    ({"litellm_params": {"model": "openai/gpt-4o-mini"}}, Price(1.5e-7, 6e-7)),
    ({"litellm_params": {"model": "openai/house", "input_cost_per_token": True,
                         "output_cost_per_token": 1}}, None),
])
def test_deployment_prices_fail_closed(deployment: dict[str, Any], price: Price | None
                                       ) -> None:
    assert deployment_price(deployment) == price


def test_an_alias_with_an_unpriced_deployment_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    priced = {"litellm_params": {"model": "openai/a"},
              "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 3e-6}}
    monkeypatch.setattr(estimate, "group_deployments", lambda alias: {
        "mixed": [priced, {"litellm_params": {"model": "openai/house"}}],
        "priced": [priced]}[alias])
    estimate.alias_prices.cache_clear()
    with pytest.raises(Unpriced) as caught:
        alias_prices("mixed")
    assert caught.value.code == "503" and "mixed" in caught.value.message
    assert alias_prices("priced") == (1e-6, 3e-6)
    estimate.alias_prices.cache_clear()


@pytest.mark.parametrize("text", ["1234567890" * 50, "漢字" * 200, "🙂" * 200,
                                  "QUJD" * 300, " " * 500, "a\u0301" * 300])
def test_the_prompt_bound_is_at_least_the_real_token_count(text: str) -> None:
    """Digits, CJK, emoji, base64, whitespace, combining marks: never more tokens than the
    bound (the byte-level BPE tokenizers LiteLLM ships, counted on the bare text)."""
    import litellm

    bound = estimate_prompt_tokens({"input": text})
    assert bound == len(text.encode())
    for model in ("gpt-4o", "gpt-3.5-turbo"):
        assert litellm.token_counter(model=model, text=text) <= bound


def test_router_timeouts_never_run_the_cooldown_logic(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant's generation that outruns the router timeout is that tenant's: the
    installed policy never lets a ``litellm.Timeout`` count toward ``allowed_fails``;
    a provider fault (500) and a refused connection still reach LiteLLM's logic."""
    import httpx
    import litellm
    from litellm.router_utils import cooldown_handlers

    from proxy.plugin import internals

    seen: list[Exception] = []

    def litellm_logic(router: Any, deployment: Any, status: Any, exc: Exception,
                      time_to_cooldown: Any = None, request_kwargs: Any = None) -> bool:
        seen.append(exc)
        return True

    monkeypatch.setattr(cooldown_handlers, "_should_run_cooldown_logic", litellm_logic)
    internals.install_client_error_policy()
    policy = cooldown_handlers._should_run_cooldown_logic
    timeout = litellm.Timeout(message="took too long", model="m", llm_provider="openai")
    assert policy(None, "d-1", 408, timeout) is False
    assert seen == []
    fault = litellm.InternalServerError(message="boom", model="m", llm_provider="openai")
    assert policy(None, "d-1", 500, fault) is True
    refused = litellm.Timeout(message="connect", model="m", llm_provider="openai")
    refused.__cause__ = httpx.ConnectTimeout("connect timeout")
    assert policy(None, "d-1", 408, refused) is True  # the provider is unreachable
    assert len(seen) == 2
