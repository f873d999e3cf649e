"""The scripted provider (the stand-in LLM vendor) does what tests script it to do."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider


@pytest.fixture
def http(scripted: ScriptedProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{scripted.url}/v1", timeout=5) as client:
        yield client


def _chat(http: httpx.Client, text: str, model: str = "m", **extra: object) -> httpx.Response:
    return http.post("/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": text}], **extra})


def test_rule_429_with_retry_after_counts_down(http: httpx.Client,
                                              scripted: ScriptedProvider) -> None:
    scripted.add_rule("m*", {"status": 429, "retry_after": 2}, times=1)
    first, second = _chat(http, "a"), _chat(http, "b")
    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert second.status_code == 200
    assert [r["model"] for r in scripted.requests()] == ["m", "m"]


def test_script_steps_follow_the_conversation(http: httpx.Client,
                                              scripted: ScriptedProvider) -> None:
    scripted.add_script("two", {"steps": [
        {"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}, {"text": "final"}]})
    messages: list[dict[str, object]] = [{"role": "user", "content": "go [[script:two]]"}]
    first = http.post("/chat/completions", json={"model": "m", "messages": messages}).json()
    call = first["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"q": "x"}
    messages += [first["choices"][0]["message"],
                 {"role": "tool", "tool_call_id": call["id"], "content": "42"}]
    second = http.post("/chat/completions", json={"model": "m", "messages": messages}).json()
    assert second["choices"][0]["message"]["content"] == "final"


def test_malformed_and_unknown_script(http: httpx.Client) -> None:
    bad = _chat(http, '[[script:{"steps": [{"malformed": true}]}]]')
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad.text)
    unknown = _chat(http, "[[script:nope]]")
    assert unknown.status_code == 400 and "unknown script" in unknown.text


def test_truncated_stream_has_no_done(http: httpx.Client) -> None:
    text = "[[script:" + json.dumps({"steps": [{"text": "one two three four five six",
                                                "truncate": True}]}) + "]]"
    with http.stream("POST", "/chat/completions", json={
            "model": "m", "stream": True,
            "messages": [{"role": "user", "content": text}]}) as response:
        body = b"".join(response.iter_raw())
    assert b'"content": "one ' in body
    assert b"[DONE]" not in body and b"six" not in body


def test_demo_heuristic_calls_a_named_tool_then_summarises(http: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "send_email", "parameters": {
        "type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
        "required": ["to", "body"]}}}]
    first = _chat(http, "please send an email to bob@example.com", tools=tools).json()
    call = first["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "send_email"
    assert json.loads(call["function"]["arguments"])["to"] == "bob@example.com"


def test_bad_body_is_a_clear_400(http: httpx.Client) -> None:
    response = http.post("/chat/completions", content=b"{not json")
    assert response.status_code == 400 and "malformed JSON" in response.text


def test_cut_stream_breaks_the_chunked_body(http: httpx.Client) -> None:
    text = "[[script:" + json.dumps({"steps": [{"text": "one two three four five six",
                                                "cut": True}]}) + "]]"
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), http.stream(
            "POST", "/chat/completions", json={
                "model": "m", "stream": True,
                "messages": [{"role": "user", "content": text}]}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        for part in response.iter_raw():
            received += part
    assert b'"content": "one ' in received and b"six" not in received
