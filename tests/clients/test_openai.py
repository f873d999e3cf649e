"""The official ``openai`` client, sync and async: chat, streaming, tools, the
Responses API and embeddings, with only ``base_url`` and ``api_key`` changed."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from pydantic import BaseModel

from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def test_sync_chat_stream_tools_responses_embeddings(tenant: Tenant) -> None:
    client = openai.OpenAI(base_url=tenant.base_url, api_key=tenant.key, max_retries=0)
    chat = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hello sync"}])
    assert "You said: hello sync" in (chat.choices[0].message.content or "")

    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hello stream"}], stream=True,
        stream_options={"include_usage": True})
    assert "You said: hello stream" in "".join(
        c.choices[0].delta.content or "" for c in stream if c.choices)

    asked = [{"role": "user", "content": "what is the weather in Paris"}]
    tooled = client.chat.completions.create(model="fast", messages=asked,  # type: ignore[arg-type]
                                            tools=[WEATHER])  # type: ignore[list-item]
    call = (tooled.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)

    response = client.responses.create(model="fast", input="hello responses")
    assert "You said: hello responses" in response.output_text

    vectors = client.embeddings.create(model="embedder", input=["a", "b"])
    assert len(vectors.data) == 2 and vectors.data[0].embedding
    rows = tenant.spend(5, "fast", "embedder")
    assert sorted(r["call_type"] for r in rows) == [
        "acompletion", "acompletion", "acompletion", "aembedding", "aresponses"]


def test_async_chat_stream_responses_and_tool_turn(tenant: Tenant) -> None:
    async def run() -> tuple[str, str, str, str]:
        async with openai.AsyncOpenAI(base_url=tenant.base_url, api_key=tenant.key,
                                      max_retries=0) as client:
            chat = await client.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "hello async"}])
            stream = await client.responses.create(model="fast", input="hello events",
                                                   stream=True)
            text = "".join([e.delta async for e in stream
                            if e.type == "response.output_text.delta"])
            tool = {"type": "function", "name": "get_weather", "description": "weather",
                    "parameters": WEATHER["function"]["parameters"]}
            first = await client.responses.create(
                model="fast", input="what is the weather in Paris", tools=[tool])  # type: ignore[list-item]
            call = next(o for o in first.output if o.type == "function_call")
            second = await client.responses.create(model="fast", tools=[tool], input=[  # type: ignore[list-item]
                {"role": "user", "content": "what is the weather in Paris"},
                call.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
            return chat.choices[0].message.content or "", text, call.name, second.output_text

    chat, streamed, called, final = asyncio.run(run())
    assert "You said: hello async" in chat and "You said: hello events" in streamed
    assert called == "get_weather" and "Done. sunny" in final
    tenant.spend(4)


class Weather(BaseModel):
    city: str
    celsius: int


def test_models_parse_json_mode_and_streamed_tool_calls(tenant: Tenant,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", tenant.base_url)  # the environment-only set-up
    monkeypatch.setenv("OPENAI_API_KEY", tenant.key)
    client = openai.OpenAI(max_retries=0)
    assert {"fast", "quality", "embedder"} <= {m.id for m in client.models.list()}

    reply = json.dumps({"city": "Paris", "celsius": 21})
    script = f"[[script:{json.dumps({'steps': [{'text': reply}]})}]]"
    parsed = client.chat.completions.parse(
        model="fast", response_format=Weather,
        messages=[{"role": "user", "content": f"weather as JSON {script}"}])
    assert parsed.choices[0].message.parsed == Weather(city="Paris", celsius=21)
    as_json = client.chat.completions.create(
        model="fast", response_format={"type": "json_object"},
        messages=[{"role": "user", "content": f"weather as JSON {script}"}])
    assert json.loads(as_json.choices[0].message.content or "") == {"city": "Paris",
                                                                    "celsius": 21}

    stream = client.chat.completions.create(
        model="fast", stream=True, tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "what is the weather in Paris"}])
    calls = [c.choices[0].delta.tool_calls for c in stream if c.choices]
    names = [t.function.name for d in calls if d for t in d if t.function and t.function.name]
    arguments = "".join(t.function.arguments or "" for d in calls if d for t in d
                        if t.function)
    assert names == ["get_weather"] and "city" in json.loads(arguments)
    tenant.spend(3)
