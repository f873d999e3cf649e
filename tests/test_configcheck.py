"""`pool check-config` names the line and alias of what is wrong with a proxy YAML."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from llm_pool.configcheck import check_config, check_text
from llm_pool.runtime import free_port

GOOD = """\
model_list:
  - model_name: fast
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/FAST_KEY}
  - model_name: quality
    litellm_params: {model: openai/gpt-4o}
router_settings:
  fallbacks:
    - quality: [fast]
general_settings:
  master_key: os.environ/MASTER
"""
ENV = {"FAST_KEY": "k", "MASTER": "m"}


def _errors(text: str, env: dict[str, str] = ENV, allow: bool = False) -> list[str]:
    return [f"{p.line}: {p.message}" for p in check_text(text, env, allow_missing_env=allow)
            if p.severity == "error"]


def test_good_config_has_no_problem() -> None:
    assert check_text(GOOD, ENV) == []


def test_shipped_configs_are_valid(repo_root: Path) -> None:
    env = {"LITELLM_MASTER_KEY": "m", "POOL_PROVIDER_URL": "http://127.0.0.1:1/v1",
           "OLLAMA_API_BASE": "http://127.0.0.1:1", "ANTHROPIC_API_KEY": "a",
           "OPENAI_API_KEY": "o", "POOL_REDIS_URL": "redis://127.0.0.1:1/0",
           "POOL_NAMESPACE": "llm-pool"}
    for name in ("config.yaml", "offline.yaml"):
        assert check_config(repo_root / "config" / name, env) == [], name


def test_bad_yaml_names_the_line() -> None:
    assert _errors("model_list:\n  - model_name: a\n   bad: [\n") == [
        "3: invalid YAML: expected <block end>, but found '<block mapping start>'"]


def test_fallback_to_a_missing_group_names_alias_and_line() -> None:
    text = GOOD.replace("quality: [fast]", "quality: [fastest]")
    assert _errors(text) == [
        "8: router_settings.fallbacks: alias 'fastest' is not a model_name in model_list"]


def test_missing_env_var_is_an_error_or_allowed_warning() -> None:
    env = {"MASTER": "m"}
    assert _errors(GOOD, env) == ["3: environment variable FAST_KEY is not set; used by "
                                  "alias 'fast'"]
    problems = check_text(GOOD, env, allow_missing_env=True)
    assert [(p.line, p.severity) for p in problems] == [(3, "warning")]


def test_empty_env_var_counts_as_unset() -> None:
    assert _errors(GOOD, {**ENV, "FAST_KEY": ""}) == [
        "3: environment variable FAST_KEY is not set; used by alias 'fast'"]


ANCHORED = """\
x-upstream: &upstream
  api_base: os.environ/PROVIDER_URL
model_list:
  - model_name: fast
    litellm_params: {<<: *upstream, model: openai/gpt-4o}
  - model_name: quality
    litellm_params: {<<: *upstream, model: openai/gpt-4o-mini}
  - model_name: embedder
    litellm_params: {<<: *upstream, model: openai/gpt-4o}
  - model_name: local
    litellm_params: {model: openai/gpt-4o, api_base: os.environ/PROVIDER_URL}
general_settings:
  master_key: os.environ/MASTER
"""


def test_unset_variable_names_every_alias_using_it_through_anchors() -> None:
    assert _errors(ANCHORED, {"MASTER": "m"}) == [
        "2: environment variable PROVIDER_URL is not set; used by alias 'fast', "
        "alias 'quality', alias 'embedder', alias 'local' (also line 11)"]


def test_unset_variable_of_a_setting_is_named() -> None:
    text = GOOD + "router_settings:\n  redis_url: os.environ/REDIS\n"
    assert _errors(text) == [
        "12: environment variable REDIS is not set; used by router_settings.redis_url"]


def test_misspelt_env_prefix_is_an_error_never_a_literal() -> None:
    text = GOOD.replace("os.environ/MASTER", "os.envrion/LITELLM_MASTER_KEY")
    assert _errors(text) == [
        "10: general_settings.master_key: 'os.envrion/LITELLM_MASTER_KEY' is not an "
        "environment reference (LiteLLM would use it as a literal string); write "
        "os.environ/NAME"]
    for typo in ("os.getenv/FAST_KEY", "OS.ENVIRON/FAST_KEY", "os.environ.FAST/KEY",
                 "os./FAST_KEY", '" os.environ/FAST_KEY"'):
        errors = _errors(GOOD.replace("os.environ/FAST_KEY", typo))
        assert len(errors) == 1 and errors[0].startswith("3: alias 'fast': "), (typo, errors)


def test_empty_variable_name_is_an_error() -> None:
    assert _errors(GOOD.replace("os.environ/FAST_KEY", "os.environ/")) == [
        "3: 'os.environ/': no variable name after os.environ/"]


def test_missing_master_key_is_always_an_error() -> None:
    expected = ["10: environment variable MASTER is not set; used by "
                "general_settings.master_key"]
    assert _errors(GOOD, {"FAST_KEY": "k"}) == expected
    assert _errors(GOOD, {"FAST_KEY": "k"}, allow=True) == expected


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


def _pool(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "llm_pool.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def test_proxy_refuses_to_start_on_unset_variables(tmp_path: Path) -> None:
    config = tmp_path / "anchored.yaml"
    config.write_text(ANCHORED)
    env = {"MASTER": "m", "PATH": os.environ.get("PATH", "")}
    done = _pool("proxy", "--config", str(config), "--port", "1", env=env)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 2, (out, err)
    assert f"{config}:2: error: environment variable PROVIDER_URL is not set; used by " \
           "alias 'fast', alias 'quality', alias 'embedder', alias 'local'" in err
    assert "refusing to start" in err
    check = _pool("check-config", "--config", str(config), env=env)
    out, _ = check.communicate(timeout=120)
    assert check.returncode == 1 and "PROVIDER_URL is not set" in out


def test_proxy_allow_missing_env_says_so_loudly(tmp_path: Path) -> None:
    config = tmp_path / "anchored.yaml"
    config.write_text(ANCHORED)
    env = {"MASTER": "m", "PATH": os.environ.get("PATH", ""), "POOL_DATABASE_URL":
           "postgresql://postgres@127.0.0.1:1/none"}
    proc = _pool("proxy", "--allow-missing-env", "--config", str(config), "--host", "127.0.0.1",
                 "--port", str(free_port()), env=env)
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(5)]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = "".join(lines)
    assert "warning: environment variable PROVIDER_URL is not set" in text, text
    assert "--allow-missing-env: starting although environment variables" in text, text
    assert "!" * 78 in text


def test_optional_redis_variables_are_only_a_warning() -> None:
    text = GOOD + "router_settings:\n  redis_url: os.environ/POOL_REDIS_URL\n"
    problems = check_text(text, ENV)
    assert [(p.severity, p.code) for p in problems] == [("warning", "")]
    assert "POOL_REDIS_URL is not set; used by router_settings.redis_url (optional" \
        in problems[0].message


UNPRICED = """\
model_list:
  - model_name: fast
    litellm_params: {model: openai/gpt-4o-mini}
  - model_name: house
    litellm_params: {model: openai/house-model-1}
    model_info: {id: house-1}
  - model_name: free
    litellm_params: {model: openai/house-model-2}
    model_info: {pool_free: true}
  - model_name: declared
    litellm_params: {model: openai/house-model-3, input_cost_per_token: 0.000001,
                     output_cost_per_token: 0.000002}
  - model_name: zero
    litellm_params: {model: openai/house-model-4, input_cost_per_token: 0,
                     output_cost_per_token: 0}
  - model_name: info
    litellm_params: {model: openai/house-model-5}
    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
  - model_name: half
    litellm_params: {model: openai/house-model-6, input_cost_per_token: 0.000001}
  - model_name: vectors
    litellm_params: {model: openai/house-embedder, input_cost_per_token: 0.0000001}
    model_info: {mode: embedding}
general_settings:
  master_key: os.environ/MASTER
"""


def test_a_deployment_without_a_price_is_an_error_naming_it() -> None:
    """Prices fail closed: the cost map, the YAML (litellm_params or model_info) or a
    deliberate 0 (pool_free, or explicit zero prices); an output price may be left out
    for an embedding deployment only."""
    errors = _errors(UNPRICED)
    assert [e.split(" has no price")[0] for e in errors] == [
        "4: alias 'house' deployment 'house-1'", "19: alias 'half'"]
    assert "openai/house-model-1" in errors[0] and "pool_free: true" in errors[0]


def test_pool_proxy_and_check_config_refuse_an_unpriced_deployment(tmp_path: Path) -> None:
    config = tmp_path / "unpriced.yaml"
    config.write_text(UNPRICED)
    env = {"MASTER": "m", "PATH": os.environ.get("PATH", ""),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = _pool("proxy", "--config", str(config), "--port", "1", env=env)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 2, (out, err)
    assert "alias 'house' deployment 'house-1' has no price" in err
    assert "refusing to start" in err
    check = _pool("check-config", "--config", str(config), env=env)
    out, _ = check.communicate(timeout=120)
    assert check.returncode == 1 and "alias 'half' has no price" in out
