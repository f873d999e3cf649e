"""The real proxy on config/offline.yaml, through the official openai client."""

from __future__ import annotations

import json

import openai
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def client(offline_proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{offline_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)


def test_fast_alias_answers(client: openai.OpenAI, scripted: ScriptedProvider) -> None:
    reply = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hello gateway"}])
    assert reply.choices[0].message.content == "Hi! (fast-1) You said: hello gateway"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    assert [r["model"] for r in scripted.requests()] == ["fast-1"]


def test_quality_falls_back_to_fast(client: openai.OpenAI, scripted: ScriptedProvider) -> None:
    scripted.add_rule("quality-*", {"status": 500, "error_message": "quality is down"})
    raw = client.chat.completions.with_raw_response.create(
        model="quality", messages=[{"role": "user", "content": "important question"}])
    reply = raw.parse()
    assert raw.headers["x-litellm-model-id"] == "fast-1"
    assert raw.headers["x-litellm-model-group"] == "fast"
    assert int(raw.headers["x-litellm-attempted-fallbacks"]) >= 1
    assert reply.choices[0].message.content == "Hi! (fast-1) You said: important question"
    tried = [r["model"] for r in scripted.requests()]
    assert tried[-1] == "fast-1"
    assert all(m.startswith("quality-") for m in tried[:-1]) and len(tried) >= 2, tried


def test_streaming_through_proxy(client: openai.OpenAI, scripted: ScriptedProvider) -> None:
    stream = client.chat.completions.create(
        model="fast", stream=True, messages=[{"role": "user", "content": "stream me please"}])
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 3, pieces
    assert "".join(pieces) == "Hi! (fast-1) You said: stream me please"
    assert scripted.requests()[0]["stream"] is True


def test_unknown_alias_is_a_clear_4xx(client: openai.OpenAI, scripted: ScriptedProvider) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="no-such-alias", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    assert "no-such-alias" in str(caught.value)
    assert scripted.requests() == []


def test_embeddings(client: openai.OpenAI, scripted: ScriptedProvider) -> None:
    result = client.embeddings.create(model="embedder", input=["one", "two"])
    assert [len(d.embedding) for d in result.data] == [16, 16]
    assert result.data[0].embedding != result.data[1].embedding


def test_tool_calls_pass_through(client: openai.OpenAI, scripted: ScriptedProvider) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    script = "[[script:" + json.dumps({"steps": [{"tool_calls": [call]}]}) + "]]"
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": f"weather? {script}"}],
        tools=[{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object", "properties": {
                "city": {"type": "string"}}, "required": ["city"]}}}],
    )
    calls = reply.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city": "Paris"}')]
    assert reply.choices[0].finish_reason == "tool_calls"

