"""sdk.Gateway through the real proxy (config/offline.yaml) and the scripted provider."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from pydantic import BaseModel

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from sdk import (
    AsyncGateway,
    AuthError,
    Gateway,
    ProviderUnavailableError,
    RetryPolicy,
    StructuredOutputError,
    UnknownAliasError,
)
from tests.conftest import MASTER_KEY, REPO_ROOT

OFFLINE_CONFIG = REPO_ROOT / "config" / "offline.yaml"

pytestmark = pytest.mark.integration


def script(*steps: dict[str, object]) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


@pytest.fixture
def gateway(offline_proxy: ProxyProcess) -> Gateway:
    return Gateway(offline_proxy.url, MASTER_KEY)


def test_complete_reports_deployment_usage_cost_and_request_id(
        gateway: Gateway, scripted: ScriptedProvider) -> None:
    result = gateway.complete("fast", "hello sdk", tags=["it-test"])
    assert result.text == "Hi! (fast-1) You said: hello sdk"
    assert (result.deployment, result.model_group) == ("fast-1", "fast")
    assert result.usage.total_tokens == result.usage.prompt_tokens + \
        result.usage.completion_tokens > 0
    expected_cost = result.usage.prompt_tokens * 1e-7 + result.usage.completion_tokens * 2e-7
    assert result.cost == pytest.approx(expected_cost)
    assert result.request_id and result.latency_ms > 0
    assert [r["model"] for r in scripted.requests()] == ["fast-1"]


def test_a_v1_base_url_works_too(offline_proxy: ProxyProcess, scripted: ScriptedProvider) -> None:
    gateway = Gateway(f"{offline_proxy.url}/v1", MASTER_KEY)
    assert gateway.complete("local", "ping").deployment == "local-1"


def test_quality_falls_back_to_fast_and_the_result_says_so(
        gateway: Gateway, scripted: ScriptedProvider) -> None:
    scripted.add_rule("quality-*", {"status": 500, "error_message": "quality is down"})
    result = gateway.complete("quality", "important question")
    assert result.deployment == "fast-1"
    assert result.model_group == "fast"
    assert result.text == "Hi! (fast-1) You said: important question"
    assert any(r["model"].startswith("quality-") for r in scripted.requests())


def test_when_every_fallback_fails_the_error_is_provider_unavailable(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider) -> None:
    scripted.add_rule("*", {"status": 503, "error_message": "everything is down"})
    gateway = Gateway(offline_proxy.url, MASTER_KEY, retry=RetryPolicy(attempts=1))
    with pytest.raises(ProviderUnavailableError) as caught:
        gateway.complete("quality", "anyone there?")
    assert caught.value.status == 503
    assert "model 'quality' is temporarily unavailable" in str(caught.value)
    tried = {r["model"] for r in scripted.requests()}
    assert "fast-1" in tried and tried & {"quality-a", "quality-b"}


def test_a_rate_limit_outlasting_the_proxy_retries_is_retried_by_the_sdk(
        gateway: Gateway, scripted: ScriptedProvider) -> None:
    # the proxy tries the provider twice (num_retries: 1); two 429s reach the SDK as one
    scripted.add_rule("economy-*", {"status": 429, "retry_after": 0.2,
                                    "error_message": "slow down"}, times=2)
    result = gateway.complete("economy", "are you there?")
    assert result.deployment == "economy-1"
    assert len(scripted.requests("economy-*")) == 3


def test_unknown_alias(gateway: Gateway, scripted: ScriptedProvider) -> None:
    with pytest.raises(UnknownAliasError) as caught:
        gateway.complete("no-such-alias", "hi")
    assert caught.value.status == 400 and caught.value.alias == "no-such-alias"
    assert scripted.requests() == []


def test_streaming_text(gateway: Gateway, scripted: ScriptedProvider) -> None:
    with gateway.stream("fast", "stream me please") as stream:
        deltas = list(stream)
    assert len(deltas) > 3
    result = stream.completion
    assert "".join(deltas) == result.text == "Hi! (fast-1) You said: stream me please"
    assert result.finish_reason == "stop" and result.deployment == "fast-1"
    assert result.usage.total_tokens > 0 and result.cost is not None and result.cost > 0
    assert scripted.requests()[0]["stream"] is True


def test_streamed_tool_calls_are_assembled(gateway: Gateway, scripted: ScriptedProvider) -> None:
    steps = script({"text": "Checking both.", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
        {"name": "get_weather", "arguments": {"city": "Oslo", "days": 1}}]})
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"]}}}]
    with gateway.stream("fast", f"weather? {steps}", tools=tools) as stream:
        deltas = list(stream)
    result = stream.completion
    assert "".join(deltas) == "Checking both."
    assert [(c.name, dict(c.arguments)) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 3}), ("get_weather", {"city": "Oslo", "days": 1})]
    assert all(c.id and c.parse_error is None for c in result.tool_calls)
    assert result.finish_reason == "tool_calls"


class Verdict(BaseModel):
    sentiment: str
    score: float


def test_structured_output_is_corrected_through_the_proxy(
        gateway: Gateway, scripted: ScriptedProvider) -> None:
    scripted.add_rule("fast-*", {"text": "```json\n{\"sentiment\": \"good\"}\n```"}, times=1)
    good = script({"text": "Here:\n```json\n{\"sentiment\": \"good\", \"score\": 0.9}\n```"})
    verdict = gateway.complete_model("fast", f"rate this {good}", Verdict)
    assert verdict == Verdict(sentiment="good", score=0.9)
    assert len(scripted.requests()) == 2


def test_structured_output_gives_up_with_the_raw_text(
        gateway: Gateway, scripted: ScriptedProvider) -> None:
    with pytest.raises(StructuredOutputError) as caught:
        gateway.complete_model("fast", f"rate this {script({'text': 'no idea'})}", Verdict,
                               corrections=1)
    assert caught.value.raw_text == "no idea" and caught.value.attempts == 2
    assert len(scripted.requests()) == 2


def test_embeddings(gateway: Gateway, scripted: ScriptedProvider) -> None:
    result = gateway.embed("embedder", ["one", "two"])
    assert [len(v) for v in result.vectors] == [16, 16]
    assert result.vectors[0] != result.vectors[1]
    assert result.deployment == "embedder-1"


def test_async_gateway(offline_proxy: ProxyProcess, scripted: ScriptedProvider) -> None:
    async def scenario() -> tuple[str, str]:
        async with AsyncGateway(offline_proxy.url, MASTER_KEY) as gateway:
            whole = await gateway.complete("fast", "async hello")
            async with await gateway.stream("local", "async stream") as stream:
                text = "".join([d async for d in stream])
            return whole.text, text
    whole, streamed = asyncio.run(scenario())
    assert whole == "Hi! (fast-1) You said: async hello"
    assert streamed == "Hi! (local-1) You said: async stream"


def test_aliases_lists_the_config_groups_sync_and_async(offline_proxy: ProxyProcess) -> None:
    groups = sorted({m["model_name"] for m in yaml.safe_load(
        OFFLINE_CONFIG.read_text())["model_list"]})

    async def listed() -> list[str]:
        async with AsyncGateway(offline_proxy.url, MASTER_KEY) as gateway:
            return await gateway.aliases()

    assert Gateway(offline_proxy.url, MASTER_KEY).aliases() == groups == asyncio.run(listed())
    with pytest.raises(AuthError):
        Gateway(offline_proxy.url, "sk-pool-not-a-key").aliases()


def test_unknown_and_revoked_keys_are_auth_errors(offline_proxy: ProxyProcess,
                                                  scripted: ScriptedProvider,
                                                  pg_url: str) -> None:
    with pytest.raises(AuthError) as caught:
        Gateway(base_url=offline_proxy.url, api_key="sk-pool-not-a-key").complete("fast", "hi")
    assert caught.value.status == 401 and "not a valid key" in str(caught.value)
    assert scripted.requests() == []


def test_over_budget_is_a_budget_error_and_not_retried(offline_proxy: ProxyProcess,
                                                       scripted: ScriptedProvider,
                                                       pg_url: str) -> None:
    import time

    from sdk import BudgetExceededError
    from tests.gateway.support import new_tenant, tokens_script

    tenant, key = new_tenant(pg_url, "sdkpoor", budget="0.05")
    sdk = Gateway(base_url=offline_proxy.url, api_key=key)
    sdk.complete("fast", f"hi {tokens_script(1_000_000, 0)}")  # $0.10 on fast-1
    deadline = time.monotonic() + 10
    while True:
        sent = len(scripted.requests())
        try:
            sdk.complete("fast", "again")
        except BudgetExceededError as exc:
            assert exc.status == 429 and f"tenant {tenant}" in str(exc) and "$0.05" in str(exc)
            assert len(scripted.requests()) == sent  # rejected before the provider, once
            return
        assert time.monotonic() < deadline, "the budget was never enforced"
        time.sleep(0.2)
