"""Gateway on httpx.MockTransport: results, headers, streaming, error mapping, retries."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sdk import (
    CONFIGURATION_ERRORS,
    AuthError,
    BudgetExceededError,
    GatewayUnreachableError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitedError,
    RetryPolicy,
    UnknownAliasError,
)
from sdk.client import GatewaySettings
from tests.sdk.fakes import FakeProxy, chat, chunk, error, sse


def test_complete_reads_text_usage_and_proxy_headers() -> None:
    proxy = FakeProxy(chat("Hello there", usage=(12, 3), deployment="fast-1", group="fast",
                           cost=0.0042))
    result = proxy.gateway().complete("fast", "hi", tags=["billing"], user="u-7",
                                      temperature=0.2)
    assert result.text == "Hello there"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens,
            result.usage.total_tokens) == (12, 3, 15)
    assert (result.deployment, result.model_group, result.cost) == ("fast-1", "fast", 0.0042)
    assert result.request_id == "call-id-fast-1"
    assert result.latency_ms > 0
    sent = proxy.requests[0]
    assert sent["model"] == "fast" and sent["user"] == "u-7" and sent["temperature"] == 0.2
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["metadata"] == {"tags": ["billing"]}


def test_cost_is_none_when_the_proxy_reports_none() -> None:
    result = FakeProxy(chat("x", cost=None)).gateway().complete("fast", "hi")
    assert result.cost is None


def test_tool_calls_are_parsed_and_bad_json_is_kept_raw() -> None:
    proxy = FakeProxy(chat(None, [("get_weather", {"city": "Paris"}, "call_a"),
                                  ("get_weather", "{not json", "call_b")]))
    result = proxy.gateway().complete("fast", "weather?")
    good, bad = result.tool_calls
    assert (good.id, good.name, dict(good.arguments), good.parse_error) == (
        "call_a", "get_weather", {"city": "Paris"}, None)
    assert bad.arguments == {} and bad.raw_arguments == "{not json"
    assert bad.parse_error is not None and "not valid JSON" in bad.parse_error
    assert result.finish_reason == "tool_calls"
    assert result.to_message()["tool_calls"][1]["function"]["arguments"] == "{not json"


def test_tools_are_sent_as_schemas() -> None:
    proxy = FakeProxy(chat("ok"))
    schema = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    proxy.gateway().complete("fast", "hi", tools=[schema])
    assert proxy.requests[0]["tools"] == [schema]


@pytest.mark.parametrize(("base_url", "expected"), [
    ("http://proxy:4000", "http://proxy:4000/v1"),
    ("http://proxy:4000/", "http://proxy:4000/v1"),
    ("http://proxy:4000/v1", "http://proxy:4000/v1"),
    ("http://proxy:4000/v1/", "http://proxy:4000/v1"),
])
def test_base_url_is_the_proxy_root_or_v1(base_url: str, expected: str) -> None:
    assert GatewaySettings.resolve(base_url, "k").api_url == expected


def test_settings_come_from_the_environment_only_when_not_given() -> None:
    env = {"POOL_PROXY_URL": "http://env-proxy:4000", "POOL_API_KEY": "sk-env"}
    assert GatewaySettings.resolve(env=env) == GatewaySettings("http://env-proxy:4000", "sk-env")
    assert GatewaySettings.resolve("http://x", "sk-x", env=env) == GatewaySettings(
        "http://x", "sk-x")
    with pytest.raises(AuthError, match="POOL_API_KEY"):
        GatewaySettings.resolve(env={})


# ----------------------------------------------------------------- errors


def test_401_is_an_auth_error_and_not_retried() -> None:
    proxy = FakeProxy(error(401, "Invalid proxy server token passed", "auth_error"))
    with pytest.raises(AuthError) as caught:
        proxy.gateway().complete("fast", "hi")
    assert caught.value.status == 401
    assert len(proxy.requests) == 1


@pytest.mark.parametrize("answer", [
    error(400, "/chat/completions: Invalid model name passed in model=nope. Call `/v1/models`",
          "invalid_request_error"),
    error(404, "model nope not found"),
])
def test_unknown_alias(answer: httpx.Response) -> None:
    proxy = FakeProxy(answer)
    with pytest.raises(UnknownAliasError) as caught:
        proxy.gateway().complete("nope", "hi")
    assert caught.value.alias == "nope"
    assert caught.value.status == answer.status_code
    assert len(proxy.requests) == 1


def test_budget_429_is_never_retried() -> None:
    proxy = FakeProxy(error(429, "tenant acme is over its monthly budget of $10",
                            "budget_exceeded", headers={"retry-after": "1"}))
    with pytest.raises(BudgetExceededError, match="monthly budget") as caught:
        proxy.gateway().complete("fast", "hi")
    assert caught.value.status == 429
    assert len(proxy.requests) == 1


def test_plain_429_is_retried_after_retry_after() -> None:
    proxy = FakeProxy(error(429, "slow down", "throttling_error", headers={"retry-after": "0.3"}),
                      chat("finally"))
    started = time.perf_counter()
    result = proxy.gateway().complete("fast", "hi")
    assert result.text == "finally"
    assert time.perf_counter() - started >= 0.3
    assert len(proxy.requests) == 2


def test_retry_after_relayed_from_the_provider_is_honoured() -> None:
    proxy = FakeProxy(error(429, "slow down", headers={"llm_provider-retry-after": "0.2"}),
                      chat("ok"))
    started = time.perf_counter()
    proxy.gateway().complete("fast", "hi")
    assert time.perf_counter() - started >= 0.2


def test_429_still_failing_raises_rate_limited_with_retry_after() -> None:
    proxy = FakeProxy(error(429, "slow down", headers={"retry-after": "0.01"}))
    with pytest.raises(RateLimitedError) as caught:
        proxy.gateway().complete("fast", "hi")
    assert caught.value.retry_after == pytest.approx(0.01)
    assert len(proxy.requests) == 3


def test_a_retry_after_longer_than_the_limit_is_not_slept() -> None:
    proxy = FakeProxy(error(429, "come back in an hour", headers={"retry-after": "3600"}))
    policy = RetryPolicy(attempts=3, max_retry_after=5)
    with pytest.raises(RateLimitedError) as caught:
        proxy.gateway(policy).complete("fast", "hi")
    assert caught.value.retry_after == 3600
    assert len(proxy.requests) == 1


def test_503_from_the_proxy_is_not_retried_again() -> None:
    # the proxy answered: its own retries and fallbacks are spent, repeating them would
    # multiply the upstream attempts (retries never stack)
    proxy = FakeProxy(error(503, "model group 'quality' failed. Fallback to fast also failed",
                            "internal_server_error"))
    with pytest.raises(ProviderUnavailableError, match="Fallback") as caught:
        proxy.gateway().complete("quality", "hi")
    assert caught.value.status == 503
    assert len(proxy.requests) == 1


def test_a_timeout_is_retried_then_recovers() -> None:
    calls: list[int] = []

    def slow_once(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return chat("up again")
    proxy = FakeProxy(slow_once)
    assert proxy.gateway().complete("fast", "hi").text == "up again"
    assert len(calls) == 2


@pytest.mark.parametrize("failure", [httpx.ConnectError("connection refused"),
                                     httpx.ConnectError("[Errno -2] Name or service not known")])
def test_an_unreachable_gateway_is_a_configuration_error_not_an_outage(
        failure: httpx.ConnectError) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        failure.request = request
        raise failure
    proxy = FakeProxy(refuse)
    with pytest.raises(GatewayUnreachableError, match="cannot reach the gateway") as caught:
        proxy.gateway().complete("fast", "hi")
    assert not isinstance(caught.value, ProviderUnavailableError)
    assert isinstance(caught.value, CONFIGURATION_ERRORS)
    assert "POOL_PROXY_URL" in str(caught.value) and caught.value.status is None
    assert len(proxy.requests) == 1  # not retried: a wrong URL stays wrong


def test_other_4xx_is_an_invalid_request() -> None:
    proxy = FakeProxy(error(422, "messages: field required"))
    with pytest.raises(InvalidRequestError) as caught:
        proxy.gateway().complete("fast", "hi")
    assert caught.value.status == 422 and len(proxy.requests) == 1


# ----------------------------------------------------------------- streaming


def _stream_chunks() -> list[dict[str, object]]:
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}), chunk({"content": "lo"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_s1", "type": "function",
                               "function": {"name": "lookup", "arguments": '{"order'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '_id": 42}'}}]}),
        chunk({}, "tool_calls"),
        {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "fast",
         "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4,
                                  "total_tokens": 11, "cost": 0.0005}},
    ]


def test_stream_yields_deltas_and_assembles_tool_calls() -> None:
    proxy = FakeProxy(sse(_stream_chunks()))
    with proxy.gateway().stream("fast", "hi") as stream:
        deltas = list(stream)
    result = stream.completion
    assert deltas == ["Hel", "lo"]
    assert result.text == "Hello"
    assert [(c.id, c.name, dict(c.arguments)) for c in result.tool_calls] == [
        ("call_s1", "lookup", {"order_id": 42})]
    assert result.finish_reason == "tool_calls"
    assert result.usage.total_tokens == 11 and result.cost == 0.0005
    assert result.deployment == "fast-1"
    assert proxy.requests[0]["stream"] is True
    assert proxy.requests[0]["stream_options"] == {"include_usage": True}


def test_a_stream_cut_off_before_finishing_is_an_error() -> None:
    proxy = FakeProxy(sse(_stream_chunks()[:3], done=False))
    stream = proxy.gateway().stream("fast", "hi")
    with pytest.raises(ProviderUnavailableError, match="ended before"):
        list(stream)


def test_stream_request_errors_are_mapped() -> None:
    proxy = FakeProxy(error(401, "bad key"))
    with pytest.raises(AuthError):
        proxy.gateway().stream("fast", "hi")


# ----------------------------------------------------------------- embeddings and async


def test_embed() -> None:
    body = {"object": "list", "model": "embedder", "usage": {"prompt_tokens": 2, "total_tokens": 2},
            "data": [{"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
                     {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}
    proxy = FakeProxy(httpx.Response(200, json=body))
    result = proxy.gateway().embed("embedder", ["a", "b"])
    assert result.vectors == ((0.1, 0.2), (0.3, 0.4))
    assert proxy.requests[0]["input"] == ["a", "b"]


def test_async_gateway_completes_streams_and_maps_errors() -> None:
    async def scenario() -> None:
        proxy = FakeProxy(chat("async hello"), sse(_stream_chunks()),
                          error(429, "x", "budget_exceeded"))
        gateway = proxy.async_gateway()
        assert (await gateway.complete("fast", "hi")).text == "async hello"
        async with await gateway.stream("fast", "hi") as stream:
            deltas = [d async for d in stream]
        assert deltas == ["Hel", "lo"]
        assert (await stream.result()).tool_calls[0].arguments == {"order_id": 42}
        with pytest.raises(BudgetExceededError):
            await gateway.complete("fast", "hi")
        assert len(proxy.requests) == 3
    asyncio.run(scenario())


def test_async_stream_works_with_async_for_async_with_and_await() -> None:
    async def scenario() -> None:
        proxy = FakeProxy(sse(_stream_chunks()))
        gateway = proxy.async_gateway()
        assert [d async for d in gateway.stream("fast", "hi")] == ["Hel", "lo"]
        async with gateway.stream("fast", "hi") as stream:
            assert (await stream.result()).text == "Hello"
        opened = await gateway.stream("fast", "hi")
        assert [d async for d in opened] == ["Hel", "lo"]
        await opened.close()
        assert len(proxy.requests) == 3
    asyncio.run(scenario())


def test_message_lists_are_sent_as_given() -> None:
    proxy = FakeProxy(chat("ok"))
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    proxy.gateway().complete("fast", messages)
    assert proxy.requests[0]["messages"] == messages
