"""The `pool` command line: help, and clear errors for bad invocations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_pool.cli import main

POOL = [sys.executable, "-m", "llm_pool.cli"]


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("proxy", "provider", "demo"):
        assert command in out


def test_console_script_runs_from_any_directory(tmp_path: Path) -> None:
    pool = Path(sys.executable).with_name("pool")
    done = subprocess.run([str(pool), "proxy", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    assert "--config" in done.stdout and "--workers" in done.stdout


def test_proxy_with_missing_config_fails_clearly(tmp_path: Path) -> None:
    done = subprocess.run([*POOL, "proxy", "--config", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "config file not found" in done.stderr


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_proxy_refuses_a_broken_config_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: a\n    litellm_params: {model: x}\n"
                   "router_settings:\n  fallbacks: [{a: [ghost]}]\n")
    done = subprocess.run([*POOL, "proxy", "--config", str(bad)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "alias 'ghost' is not a model_name" in done.stderr
