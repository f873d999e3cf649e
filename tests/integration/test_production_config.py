"""config/config.yaml (the production aliases) loads in the real proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, start_proxy
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.integration

DUMMY_ENV = {
    "LITELLM_MASTER_KEY": MASTER_KEY,
    "ANTHROPIC_API_KEY": "sk-ant-dummy",
    "OPENAI_API_KEY": "sk-openai-dummy",
    "OLLAMA_API_BASE": "http://127.0.0.1:9",  # nothing listens: no real call is made
}


def upstreams(provider: ScriptedProvider) -> dict[str, str]:
    """Every provider's base URL on the scripted provider (it speaks chat completions
    only: the Ollama and Anthropic protocols get a 404 there), so no call leaves."""
    return {"OLLAMA_API_BASE": provider.url, "OPENAI_API_BASE": f"{provider.url}/v1",
            "ANTHROPIC_API_BASE": provider.url}


@pytest.fixture(scope="module")
def production_proxy(repo_root: Path, tmp_path_factory: pytest.TempPathFactory,
                     proxy_env: dict[str, str], provider: ScriptedProvider
                     ) -> Iterator[ProxyProcess]:
    log = tmp_path_factory.mktemp("prod") / "proxy.log"
    running = start_proxy(repo_root / "config" / "config.yaml",
                          env={**proxy_env, **DUMMY_ENV, **upstreams(provider)}, log_path=log)
    yield running
    running.stop()


def test_liveliness_and_every_alias_listed(production_proxy: ProxyProcess, repo_root: Path) -> None:
    assert httpx.get(f"{production_proxy.url}/health/liveliness").status_code == 200
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    aliases = {m["model_name"] for m in config["model_list"]}
    assert {"fast", "local", "quality", "balanced", "economy", "embedder"} <= aliases
    listed = httpx.get(f"{production_proxy.url}/v1/models",
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert {m["id"] for m in listed["data"]} == aliases


def test_production_fallbacks_declared(repo_root: Path) -> None:
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    router = config["router_settings"]
    assert {"quality": ["fast"]} in router["fallbacks"]
    assert {"balanced": ["fast"]} in router["fallbacks"]
    assert router["routing_strategy"] == "latency-based-routing"
    quality = [m["litellm_params"]["model"] for m in config["model_list"]
               if m["model_name"] == "quality"]
    assert any(m.startswith("anthropic/claude-sonnet-4") for m in quality)
    assert "openai/gpt-4o" in quality


# ----------------------------------------------------------------- Responses and Messages

# alias -> what its deployments' upstreams answer through the scripted provider: the
# OpenAI ones a real answer (bridged to chat completions), the others a 404 naming
# the provider (Ollama's /api/chat, Anthropic's /v1/messages are not served there)
PROVIDERS = {"fast": "Ollama", "local": "Ollama", "quality": "Anthropic|openai",
             "balanced": "Ollama|Anthropic", "economy": "openai"}
ROUTES = {
    "/v1/responses": {"input": "ping"},
    "/v1/messages": {"max_tokens": 8, "messages": [{"role": "user", "content": "ping"}]},
}


def _answer_text(path: str, body: dict[str, Any]) -> str:
    if path == "/v1/responses":
        return str(body["output"][0]["content"][0]["text"])
    return str(body["content"][0]["text"])


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("alias", PROVIDERS)
def test_responses_and_messages_routes_map_every_alias(
        production_proxy: ProxyProcess, scripted: ScriptedProvider, alias: str,
        path: str) -> None:
    answer = httpx.post(f"{production_proxy.url}{path}", json={"model": alias, **ROUTES[path]},
                        headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=60)
    if answer.status_code == 200:
        assert "openai" in PROVIDERS[alias] and "You said: ping" in _answer_text(
            path, answer.json())
        assert [r["path"] for r in scripted.requests()] == ["chat"]  # bridged to chat
    else:
        message = str(answer.json()["error"]["message"])
        named = [p for p in PROVIDERS[alias].split("|") if f"{p}Exception" in message]
        assert named and "no route" in message, message


def test_bridging_settings_match_the_offline_config(repo_root: Path) -> None:
    for name in ("config.yaml", "offline.yaml"):
        config = yaml.safe_load((repo_root / "config" / name).read_text())
        assert config["litellm_settings"]["use_chat_completions_url_for_anthropic_messages"]
        chat = [m for m in config["model_list"] if m["model_info"].get("mode") != "embedding"]
        assert all(m["litellm_params"].get("use_chat_completions_api") for m in chat), name
