"""`pool check-config` names the line and alias of what is wrong with a proxy YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llm_pool.configcheck import check_config, check_text

GOOD = """\
model_list:
  - model_name: fast
    litellm_params: {model: openai/x, api_key: os.environ/FAST_KEY}
  - model_name: quality
    litellm_params: {model: openai/y}
router_settings:
  fallbacks:
    - quality: [fast]
general_settings:
  master_key: os.environ/MASTER
"""
ENV = {"FAST_KEY": "k", "MASTER": "m"}


def _errors(text: str, env: dict[str, str] = ENV, strict: bool = False) -> list[str]:
    return [f"{p.line}: {p.message}" for p in check_text(text, env, strict=strict)
            if p.severity == "error"]


def test_good_config_has_no_problem() -> None:
    assert check_text(GOOD, ENV) == []


def test_shipped_configs_are_valid(repo_root: Path) -> None:
    env = {"LITELLM_MASTER_KEY": "m", "POOL_PROVIDER_URL": "http://127.0.0.1:1/v1",
           "OLLAMA_API_BASE": "http://127.0.0.1:1", "ANTHROPIC_API_KEY": "a",
           "OPENAI_API_KEY": "o"}
    for name in ("config.yaml", "offline.yaml"):
        assert check_config(repo_root / "config" / name, env, strict=True) == [], name


def test_bad_yaml_names_the_line() -> None:
    assert _errors("model_list:\n  - model_name: a\n   bad: [\n") == [
        "3: invalid YAML: expected <block end>, but found '<block mapping start>'"]


def test_fallback_to_a_missing_group_names_alias_and_line() -> None:
    text = GOOD.replace("quality: [fast]", "quality: [fastest]")
    assert _errors(text) == [
        "8: router_settings.fallbacks: alias 'fastest' is not a model_name in model_list"]


def test_missing_env_var_is_a_warning_or_strict_error() -> None:
    env = {"MASTER": "m"}
    problems = check_text(GOOD, env)
    assert [(p.line, p.severity, p.message) for p in problems] == [
        (3, "warning", "alias 'fast': environment variable FAST_KEY is not set")]
    assert _errors(GOOD, env, strict=True) == [
        "3: alias 'fast': environment variable FAST_KEY is not set"]


def test_missing_master_key_is_always_an_error() -> None:
    assert _errors(GOOD, {"FAST_KEY": "k"}) == [
        "10: general_settings.master_key: environment variable MASTER is not set"]


def test_structural_errors() -> None:
    assert _errors("- just\n- a list\n") == [
        "1: the config must be a YAML mapping (model_list: ...)"]
    assert _errors("general_settings: {}\n") == ["0: model_list is missing or empty"]
    text = "model_list:\n  - litellm_params: {model: x}\n  - model_name: b\n"
    assert _errors(text) == ["2: model_list[0] has no model_name",
                             "3: alias 'b': litellm_params.model missing"]


def test_unimportable_plugin_is_reported() -> None:
    text = GOOD + "  custom_auth: proxy.nothing_here.fn\n"
    errors = _errors(text)
    assert len(errors) == 1 and errors[0].startswith("11: proxy.nothing_here.fn: cannot import")


def test_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("[fast]", "[ghost]"))
    done = subprocess.run([sys.executable, "-m", "llm_pool.cli", "check-config", "--config",
                           str(bad)], capture_output=True, text=True, env={**ENV, "PATH": ""})
    assert done.returncode == 1
    assert f"{bad}:8: error: router_settings.fallbacks: alias 'ghost'" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "llm_pool.cli", "check-config", "--config",
                              str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot read config" in missing.stdout
