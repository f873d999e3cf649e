"""The `pool` command line: help, and clear errors for bad invocations."""

from __future__ import annotations

import argparse
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


# ----------------------------------------------------------------- extras

# every top-level command, the shortest valid arguments, and the extra it needs
COMMAND_EXTRAS = [
    (["ask", "fast", "hi"], None), (["models"], None), (["provider"], None),
    (["proxy"], "proxy"), (["check-config"], "proxy"), (["db", "migrate"], "proxy"),
    (["tenants", "list"], "proxy"), (["tenants", "show", "t"], "proxy"),
    (["keys", "list"], "proxy"), (["spend"], "proxy"),
    (["worker"], "worker"), (["send", "hi", "--tenant", "t", "--conversation", "c"], "worker"),
    (["confirm", "c", "--yes"], "worker"), (["events", "c"], "worker"),
    (["dashboard"], "all"), (["demo"], "all"),
]


def test_every_command_is_listed_with_its_extra() -> None:
    from llm_pool.cli import build_parser

    parser = build_parser()
    listed = {args[0] for args, _ in COMMAND_EXTRAS}
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == listed
    for args, extra in COMMAND_EXTRAS:
        assert getattr(parser.parse_args(args), "extra", None) == extra, args


@pytest.mark.parametrize(("args", "extra"), [c for c in COMMAND_EXTRAS if c[1]])
def test_a_missing_extra_is_one_line_naming_it(
        args: list[str], extra: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """As on the base install: each of the extra's packages missing in turn; the handler
    never runs (here it would start the proxy or a worker)."""
    import importlib.util

    from llm_pool import cli, extras

    real = importlib.util.find_spec
    parsed = cli.build_parser().parse_args(args)
    parsed.handler = lambda _: pytest.fail(f"pool {args[0]} ran without its extra")
    for gone in extras.EXTRAS[extra]:
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a, gone=gone: None if name == gone else real(name, *a))
        assert cli.run(parsed) == 2
        err = capsys.readouterr().err
        assert err == (f"pool {args[0]} needs the {extra} extra: pip install "
                       f"'llm-pool[{extra}]' (missing: {gone})\n")
