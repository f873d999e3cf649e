"""config/config.yaml itself (only provider URLs and keys overridden) in the real proxy,
every provider pointed at the scripted provider speaking its own wire format: Anthropic's
Messages API, OpenAI's chat completions, Ollama's /api/chat and /api/embed.

Every chat deployment answers chat completions, Messages and Responses, streamed and not,
with and without tools; every spend row's tokens and cost match LiteLLM's pinned price
map (or the price the YAML declares), cache reads/writes and reasoning tokens included.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.conftest import MASTER_KEY
from tests.gateway.support import new_tenant, spend_rows, wait_for_rows
from tests.integration.production_support import (
    OVERLOAD,
    TOOL,
    WIRE_PATH,
    Deployment,
    chat_deployments,
    config,
    deployments,
    expected_cost,
    prices,
    read_answer,
    request_body,
    siblings,
    sse_payloads,
    start_production_proxy,
    steer,
)

pytestmark = pytest.mark.integration

KEY_SEEN = {"anthropic": "sk-ant-dummy", "openai": "sk-openai-dummy", "ollama_chat": None,
            "ollama": None}
ROUTES = ("/v1/chat/completions", "/v1/messages", "/v1/responses")
# usage every scripted answer reports: a cached prompt, a cache write, reasoning
PROMPT, CACHED, CACHE_WRITE, COMPLETION, REASONING = 3000, 1024, 512, 600, 512


@pytest.fixture(scope="module")
def production_proxy(tmp_path_factory: pytest.TempPathFactory, proxy_env: dict[str, str],
                     provider: ScriptedProvider) -> Iterator[ProxyProcess]:
    running = start_production_proxy(provider, proxy_env,
                                     tmp_path_factory.mktemp("prod") / "proxy.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tenant_key(pg_url: str) -> str:
    return new_tenant(pg_url, "prod")[1]


def _post(proxy: ProxyProcess, key: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{proxy.url}{path}", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})


# ----------------------------------------------------------------- failover (runs first)


def test_anthropic_overloaded_every_quality_request_answered_by_openai(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str) -> None:
    """Anthropic answers 529 on every call, OpenAI is healthy: the group's other deployment
    answers every `quality` request (streamed or not), never the fallback group."""
    scripted.add_rule("claude-sonnet-*", {"status": 529, "error_message": "Overloaded"})
    answered, ids = [], []
    for i in range(8):
        body = {"model": "quality", "stream": i % 2 == 1,
                "messages": [{"role": "user", "content": f"hello {i}"}]}
        response = _post(production_proxy, tenant_key, "/v1/chat/completions", body)
        assert response.status_code == 200, response.text
        answered.append(response.headers["x-litellm-model-id"])
        ids.append(response.headers["x-litellm-call-id"])
    assert answered == ["quality-openai"] * 8
    tried = [r["model"] for r in scripted.requests()]
    assert "claude-sonnet-4-6" in tried and "qwen3:8b" not in tried, tried
    rows = wait_for_rows(pg_url, ids, status="ok")
    assert {r["deployment"] for r in rows.values()} == {"quality-openai"}
    # each failed Anthropic call keeps a row of its own: <request id>/attempt-<n>
    attempts = [f"{i}/attempt-1" for i in ids]
    deadline = time.monotonic() + 15
    while len(failed := spend_rows(pg_url, "s.request_id = ANY(%s)", (attempts,))) < \
            tried.count("claude-sonnet-4-6"):
        assert time.monotonic() < deadline, (failed, tried)
        time.sleep(0.2)
    assert [(r["deployment"], r["status"]) for r in failed] == \
        [("quality-anthropic", "error")] * tried.count("claude-sonnet-4-6")


# ----------------------------------------------------------------- every deployment, every route

CASES = [(d.id, route, stream, tools) for d in chat_deployments() for route in ROUTES
         for stream in (False, True) for tools in (False, True)]


def _script(tools: bool) -> str:
    step: dict[str, object] = {
        "thinking": "weighing it", "prompt_tokens": PROMPT, "cached_tokens": CACHED,
        "cache_creation_tokens": CACHE_WRITE, "completion_tokens": COMPLETION,
        "reasoning_tokens": REASONING}
    if tools:
        step["tool_calls"] = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    else:
        step["text"] = "It is sunny in Oslo."
    return "what is the weather? [[script:" + json.dumps({"steps": [step]}) + "]]"


def _deployment(deployment_id: str) -> Deployment:
    return next(d for d in deployments() if d.id == deployment_id)


def _usage_expected(deployment: Deployment) -> tuple[int, float]:
    """(prompt tokens, cost) the row must carry: Ollama reports no cache."""
    if deployment.prefix.startswith("ollama"):
        return PROMPT, expected_cost(deployment, PROMPT, COMPLETION)
    return PROMPT, expected_cost(deployment, PROMPT, COMPLETION, CACHED, CACHE_WRITE)


@pytest.mark.parametrize(("deployment_id", "route", "stream", "tools"), CASES,
                         ids=[f"{d}-{r.rsplit('/', 1)[1]}-{'stream' if s else 'json'}-"
                              f"{'tools' if t else 'text'}" for d, r, s, t in CASES])
def test_every_deployment_answers_every_route_and_bills_by_the_price_map(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str, deployment_id: str, route: str, stream: bool, tools: bool) -> None:
    deployment = _deployment(deployment_id)
    steer(production_proxy.url, tenant_key, scripted, deployment)
    scripted.clear_requests()
    body = request_body(route, deployment.alias, _script(tools), stream, tools)
    response = _post(production_proxy, tenant_key, route, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-litellm-model-id"] == deployment.id

    answer = read_answer(route, response, stream)
    if tools:
        assert answer.tool_calls == [("get_weather", {"city": "Oslo"})]
    else:
        assert answer.text == "It is sunny in Oslo." and not answer.tool_calls
    # the deployment's own wire format and key; the tenant's key never reaches a provider
    calls = scripted.requests(deployment.upstream_model)
    assert [(c["path"], c["key"]) for c in calls] == [
        (WIRE_PATH[deployment.prefix], KEY_SEEN[deployment.prefix])]
    assert all(tenant_key not in json.dumps(c) for c in scripted.requests())

    call_id = response.headers["x-litellm-call-id"]
    row = wait_for_rows(pg_url, [call_id], status="ok")[call_id]
    prompt, cost = _usage_expected(deployment)
    assert (row["model_alias"], row["deployment"], row["provider_model"], row["status"]) == (
        deployment.alias, deployment.id, deployment.model, "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, COMPLETION)
    assert float(row["cost_usd"]) == pytest.approx(cost, rel=1e-9, abs=1e-15)
    assert not row["estimated"]


# ----------------------------------------------------------------- embeddings


@pytest.mark.parametrize("deployment_id", ["embedder-openai", "local-embedder-ollama"])
def test_embeddings_on_each_wire_billed_by_the_price_map(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str, deployment_id: str) -> None:
    deployment = _deployment(deployment_id)
    texts = ["a" * 40, "b" * 80]
    response = _post(production_proxy, tenant_key, "/v1/embeddings",
                     {"model": deployment.alias, "input": texts})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    paths = [r["path"] for r in scripted.requests(deployment.upstream_model)]
    assert paths == ["embeddings" if deployment.prefix == "openai" else "ollama_embed"]
    call_id = response.headers["x-litellm-call-id"]
    row = wait_for_rows(pg_url, [call_id], status="ok")[call_id]
    assert (row["model_alias"], row["prompt_tokens"]) == (deployment.alias, 10 + 20)
    # the deployment that answered, also on Ollama (whose embedding payload has no api_base)
    assert (row["deployment"], row["provider_model"]) == (deployment.id, deployment.model)
    assert float(row["cost_usd"]) == pytest.approx(
        30 * prices(deployment)["input_cost_per_token"], rel=1e-9, abs=1e-15)


# ----------------------------------------------------------------- the config itself


def test_liveliness_and_every_alias_listed(production_proxy: ProxyProcess) -> None:
    assert httpx.get(f"{production_proxy.url}/health/liveliness").status_code == 200
    aliases = {m["model_name"] for m in config()["model_list"]}
    assert {"fast", "local", "quality", "balanced", "economy", "embedder"} <= aliases
    listed = httpx.get(f"{production_proxy.url}/v1/models",
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert {m["id"] for m in listed["data"]} == aliases


def test_every_deployment_priced_and_ollama_chat_on_api_chat() -> None:
    for deployment in deployments():
        assert prices(deployment)["input_cost_per_token"] is not None  # map or YAML
        assert deployment.prefix in OVERLOAD, deployment.model
    chat_prefixes = {d.prefix for d in chat_deployments()}
    assert "ollama" not in chat_prefixes, "ollama/ chat calls /api/generate: use ollama_chat/"


def test_production_fallbacks_declared() -> None:
    router = config()["router_settings"]
    assert {"quality": ["fast"]} in router["fallbacks"]
    assert {"balanced": ["fast"]} in router["fallbacks"]
    assert router["routing_strategy"] == "latency-based-routing"


def test_bridging_settings_match_the_offline_config(repo_root: Path) -> None:
    import yaml

    for name in ("config.yaml", "offline.yaml"):
        loaded = yaml.safe_load((repo_root / "config" / name).read_text())
        assert loaded["litellm_settings"]["use_chat_completions_url_for_anthropic_messages"]
        chat = [m for m in loaded["model_list"] if m["model_info"].get("mode") != "embedding"]
        assert all(m["litellm_params"].get("use_chat_completions_api") for m in chat), name


# ----------------------------------------------------------------- output limits (Claude Code)

CLAUDE_CODE_HEADERS = {"anthropic-version": "2023-06-01",
                       "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}


def _claude_code(max_tokens: int) -> dict[str, object]:
    """A request shaped as Claude Code sends it (its default max_tokens is 32,000)."""
    return {"model": "quality", "max_tokens": max_tokens, "stream": True,
            "system": [{"type": "text", "text": "You are Claude Code.",
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "tools": [{"name": TOOL["name"], "description": TOOL["description"],
                       "input_schema": TOOL["parameters"]}],
            "metadata": {"user_id": "user_0123_account__session_abc"}}


def test_claude_codes_default_max_tokens_passes_on_quality_and_over_the_models_limit_not(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str) -> None:
    headers = {"x-api-key": tenant_key, **CLAUDE_CODE_HEADERS}
    passed = httpx.post(f"{production_proxy.url}/v1/messages", headers=headers, timeout=60,
                        json=_claude_code(32_000))
    assert passed.status_code == 200, passed.text
    sent = [c["body"] for c in scripted.requests() if c["path"] in ("messages", "chat")]
    assert [b.get("max_tokens") or b.get("max_completion_tokens") for b in sent] == [32_000]
    scripted.clear_requests()
    # quality's limit: the smallest of its deployments' (Anthropic's 64,000, declared)
    refused = httpx.post(f"{production_proxy.url}/v1/messages", headers=headers, timeout=60,
                         json=_claude_code(64_001))
    assert refused.status_code == 400, refused.text
    assert "max_tokens=64,001 is over the output limit of model 'quality': 64,000 tokens" in \
        refused.json()["error"]["message"]
    assert scripted.requests() == []


# ----------------------------------------------------------------- the alias in every answer


def _models_named(value: object) -> set[str]:
    """Every ``model`` field anywhere in an answer (JSON or SSE events)."""
    if isinstance(value, dict):
        own = {str(value["model"])} if isinstance(value.get("model"), str) else set()
        return own.union(*(_models_named(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_models_named(v) for v in value))
    return set()


def _answer_models(response: httpx.Response, stream: bool) -> set[str]:
    if not stream:
        return _models_named(response.json())
    events = [json.loads(line.removeprefix("data:").strip())
              for line in response.text.splitlines()
              if line.startswith("data:") and line.removeprefix("data:").strip() != "[DONE]"]
    return _models_named(events)


@pytest.mark.parametrize("fallback", [False, True], ids=["direct", "fallback"])
def test_every_answer_names_the_alias_asked_for_never_a_provider_model(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        fallback: bool) -> None:
    """Streamed or not, on every route: the answer's `model` is the alias the client
    named, also when another group (quality -> fast) answered after a fallback."""
    if fallback:  # every quality deployment overloaded: the fallback group answers
        # once fast-ollama is out of any cooldown an earlier test left (steering `balanced`
        # overloads qwen3:8b, which `fast` shares): else fast has no deployment to answer
        steer(production_proxy.url, tenant_key, scripted, _deployment("fast-ollama"))
        scripted.add_rule("claude-sonnet-*", {"status": 529, "error_message": "Overloaded"})
        scripted.add_rule("gpt-5.4", {"status": 503, "error_message": "overloaded"})
    seen = {}
    for route in ROUTES:
        for stream in (False, True):
            body = request_body(route, "quality", "hello", stream, tools=False)
            response = _post(production_proxy, tenant_key, route, body)
            assert response.status_code == 200, (route, stream, response.text)
            answered = response.headers["x-litellm-model-id"]
            assert (answered == "fast-ollama") == fallback, (route, stream, answered)
            seen[(route, stream)] = _answer_models(response, stream)
    wrong = {f"{route} stream={stream}": models for (route, stream), models in seen.items()
             if models != {"quality"}}
    assert not wrong


# ----------------------------------------------------------------- streams without usage


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_a_stream_without_provider_usage_is_estimated_never_free(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str, route: str) -> None:
    """quality-openai (an openai/ deployment in a mixed alias) streams with no usage at all:
    the row is counted by an estimate, flagged; a stream with usage is not flagged. (The
    request's row is read once it is the answer's: a first attempt on a sibling that is
    still overloaded shows its error row under the request's id until then.)"""
    target = _deployment("quality-openai")
    steer(production_proxy.url, tenant_key, scripted, target)
    text = "tell me about Oslo " * 20
    rows = {}
    for omit in (True, False):
        step = {"text": "Oslo is the capital of Norway. " * 10, "omit_usage": omit}
        body = request_body(route, "quality",
                            text + "[[script:" + json.dumps({"steps": [step]}) + "]]",
                            stream=True, tools=False)
        response = _post(production_proxy, tenant_key, route, body)
        assert response.status_code == 200, response.text
        assert response.headers["x-litellm-model-id"] == target.id
        call_id = response.headers["x-litellm-call-id"]
        rows[omit] = wait_for_rows(pg_url, [call_id], status="ok")[call_id]
    silent, reported = rows[True], rows[False]
    assert silent["prompt_tokens"] > 0 and silent["completion_tokens"] > 0, silent
    assert float(silent["cost_usd"]) == pytest.approx(
        expected_cost(target, silent["prompt_tokens"], silent["completion_tokens"]), rel=1e-9)
    assert silent["estimated"], silent
    assert not reported["estimated"] and float(reported["cost_usd"]) == pytest.approx(
        expected_cost(target, reported["prompt_tokens"], reported["completion_tokens"]),
        rel=1e-9)



# ----------------------------------------------------------------- failed attempts, a row each

# what a tenant must never read in an error: providers, provider models, LiteLLM's chain
LEAKS = re.compile(r"anthropic|openai|ollama|claude|gpt-|qwen|exception|litellm|fallback|"
                   r"model group|retried", re.IGNORECASE)


def _attempt_rows(pg_url: str, call_id: str, count: int) -> list[dict[str, object]]:
    """The request's rows, its own first, then ``<id>/attempt-<n>``, once ``count`` are
    written (and a moment later still: a row too many would show by then)."""
    where, params = "s.request_id = %s OR s.request_id LIKE %s", (call_id, call_id + "/attempt-%")
    deadline = time.monotonic() + 15
    while len(spend_rows(pg_url, where, params)) < count:
        assert time.monotonic() < deadline, spend_rows(pg_url, where, params)
        time.sleep(0.2)
    time.sleep(1.0)
    return sorted(spend_rows(pg_url, where, params),
                  key=lambda r: (r["request_id"] != call_id, str(r["request_id"])))


def _attempt_ids(call_id: str, count: int) -> list[str]:
    return [call_id] + [f"{call_id}/attempt-{n}" for n in range(2, count + 1)]


def _chat_stream_error(response: httpx.Response, alias: str) -> None:
    """The last event of a chat stream that failed mid-answer: a 503-class overload in the
    alias's name, no provider named."""
    error = sse_payloads(response.text)[-1]["error"]
    assert (error["code"], error["type"]) == ("503", "service_unavailable_error"), error
    assert f"'{alias}'" in error["message"] and not LEAKS.search(error["message"]), error


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_a_stream_overloaded_mid_answer_bills_the_cut_attempt_and_names_the_alias(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str, route: str) -> None:
    """Anthropic starts the answer, then sends an overloaded error event. Once text has
    reached the client no other deployment may take over (LiteLLM's rule), so the stream
    ends in an error: on chat completions an overload in the alias's name, on Messages
    Anthropic's own event. The cut attempt keeps an error row billed what it streamed (the
    prompt from message_start), flagged estimated; a sibling's call that failed before it
    (quality-openai, still overloaded, when the router tried it first) keeps its own row."""
    anthropic = _deployment("quality-anthropic")
    steer(production_proxy.url, tenant_key, scripted, anthropic)
    scripted.clear_requests()
    cut = {"text": "Oslo is the capital of Norway. " * 40, "stream_error": "overloaded_error",
           "cut_after": 6, "prompt_tokens": 900, "completion_tokens": 700}
    script = {"by_model": {"claude-*": cut}}
    body = request_body(route, "quality", "tell me about Oslo [[script:" + json.dumps(script)
                        + "]]", stream=True, tools=False)
    response = _post(production_proxy, tenant_key, route, body)
    assert response.status_code == 200, response.text
    assert read_answer(route, response, stream=True).text == "Oslo is the ", response.text
    if route == "/v1/chat/completions":
        _chat_stream_error(response, "quality")
    else:
        assert sse_payloads(response.text)[-1] == {
            "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    tried = [r["model"] for r in scripted.requests()]
    assert tried[-1:] == [anthropic.upstream_model] and tried.count(tried[-1]) == 1, tried
    call_id = response.headers["x-litellm-call-id"]
    rows = _attempt_rows(pg_url, call_id, len(tried))
    ids = {d.upstream_model: d.id for d in [anthropic, *siblings(anthropic)]}
    assert [(r["request_id"], r["deployment"]) for r in rows] == list(
        zip(_attempt_ids(call_id, len(tried)), [ids[m] for m in tried], strict=True))
    *failed, cut_row = rows
    assert cut_row["status"] == "error" and cut_row["estimated"], cut_row
    assert cut_row["error_class"] == ("StreamError" if route == "/v1/messages"
                                      else "AnthropicError"), cut_row
    assert cut_row["prompt_tokens"] == 900 and cut_row["completion_tokens"] >= 1, cut_row
    assert float(cut_row["cost_usd"]) == pytest.approx(expected_cost(
        anthropic, cut_row["prompt_tokens"], cut_row["completion_tokens"]), rel=1e-9)
    for row in failed:  # refused (503) before any work: nothing billed
        assert (row["status"], row["prompt_tokens"], row["completion_tokens"], row["estimated"],
                float(row["cost_usd"])) == ("error", 0, 0, False, 0.0), row


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_cut_before_its_answer_falls_over_and_the_answer_bills_only_its_own(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str, route: str) -> None:
    """Anthropic sends message_start (900 prompt tokens), then an overloaded error event,
    before any text: another deployment answers. The cut attempt keeps its row (the prompt,
    estimated); the answer's row carries the answering deployment's own tokens only (the
    cut stream's usage, left on the logging object the attempts share, was reported as the
    answer's)."""
    anthropic = _deployment("quality-anthropic")
    steer(production_proxy.url, tenant_key, scripted, anthropic)
    scripted.clear_requests()
    cut = {"text": "Oslo is the capital of Norway.", "stream_error": "overloaded_error",
           "cut_after": 1, "prompt_tokens": 900, "completion_tokens": 700}
    whole = {"text": "Oslo is the capital.", "prompt_tokens": 50, "completion_tokens": 7}
    script = {"by_model": {"claude-*": cut, "*": whole}}
    body = request_body(route, "quality", "tell me about Oslo [[script:" + json.dumps(script)
                        + "]]", stream=True, tools=False)
    response = _post(production_proxy, tenant_key, route, body)
    assert response.status_code == 200, response.text
    assert read_answer(route, response, stream=True).text == "Oslo is the capital.", \
        response.text
    tried = [r["model"] for r in scripted.requests()]
    assert anthropic.upstream_model in tried[:-1] and tried[-1] != anthropic.upstream_model, \
        tried  # cut, then another deployment
    by_model = {d.upstream_model: d for d in deployments() if d.alias in ("quality", "fast")}
    answering = by_model[tried[-1]]
    assert answering.id == response.headers["x-litellm-model-id"] != anthropic.id
    call_id = response.headers["x-litellm-call-id"]
    answer = wait_for_rows(pg_url, [call_id], status="ok")[call_id]
    assert (answer["deployment"], answer["prompt_tokens"], answer["completion_tokens"],
            answer["estimated"]) == (answering.id, 50, 7, False), answer
    assert float(answer["cost_usd"]) == pytest.approx(expected_cost(answering, 50, 7), rel=1e-9)
    rows = _attempt_rows(pg_url, call_id, len(tried))[1:]
    assert sorted(r["request_id"] for r in rows) == [
        f"{call_id}/attempt-{n}" for n in range(1, len(tried))], (tried, rows)
    assert sorted(r["deployment"] for r in rows) == sorted(
        by_model[m].id for m in tried[:-1]), rows
    for row in rows:
        if row["deployment"] == anthropic.id:  # each cut: billed its prompt, estimated
            assert (row["status"], row["prompt_tokens"], row["estimated"]) == (
                "error", 900, True), row
            assert float(row["cost_usd"]) == pytest.approx(expected_cost(
                anthropic, 900, row["completion_tokens"]), rel=1e-9)
        else:  # refused (still overloaded) before any work
            assert (row["status"], row["prompt_tokens"], float(row["cost_usd"])) == (
                "error", 0, 0.0), row


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_a_failed_call_then_a_stream_cut_mid_answer_each_keep_their_own_row(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str, route: str) -> None:
    """economy (one deployment): its first call is refused (503), LiteLLM's retry streams
    part of the answer and is cut by an error event. LiteLLM logs a request's first failure
    only; the gateway lets each through: both calls keep a row, the cut one billed what it
    streamed (estimated), and the client's last event names the alias (on Messages,
    Anthropic's overloaded_error)."""
    economy = _deployment("economy-openai")
    scripted.add_rule(economy.upstream_model, {"status": 503}, times=1)
    cut = {"text": "Oslo is the capital of Norway. " * 40, "stream_error": "server_error",
           "cut_after": 6}
    text = "tell me about Oslo " * 30
    body = request_body(route, "economy",
                        text + "[[script:" + json.dumps({"steps": [cut]}) + "]]",
                        stream=True, tools=False)
    response = _post(production_proxy, tenant_key, route, body)
    assert response.status_code == 200, response.text
    assert read_answer(route, response, stream=True).text, response.text
    if route == "/v1/chat/completions":
        _chat_stream_error(response, "economy")
    else:
        error = sse_payloads(response.text)[-1]
        assert (error["type"], error["error"]["type"]) == ("error", "overloaded_error"), error
        message = error["error"]["message"]
        assert "'economy'" in message and not LEAKS.search(message), error
    assert [r["model"] for r in scripted.requests()] == [economy.upstream_model] * 2
    call_id = response.headers["x-litellm-call-id"]
    refused, cut_row = _attempt_rows(pg_url, call_id, 2)
    assert [refused["request_id"], cut_row["request_id"]] == _attempt_ids(call_id, 2)
    assert (refused["deployment"], refused["status"], refused["error_class"],
            float(refused["cost_usd"]), refused["estimated"]) == (
        economy.id, "error", "ServiceUnavailableError", 0.0, False), refused
    assert (cut_row["deployment"], cut_row["status"], cut_row["estimated"]) == (
        economy.id, "error", True), cut_row
    assert cut_row["prompt_tokens"] > 100 and cut_row["completion_tokens"] > 0, cut_row
    assert float(cut_row["cost_usd"]) == pytest.approx(expected_cost(
        economy, cut_row["prompt_tokens"], cut_row["completion_tokens"]), rel=1e-9)


def test_three_failed_calls_of_one_request_leave_three_rows_and_count_three_faults(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, tenant_key: str,
        pg_url: str) -> None:
    """`local` (one deployment, num_retries 2, allowed_fails 3) refuses three times: the
    request fails with a 503 in the alias's name and each of the three calls keeps its row,
    as the config's comment promises. Each also counts as a provider fault: the next one
    (the 4th) cools the deployment down, so that request's retries are not sent and the
    request after it is refused (LiteLLM counted a request's retries as one fault)."""
    local = _deployment("local-ollama")
    scripted.add_rule(local.upstream_model, {"status": 503}, times=4)
    body = request_body("/v1/chat/completions", "local", "hello", stream=False, tools=False)
    response = _post(production_proxy, tenant_key, "/v1/chat/completions", body)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["type"] == "service_unavailable_error", error
    assert "'local'" in error["message"] and not LEAKS.search(error["message"]), error
    assert [r["model"] for r in scripted.requests()] == [local.upstream_model] * 3
    call_id = response.headers["x-litellm-call-id"]
    rows = _attempt_rows(pg_url, call_id, 3)
    assert [(r["request_id"], r["deployment"], r["status"]) for r in rows] == [
        (i, local.id, "error") for i in _attempt_ids(call_id, 3)]
    assert all(r["error_class"] for r in rows), rows
    fourth = _post(production_proxy, tenant_key, "/v1/chat/completions", body)
    assert fourth.status_code >= 429, fourth.text
    assert len(scripted.requests()) == 4  # cooled down after the 4th fault: no retry sent
    cooled = _post(production_proxy, tenant_key, "/v1/chat/completions", body)
    assert cooled.status_code == 429 and "cooldown" in cooled.text, cooled.text
