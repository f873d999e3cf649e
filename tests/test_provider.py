"""The scripted provider (the stand-in LLM vendor) does what tests script it to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
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


# ----------------------------------------------------------------- Anthropic Messages


def _script(*steps: dict[str, object]) -> str:
    return "[[script:" + json.dumps({"steps": list(steps)}) + "]]"


@pytest.fixture
def claude(scripted: ScriptedProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=scripted.url, api_key="sk-ant-scripted",
                             max_retries=0) as client:
        yield client


THOUGHT_AND_TOOL = {"thinking": "the user wants weather", "text": "Let me look.",
                    "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
                    "prompt_tokens": 3000, "cached_tokens": 2048, "cache_creation_tokens": 512,
                    "completion_tokens": 40}


def test_messages_json_has_thinking_tool_use_and_cache_usage(
        claude: anthropic.Anthropic, scripted: ScriptedProvider) -> None:
    answer = claude.messages.create(model="claude-x", max_tokens=100, messages=[
        {"role": "user", "content": "weather? " + _script(THOUGHT_AND_TOOL)}])
    kinds = [block.type for block in answer.content]
    assert kinds == ["thinking", "text", "tool_use"] and answer.stop_reason == "tool_use"
    thinking, _, tool = answer.content
    assert thinking.type == "thinking" and thinking.signature
    assert tool.type == "tool_use" and (tool.name, tool.input) == ("weather", {"city": "Oslo"})
    usage = answer.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens, usage.output_tokens) == (440, 2048, 512, 40)
    assert scripted.requests()[0]["key"] == "sk-ant-scripted"
    # the signed thinking block goes back with the tool result: accepted; tampered: refused
    script = _script(THOUGHT_AND_TOOL, {"text": "Sunny."})
    history: list[Any] = [{"role": "user", "content": "weather? " + script},
               {"role": "assistant", "content": [b.model_dump() for b in answer.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id,
                                             "content": "sunny"}]}]
    final = claude.messages.create(model="claude-x", max_tokens=100, messages=history)
    assert final.content[0].type == "text" and final.content[0].text == "Sunny."
    history[1]["content"][0]["thinking"] = "something else"
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        claude.messages.create(model="claude-x", max_tokens=100, messages=history)


def test_messages_stream_rebuilds_the_same_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-x", max_tokens=100, messages=[
            {"role": "user", "content": _script(THOUGHT_AND_TOOL)}]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[1].type == "text" and final.content[1].text == "Let me look."
    assert final.content[2].type == "tool_use" and final.content[2].input == {"city": "Oslo"}
    assert (final.usage.cache_read_input_tokens, final.usage.output_tokens) == (2048, 40)


@pytest.mark.parametrize(("status", "kind", "error"), [
    (529, "overloaded_error", anthropic.InternalServerError),
    (429, "rate_limit_error", anthropic.RateLimitError),
    (500, "api_error", anthropic.InternalServerError)])
def test_messages_errors_in_anthropic_shape(claude: anthropic.Anthropic,
                                            scripted: ScriptedProvider, status: int, kind: str,
                                            error: type[Exception]) -> None:
    scripted.add_rule("claude-*", {"status": status, "retry_after": 7}, times=1)
    with pytest.raises(error) as caught:
        claude.messages.create(model="claude-x", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    response = caught.value.response  # type: ignore[attr-defined]
    assert response.status_code == status and response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == kind


def test_messages_stream_error_event_mid_stream(claude: anthropic.Anthropic) -> None:
    step = {"text": "one two three four five six", "stream_error": "overloaded_error",
            "cut_after": 4}
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"), claude.messages.stream(
            model="claude-x", max_tokens=10,
            messages=[{"role": "user", "content": _script(step)}]) as stream:
        seen.extend(stream.text_stream)
    assert seen == ["one "]


def test_count_tokens(claude: anthropic.Anthropic, scripted: ScriptedProvider) -> None:
    counted = claude.messages.count_tokens(model="claude-x", system="be brief",
                                           messages=[{"role": "user", "content": "x" * 400}])
    assert counted.input_tokens == len("be brief " + "x" * 400) // 4 + 0
    assert [r["path"] for r in scripted.requests()] == ["count_tokens"]


# ----------------------------------------------------------------- Ollama


@pytest.fixture
def ollama(scripted: ScriptedProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scripted.url, timeout=5) as client:
        yield client


def test_ollama_chat_native_tools_then_text(ollama: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    first = ollama.post("/api/chat", json={"model": "qwen3:8b", "stream": False, "tools": tools,
                                           "messages": [{"role": "user",
                                                         "content": "get the weather in Oslo"}]})
    message = first.json()["message"]
    assert message["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": {"city": "get the weather in Oslo"}}
    assert first.json()["done"] is True and first.json()["prompt_eval_count"] > 0
    second = ollama.post("/api/chat", json={"model": "qwen3:8b", "stream": False, "tools": tools,
                                            "messages": [
                                                {"role": "user", "content": "get the weather"},
                                                message, {"role": "tool", "content": "sunny"}]})
    assert second.json()["message"]["content"] == "Done. sunny"


def test_ollama_chat_streams_ndjson_with_counts_last(ollama: httpx.Client) -> None:
    step = {"thinking": "hmm", "text": "a b c", "prompt_tokens": 11, "completion_tokens": 5}
    response = ollama.post("/api/chat", json={"model": "qwen3:8b", "messages": [
        {"role": "user", "content": _script(step)}]})  # Ollama streams by default
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.headers["content-type"] == "application/x-ndjson"
    assert [line["message"].get("thinking", "") for line in lines[:1]] == ["hmm"]
    assert "".join(line["message"]["content"] for line in lines) == "a b c"
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (11, 5)


def test_ollama_embed_and_error_shape(ollama: httpx.Client, scripted: ScriptedProvider) -> None:
    body = ollama.post("/api/embed", json={"model": "nomic-embed-text",
                                           "input": ["abcd" * 3, "x"]}).json()
    assert len(body["embeddings"]) == 2 and body["prompt_eval_count"] == 3 + 1
    scripted.add_rule("qwen3*", {"status": 500, "error_message": "model crashed"}, times=1)
    failed = ollama.post("/api/chat", json={"model": "qwen3:8b", "stream": False,
                                            "messages": [{"role": "user", "content": "hi"}]})
    assert (failed.status_code, failed.json()) == (500, {"error": "model crashed"})


def test_openai_usage_details_for_cache_and_reasoning(http: httpx.Client) -> None:
    step = {"text": "ok", "prompt_tokens": 2000, "cached_tokens": 1024,
            "completion_tokens": 600, "reasoning_tokens": 512}
    usage = _chat(http, _script(step)).json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1024}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 512}
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (2000, 600)


def test_omit_usage_even_when_the_stream_asks(http: httpx.Client) -> None:
    text = _script({"text": "a b", "omit_usage": True})
    plain = _chat(http, text).json()
    assert "usage" not in plain
    with http.stream("POST", "/chat/completions", json={
            "model": "m", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": text}]}) as response:
        body = b"".join(response.iter_raw())
    assert b'"usage"' not in body and b"[DONE]" in body


def test_a_client_gone_mid_answer_prints_nothing_to_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    """socketserver prints a traceback to ``sys.stderr`` for an error in a server thread;
    the scripted provider logs instead (it landed in whatever a test was capturing)."""
    provider = ScriptedProvider()
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        provider._server.handle_error(None, ("127.0.0.1", 1))
    provider._server.server_close()
    assert capsys.readouterr().err == ""
