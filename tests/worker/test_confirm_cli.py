"""`pool confirm` turns its options into one answer: per call, or yes/no for all."""

from __future__ import annotations

from typing import Any

import pytest

from llm_pool.cli import build_parser, main
from llm_pool.commands.conversations import _decisions


def _steps(*argv: str) -> list[tuple[str, Any]]:
    args = build_parser().parse_args(["confirm", "c1", *argv])
    return list(getattr(args, "steps", None) or [])


def test_per_call_decisions_keep_their_arguments_and_notes() -> None:
    decisions, note, for_all = _decisions(_steps(
        "--approve", "call_a", "--args", '{"to": "x@example.com"}',
        "--decline", "call_b", "--note", "not this one", "--approve", "call_c", "--for-run"))
    assert decisions == {"call_a": {"approve": True, "arguments": {"to": "x@example.com"}},
                         "call_b": {"approve": False, "note": "not this one"},
                         "call_c": {"approve": True, "for_run": True}}
    assert note is None and not for_all
    assert _decisions(_steps("--note", "all good")) == ({}, "all good", False)
    assert _decisions(_steps("--yes", "--for-run")) == ({}, None, True)


@pytest.mark.parametrize("argv, error", [
    (["--args", "{}"], "must follow an --approve"),
    (["--approve", "a", "--args", "[1]"], "JSON object"),
    (["--approve", "a", "--args", "{nope"], "invalid answer"),
    (["--yes", "--approve", "a"], "either approved"),
    ([], "say --yes or --no"),
    (["--decline", "a", "--for-run"], "--for-run must follow an --approve"),
    (["--no", "--for-run"], "for_run goes with approved: true"),
])
def test_bad_answers_are_refused_before_sending(argv: list[str], error: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["confirm", "c1", *argv]) == 2
    assert error in capsys.readouterr().err
