"""The gateway reads aliases, prices and upstream URLs from the YAML it started LiteLLM with
(:mod:`proxy.plugin.deployments`), not from LiteLLM's router."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from proxy.admission.estimate import deployment_price
from proxy.plugin import deployments
from proxy.plugin.deployments import Deployments

CONFIGS = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POOL_PROVIDER_URL", "http://127.0.0.1:4010/v1")
    monkeypatch.setattr(deployments, "_loaded", Deployments())  # restored afterwards
    deployments.load(CONFIGS / "offline.yaml")
    yield


@pytest.mark.parametrize("name", ["offline.yaml", "config.yaml"])
def test_the_aliases_are_the_model_names_of_the_yaml(name: str) -> None:
    listed = yaml.safe_load((CONFIGS / name).read_text())["model_list"]
    read = Deployments.read(CONFIGS / name)
    assert read.aliases() == {d["model_name"] for d in listed}
    assert "fast" in read.aliases() and len(read.group("quality")) == 2


def test_upstream_urls_resolve_environment_references(offline: None) -> None:
    assert deployments.api_bases() == {"http://127.0.0.1:4010/v1"}
    entries = Deployments(({"litellm_params": {"api_base": "os.environ/UNSET_HERE"}},
                           {"litellm_params": {"api_base": "https://up.example/v1"}}))
    assert entries.api_bases({}) == {"https://up.example/v1"}


def test_every_offline_deployment_has_a_price(offline: None) -> None:
    for alias in deployments.aliases():
        group = deployments.group_deployments(alias)
        assert group and all(deployment_price(d) is not None for d in group), alias


def test_nothing_is_known_before_the_start_up_loads_a_yaml() -> None:
    assert deployments.aliases() == frozenset()
    assert deployments.group_deployments("fast") == [] and deployments.api_bases() == set()
