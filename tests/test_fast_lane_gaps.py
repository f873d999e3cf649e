"""Unit tests for modules whose logic only service tests reached before the fast lane
(tests/test_lanes.py lists what no unit test imports): request tags and the worker's log
redaction."""

from __future__ import annotations

import logging

import pytest
from dramatiq import Message

from proxy.edge.tags import TAG_HEADER, check_tags
from proxy.edge.validation import BadRequest
from proxy.settings import TagLimits
from worker.errors import WorkerError
from worker.logs import EXPECTED_FAILURE, RedactMessages, describe, failure_line

LIMITS = TagLimits(max_tags=2, max_chars=5)


@pytest.mark.parametrize("body, headers", [
    ({"tags": ["a", "b"]}, []),
    ({"metadata": {"tags": ["a"]}, "litellm_metadata": {"tags": ["a", "b"]}}, ["b, a"]),
    ({"metadata": "not a mapping"}, []),
    ([1, 2, 3], []),  # not an object: the edge refuses that elsewhere
])
def test_tags_within_the_limits_pass(body: object, headers: list[str]) -> None:
    check_tags(body, headers, LIMITS)


@pytest.mark.parametrize("body, headers, field", [
    ({"tags": "a"}, [], "tags"),
    ({"tags": ["a", "b", "c"]}, [], "tags"),
    ({"metadata": {"tags": ["toolong"]}}, [], "metadata.tags"),
    ({"litellm_metadata": {"tags": [""]}}, [], "litellm_metadata.tags"),
    ({"tags": [7]}, [], "tags"),
    ({}, ["a,b,c"], TAG_HEADER),
    ({"tags": ["a", "b"], "metadata": {"tags": ["c"]}}, [], "tags"),  # 3 distinct in all
    ({"tags": ["a"]}, ["b", "c"], "tags"),  # every header counts towards the total
])
def test_tags_over_the_limits_are_a_400_naming_the_field(body: object, headers: list[str],
                                                         field: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_tags(body, headers, LIMITS)
    assert refused.value.code == "400" and refused.value.param == field


def _message(text: str) -> Message:  # type: ignore[type-arg]
    return Message(queue_name="default", actor_name="run_message",
                   args=({"message_id": "m-1", "conversation_id": "c-1", "text": text},),
                   kwargs={}, options={})


def test_describe_names_a_message_without_its_text() -> None:
    message = _message("my secret question")
    described = describe(message)
    assert described == f"run_message(message_id=m-1, conversation=c-1, " \
                        f"dramatiq_id={message.message_id})"
    assert describe("plain") == "plain"


def _record(msg: str, args: tuple[object, ...], exc: BaseException | None = None,
            name: str = "dramatiq.worker") -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)


def test_dramatiq_records_lose_the_message_text_and_our_own_tracebacks() -> None:
    redact = RedactMessages()
    record = _record("Failed to process message %s.", (_message("my secret question"),))
    assert redact.filter(record)
    assert "secret" not in record.getMessage() and "message_id=m-1" in record.getMessage()
    assert not redact.filter(_record(f"Actor failed {EXPECTED_FAILURE}.", ()))
    assert not redact.filter(_record("boom", (), WorkerError("ours")))
    assert redact.filter(_record("boom", (), RuntimeError("a bug keeps its traceback")))
    assert redact.filter(_record("boom", (), WorkerError("not dramatiq's"), name="worker"))


def test_failure_line_is_one_line() -> None:
    line = failure_line("run_message", None, "c-1", "d-1", ValueError("a\nb   c"), "dead-lettered")
    assert line == ("run_message message_id=- conversation=c-1 dramatiq_id=d-1: "
                    "ValueError: a b c; dead-lettered")


def test_the_startup_filter_drops_only_litellms_misleading_lines() -> None:
    from proxy.plugin.startup import StartupNoise

    quiet = StartupNoise()
    for said in ("custom_auth is configured but 'custom_auth_run_common_checks' is not set. "
                 "budgets will NOT be enforced",
                 "Running 2 workers but Redis is not configured. Failed Admin UI sign-in "
                 "attempts are counted per worker"):
        assert not quiet.filter(_record(said, ()))
    for kept in ("custom_auth failed", "Redis is not configured", "budgets will NOT be enforced"):
        assert quiet.filter(_record(kept, ()))
