"""Helpers of the production-config tests: config/config.yaml's deployments as the
scripted provider sees them, their prices (LiteLLM's pinned map or the YAML), steering an
alias to one of its deployments, and reading an answer on every route, streamed or not."""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, start_proxy
from llm_pool.settings import REPO_ROOT

CONFIG = REPO_ROOT / "config" / "config.yaml"
# how each provider says "overloaded" (LiteLLM maps both to a retryable provider fault)
OVERLOAD = {"anthropic": 529, "openai": 503, "ollama_chat": 503, "ollama": 503}
# the scripted provider's name for the path each prefix calls
WIRE_PATH = {"anthropic": "messages", "openai": "chat", "ollama_chat": "ollama_chat"}
PRICE_FIELDS = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                "cache_creation_input_token_cost")


PROVIDER_KEYS = {"ANTHROPIC_API_KEY": "sk-ant-dummy", "OPENAI_API_KEY": "sk-openai-dummy"}


def start_production_proxy(provider: ScriptedProvider, proxy_env: dict[str, str],
                           log: Path) -> ProxyProcess:
    """config/config.yaml itself; only the provider URLs and keys come from here: every
    provider's base URL is the scripted provider, so no call leaves the machine."""
    upstreams = {"OLLAMA_API_BASE": provider.url, "OPENAI_API_BASE": f"{provider.url}/v1",
                 "ANTHROPIC_API_BASE": provider.url}
    return start_proxy(CONFIG, env={**proxy_env, **PROVIDER_KEYS, **upstreams}, log_path=log)


@dataclass(frozen=True)
class Deployment:
    id: str
    alias: str
    model: str  # as in the YAML: prefix/name
    litellm_params: dict[str, Any]

    @property
    def prefix(self) -> str:
        return self.model.split("/", 1)[0]

    @property
    def upstream_model(self) -> str:
        """The model name the provider sees."""
        return self.model.split("/", 1)[1]


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return loaded


def deployments() -> list[Deployment]:
    return [Deployment(m["model_info"]["id"], m["model_name"], m["litellm_params"]["model"],
                       m["litellm_params"]) for m in config()["model_list"]]


def chat_deployments() -> list[Deployment]:
    return [d for d in deployments() if d.id not in _embedding_ids()]


def _embedding_ids() -> set[str]:
    return {m["model_info"]["id"] for m in config()["model_list"]
            if m["model_info"].get("mode") == "embedding"}


@cache
def price_map() -> dict[str, Any]:
    """LiteLLM's pinned price map, read as a file (importing litellm is not needed)."""
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations)))
    prices: dict[str, Any] = json.loads(
        (path / "model_prices_and_context_window_backup.json").read_text())
    return prices


def prices(deployment: Deployment) -> dict[str, float]:
    """The per-token prices of a deployment: declared in the YAML, else the map's entry."""
    declared = deployment.litellm_params
    if "input_cost_per_token" in declared:
        return {f: float(declared.get(f, 0.0)) for f in PRICE_FIELDS}
    entry = price_map().get(deployment.upstream_model) or price_map().get(deployment.model)
    assert entry, f"{deployment.id}: {deployment.model} has no price (map or YAML)"
    return {f: float(entry.get(f) or 0.0) for f in PRICE_FIELDS}


def expected_cost(deployment: Deployment, prompt: int, completion: int, cached: int = 0,
                  cache_creation: int = 0) -> float:
    """What the price map says a call costs; OpenAI has no cache writes (its reasoning
    tokens are output tokens, in ``completion``)."""
    price = prices(deployment)
    if deployment.prefix != "anthropic":
        cache_creation = 0
    uncached = prompt - cached - cache_creation
    return (uncached * price["input_cost_per_token"]
            + cached * price["cache_read_input_token_cost"]
            + cache_creation * price["cache_creation_input_token_cost"]
            + completion * price["output_cost_per_token"])


def siblings(deployment: Deployment) -> list[Deployment]:
    return [d for d in deployments() if d.alias == deployment.alias and d.id != deployment.id]


def steer(proxy_url: str, key: str, provider: ScriptedProvider, target: Deployment,
          timeout: float = 120.0) -> None:
    """Make the alias's other deployments overloaded (every call fails as their provider
    fails when overloaded) and wait until a request to the alias is answered by
    ``target``: the config's failover moves the group's traffic to it (a sibling still
    cooling down from an earlier test keeps its cooldown, up to cooldown_time)."""
    for other in siblings(target):
        provider.add_rule(other.upstream_model, {"status": OVERLOAD[other.prefix]})
    deadline = time.monotonic() + timeout
    while True:
        probe = httpx.post(f"{proxy_url}/v1/chat/completions", timeout=60,
                           headers={"Authorization": f"Bearer {key}"},
                           json={"model": target.alias, "max_tokens": 8,
                                 "messages": [{"role": "user", "content": "probe"}]})
        if probe.status_code == 200 and probe.headers.get("x-litellm-model-id") == target.id:
            return
        assert probe.status_code in (200, 429) or probe.status_code >= 500, probe.text[:300]
        assert time.monotonic() < deadline, (
            f"{target.alias} not answered by {target.id}: {probe.status_code} "
            f"{probe.headers.get('x-litellm-model-id')} {probe.text[:300]}")
        time.sleep(1.0)


# ----------------------------------------------------------------- requests and answers

TOOL = {"name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}


def request_body(route: str, alias: str, text: str, stream: bool, tools: bool
                 ) -> dict[str, Any]:
    body: dict[str, Any] = {"model": alias, "stream": stream}
    if route == "/v1/chat/completions":
        body["messages"] = [{"role": "user", "content": text}]
        if tools:
            body["tools"] = [{"type": "function", "function": TOOL}]
    elif route == "/v1/messages":
        body.update(max_tokens=1000, messages=[{"role": "user", "content": text}])
        if tools:
            body["tools"] = [{"name": TOOL["name"], "description": TOOL["description"],
                              "input_schema": TOOL["parameters"]}]
    else:
        body["input"] = text
        if tools:
            body["tools"] = [{"type": "function", **TOOL}]
    return body


@dataclass
class Answer:
    text: str
    tool_calls: list[tuple[str, dict[str, Any]]]


def sse_payloads(raw: str) -> list[dict[str, Any]]:
    out = []
    for line in raw.splitlines():
        if line.startswith("data:"):
            data = line.removeprefix("data:").strip()
            if data and data != "[DONE]":
                out.append(json.loads(data))
    return out


def read_answer(route: str, response: httpx.Response, stream: bool) -> Answer:
    if not stream:
        return _read_json(route, response.json())
    events = sse_payloads(response.text)
    if route == "/v1/chat/completions":
        return _read_chat_stream(events)
    if route == "/v1/messages":
        return _read_messages_stream(events)
    return _read_json(route, next(e["response"] for e in events
                                  if e.get("type") == "response.completed"))


def _read_json(route: str, body: dict[str, Any]) -> Answer:
    if route == "/v1/chat/completions":
        message = body["choices"][0]["message"]
        calls = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in message.get("tool_calls") or []]
        return Answer(message.get("content") or "", calls)
    if route == "/v1/messages":
        text = "".join(b["text"] for b in body["content"] if b["type"] == "text")
        return Answer(text, [(b["name"], b["input"]) for b in body["content"]
                             if b["type"] == "tool_use"])
    text = "".join(part["text"] for item in body["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")
    return Answer(text, [(item["name"], json.loads(item["arguments"]))
                         for item in body["output"] if item["type"] == "function_call"])


def _read_chat_stream(events: list[dict[str, Any]]) -> Answer:
    text, calls = "", dict[int, list[str]]()
    for event in events:
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], ["", ""])
                entry[0] += (call.get("function") or {}).get("name") or ""
                entry[1] += (call.get("function") or {}).get("arguments") or ""
    return Answer(text, [(name, json.loads(args)) for name, args in calls.values()])


def _read_messages_stream(events: list[dict[str, Any]]) -> Answer:
    text, calls = "", dict[int, list[str]]()
    for event in events:
        if event["type"] == "content_block_start" and \
                event["content_block"]["type"] == "tool_use":
            calls[event["index"]] = [event["content_block"]["name"], ""]
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                text += delta["text"]
            elif delta["type"] == "input_json_delta":
                calls[event["index"]][1] += delta["partial_json"]
    return Answer(text, [(name, json.loads(args or "{}")) for name, args in calls.values()])
