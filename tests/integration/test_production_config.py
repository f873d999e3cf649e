"""config/config.yaml (the production aliases) loads in the real proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llm_pool.runtime import ProxyProcess, start_proxy
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.integration

DUMMY_ENV = {
    "LITELLM_MASTER_KEY": MASTER_KEY,
    "ANTHROPIC_API_KEY": "sk-ant-dummy",
    "OPENAI_API_KEY": "sk-openai-dummy",
    "OLLAMA_API_BASE": "http://127.0.0.1:9",  # nothing listens: no real call is made
}


@pytest.fixture(scope="module")
def production_proxy(repo_root: Path, tmp_path_factory: pytest.TempPathFactory,
                     proxy_env: dict[str, str]) -> Iterator[ProxyProcess]:
    log = tmp_path_factory.mktemp("prod") / "proxy.log"
    running = start_proxy(repo_root / "config" / "config.yaml",
                          env={**proxy_env, **DUMMY_ENV}, log_path=log)
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
