"""The official ``anthropic`` client against ``/v1/messages``: create, stream, and a
``tool_use`` -> ``tool_result`` round trip, with only ``base_url`` and ``api_key``
changed (the gateway bridges Messages to the upstream's chat completions)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration

WEATHER: Any = {"name": "get_weather", "description": "the weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}


def _client(tenant: Tenant) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=tenant.proxy_url, api_key=tenant.key, max_retries=0)


def test_create_stream_and_tool_round_trip(tenant: Tenant) -> None:
    client = _client(tenant)
    message = client.messages.create(model="quality", max_tokens=64,
                                     messages=[{"role": "user", "content": "hello claude"}])
    assert message.content[0].type == "text" and "You said: hello claude" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    with client.messages.stream(model="quality", max_tokens=64,
                                messages=[{"role": "user", "content": "hello stream"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "You said: hello stream" in streamed and final.stop_reason == "end_turn"

    asked: Any = [{"role": "user", "content": "what is the weather in Paris"}]
    first = client.messages.create(model="quality", max_tokens=64, messages=asked,
                                   tools=[WEATHER])
    use = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and use.name == "get_weather" and "city" in use.input
    second = client.messages.create(model="quality", max_tokens=64, tools=[WEATHER], messages=[
        *asked, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "sunny"}]}])
    assert second.content[0].type == "text" and "Done. sunny" in second.content[0].text
    with pytest.MonkeyPatch.context() as env:  # the environment-only set-up
        env.setenv("ANTHROPIC_BASE_URL", tenant.proxy_url)
        env.setenv("ANTHROPIC_API_KEY", tenant.key)
        counted = anthropic.Anthropic(max_retries=0).messages.count_tokens(
            model="quality", messages=asked, tools=[WEATHER])
    assert counted.input_tokens > 0  # LiteLLM 1.108 asks the upstream (/v1/responses/input_tokens)
    tenant.spend(4, "quality")


def test_errors_are_anthropic_errors(tenant: Tenant) -> None:
    bad_key = anthropic.Anthropic(base_url=tenant.proxy_url, api_key="sk-pool-nope",
                                  max_retries=0)
    hi: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.AuthenticationError) as denied:
        bad_key.messages.create(model="fast", max_tokens=8, messages=hi)
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as refused:
        _client(tenant).messages.create(model="fast", max_tokens=8, messages=hi,
                                        extra_body={"api_base": "http://attacker.example"})
    assert "api_base" in refused.value.message
    assert refused.value.body["type"] == "error"  # type: ignore[index]
