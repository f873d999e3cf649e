"""Worker settings from the environment: every error names its variable, empty values are
refused where a default exists, and the worker's key is POOL_API_KEY and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.errors import WorkerSettingsError
from worker.settings import DEFAULT_CONFIRM_TTL, DEFAULT_REDIS_URL, WorkerSettings

VARIABLES = [str(f.validation_alias) for f in WorkerSettings.model_fields.values()]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*VARIABLES, "LITELLM_MASTER_KEY"]:
        monkeypatch.delenv(name, raising=False)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> WorkerSettingsError:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(WorkerSettingsError) as caught:
        WorkerSettings.from_env()
    return caught.value


def test_defaults_and_values() -> None:
    settings = WorkerSettings.from_env()
    assert (settings.confirm_ttl, settings.redis_url) == (DEFAULT_CONFIRM_TTL, DEFAULT_REDIS_URL)
    assert settings.api_key is None and settings.tenant_keys_file is None
    assert settings.agents_file.name == "agents.yaml"


def test_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_CONFIRM_TTL", "5")
    monkeypatch.setenv("POOL_API_KEY", "sk-worker")
    monkeypatch.setenv("POOL_TENANT_KEYS_FILE", "/etc/keys.yaml")
    settings = WorkerSettings.from_env()
    assert (settings.confirm_ttl, settings.api_key) == (5, "sk-worker")
    assert str(settings.tenant_keys_file) == "/etc/keys.yaml"
    assert "sk-worker" not in repr(settings)


def test_a_number_that_is_not_one_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    error = _error(monkeypatch, POOL_CONFIRM_TTL="abc")
    assert error.variable == "POOL_CONFIRM_TTL"
    assert str(error) == "POOL_CONFIRM_TTL: expected an integer, got 'abc'"
    assert str(_error(monkeypatch, POOL_CONFIRM_TTL="1.5")).startswith(
        "POOL_CONFIRM_TTL: expected an integer")


def test_out_of_range_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(_error(monkeypatch, POOL_WORKER_HEARTBEAT_MS="0")) == (
        "POOL_WORKER_HEARTBEAT_MS: must be >= 1, got '0'")


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    error = _error(monkeypatch, POOL_CONFIRM_TTL="abc", POOL_WORKER_MAX_RETRIES="-1")
    assert "POOL_CONFIRM_TTL" in str(error) and "POOL_WORKER_MAX_RETRIES" in str(error)


@pytest.mark.parametrize("name", [v for v in VARIABLES
                                  if v not in ("POOL_API_KEY", "POOL_TENANT_KEYS_FILE")])
def test_empty_is_refused_where_a_value_is_required(monkeypatch: pytest.MonkeyPatch,
                                                    name: str) -> None:
    error = _error(monkeypatch, **{name: " "})
    assert error.variable == name
    assert str(error) == f"{name}: is set but empty; unset it for the default"


def test_empty_optional_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_API_KEY", "")  # as compose and .env.example pass them
    monkeypatch.setenv("POOL_TENANT_KEYS_FILE", "")
    settings = WorkerSettings.from_env()
    assert settings.api_key is None and settings.tenant_keys_file is None


def test_no_fallback_to_the_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master")
    settings = WorkerSettings.from_env()
    assert settings.api_key is None
    with pytest.raises(WorkerSettingsError, match=r"^POOL_API_KEY: not set") as caught:
        settings.require_proxy_key()
    assert "no fallback to LITELLM_MASTER_KEY" in str(caught.value)
    monkeypatch.setenv("POOL_TENANT_KEYS_FILE", "/etc/keys.yaml")  # every tenant's own key
    assert WorkerSettings.from_env().require_proxy_key().api_key is None


@pytest.mark.parametrize(("env", "variable"), [({"POOL_CONFIRM_TTL": "abc"}, "POOL_CONFIRM_TTL"),
                                               ({}, "POOL_API_KEY")])
def test_pool_worker_says_it_in_one_line(env: dict[str, str], variable: str) -> None:
    clean = {k: v for k, v in os.environ.items()
             if k not in VARIABLES and k != "LITELLM_MASTER_KEY"}
    done = subprocess.run([sys.executable, "-m", "llm_pool.cli", "worker"],
                          env={**clean, "LITELLM_MASTER_KEY": "sk-master", **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"pool worker: {variable}: ")
    assert done.stderr.count("\n") == 1 and done.stdout == ""
