"""The output cap follows each alias's models (proxy/edge/output_limits.py): the smallest
``max_output_tokens`` of the alias's deployments, declared in the YAML or known to
LiteLLM's map; a tenant's own lower cap still holds; above the model's limit the refusal
names the model's figure. The proxy-level test is in
tests/integration/test_production_config.py (Claude Code's 32,000 on config/config.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_pool.configcheck import output_limits
from proxy.admission import estimate
from proxy.context import TenantContext, from_metadata, to_metadata
from proxy.edge.caps import CapExceeded, Limits, OutputLimitExceeded, check_caps
from proxy.edge.output_limits import OutputCap, alias_limits, group_limit, output_cap
from proxy.storage.tenants import Caps

MAP = {"anthropic/claude-x": 64_000, "openai/gpt-x": 128_000}
MODELS: list[dict[str, Any]] = [
    {"model_name": "quality", "litellm_params": {"model": "anthropic/claude-x"}},
    {"model_name": "quality", "litellm_params": {"model": "openai/gpt-x"}},
    {"model_name": "fast", "litellm_params": {"model": "ollama_chat/qwen3:8b"},
     "model_info": {"max_output_tokens": 32_768}},
    {"model_name": "declared", "litellm_params": {"model": "openai/gpt-x"},
     "model_info": {"max_output_tokens": 1_000}},  # the YAML's figure wins over the map's
    {"model_name": "house", "litellm_params": {"model": "openai/house-1"}},
    {"model_name": "embedder", "litellm_params": {"model": "openai/gpt-x"},
     "model_info": {"mode": "embedding"}},
]


def test_each_alias_gets_the_smallest_limit_of_its_deployments() -> None:
    assert alias_limits(MODELS, MAP.get) == {"quality": 64_000, "fast": 32_768,
                                             "declared": 1_000}
    assert group_limit(MODELS[:2], MAP.get) == 64_000
    assert group_limit([MODELS[4]], MAP.get) is None


@pytest.mark.parametrize(("tenant", "own", "model", "cap"), [
    (16_384, False, 64_000, OutputCap(64_000, model=True)),   # the default gives way
    (16_384, False, None, OutputCap(16_384, model=False)),    # unknown model: the default
    (1_000, True, 64_000, OutputCap(1_000, model=False)),     # the tenant's own, lower
    (100_000, True, 64_000, OutputCap(64_000, model=True)),   # the model's, lower
])
def test_which_cap_holds(tenant: int, own: bool, model: int | None, cap: OutputCap) -> None:
    assert output_cap(tenant, own, model) == cap


def test_limits_know_whether_max_tokens_is_the_tenants_own() -> None:
    defaults = Caps(max_n=4, max_tokens=16_384, max_prompt_tokens=131_072)
    assert not Limits.of(Caps(), defaults).max_tokens_own
    own = Limits.of(Caps(max_tokens=500), defaults)
    tenant = TenantContext(7, "acme", None, None, None, own)
    assert own.max_tokens_own and from_metadata(to_metadata(tenant)) == tenant


def quality_64k(alias: str) -> int | None:
    return {"quality": 64_000}.get(alias)


DEFAULT = Limits(max_n=4, max_tokens=16_384, max_prompt_tokens=10**6)


def test_claude_codes_32000_passes_on_a_64k_alias_and_64001_names_the_models_figure() -> None:
    check_caps("/v1/messages", {"model": "quality", "max_tokens": 32_000}, DEFAULT, "acme",
               quality_64k)
    check_caps("/v1/messages", {"model": "quality", "max_tokens": 64_000}, DEFAULT, "acme",
               quality_64k)
    with pytest.raises(OutputLimitExceeded) as caught:
        check_caps("/v1/messages", {"model": "quality", "max_tokens": 64_001}, DEFAULT, "acme",
                   quality_64k)
    assert str(caught.value.code) == "400"
    assert "max_tokens=64,001 is over the output limit of model 'quality': 64,000 tokens" \
        in caught.value.message
    with pytest.raises(CapExceeded) as unknown:  # an alias of unknown limit: the default
        check_caps("/v1/messages", {"model": "fast", "max_tokens": 32_000}, DEFAULT, "acme",
                   quality_64k)
    assert "cap max_tokens=16,384" in unknown.value.message


def test_a_tenants_own_lower_cap_still_holds() -> None:
    own = Limits(max_n=4, max_tokens=20_000, max_prompt_tokens=10**6, max_tokens_own=True)
    with pytest.raises(CapExceeded) as caught:
        check_caps("/v1/responses", {"model": "quality", "max_output_tokens": 32_000}, own,
                   "acme", quality_64k)
    assert not isinstance(caught.value, OutputLimitExceeded)
    assert "tenant acme's cap max_tokens=20,000" in caught.value.message
    roomy = Limits(max_n=4, max_tokens=10**6, max_prompt_tokens=10**6, max_tokens_own=True)
    with pytest.raises(OutputLimitExceeded):
        check_caps("/v1/chat/completions", {"model": "quality", "max_tokens": 64_001}, roomy,
                   "acme", quality_64k)


def test_ollama_models_are_never_looked_up_in_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: Any) -> Any:
        raise AssertionError("looked up")
    monkeypatch.setattr(estimate.litellm, "get_model_info", refuse)
    assert estimate.map_output_limit("ollama_chat/qwen3:8b") is None
    assert estimate.map_output_limit("ollama/nomic-embed-text") is None


def test_check_config_lists_the_shipped_configs_limits(repo_root: Path) -> None:
    assert output_limits(repo_root / "config" / "config.yaml") == {
        "fast": 32_768, "local": 32_768, "quality": 64_000, "balanced": 32_768,
        "economy": 128_000}
    assert set(output_limits(repo_root / "config" / "offline.yaml").values()) == {None}
