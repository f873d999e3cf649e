"""Property tests: the inbound queue message schema accepts exactly what it documents
and fails with a ValidationError (never another exception) on anything else."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.models import ID_PATTERN, MAX_TEXT_CHARS, ConfirmMessage, InboundMessage

IDS = st.from_regex(ID_PATTERN, fullmatch=True)
# no control characters: Python's str.strip() and pydantic's disagree on \x1c-\x1f
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
               max_size=200).filter(lambda t: t.strip())
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
FIELDS = ("tenant", "conversation_id", "agent_id", "text", "message_id", "reply_channel")


@given(tenant=IDS, conversation=IDS, agent=IDS, text=TEXT, message_id=IDS,
       channel=st.none() | IDS)
def test_valid_messages_round_trip(tenant: str, conversation: str, agent: str, text: str,
                                   message_id: str, channel: str | None) -> None:
    message = InboundMessage(tenant=tenant, conversation_id=conversation, agent_id=agent,
                             text=text, message_id=message_id, reply_channel=channel)
    assert InboundMessage.model_validate(message.model_dump()) == message
    assert message.text == text.strip()


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSONISH, max_size=8))
def test_arbitrary_payloads_validate_or_raise_validation_error(payload: dict[str, Any]) -> None:
    try:
        message = InboundMessage.model_validate(payload)
    except ValidationError:
        return
    for name in ("tenant", "conversation_id", "agent_id", "message_id"):
        assert re.fullmatch(ID_PATTERN, getattr(message, name))
    assert 1 <= len(message.text) <= MAX_TEXT_CHARS
    assert set(payload) <= set(FIELDS)  # unknown fields are refused


@given(field=st.sampled_from(["tenant", "conversation_id", "agent_id", "message_id"]),
       bad=st.sampled_from(["", " ", "a b", "x" * 200, "../etc", "k\nx", "ключ", "a*b"]))
def test_ids_that_could_break_redis_keys_are_refused(field: str, bad: str) -> None:
    good = {"tenant": "t", "conversation_id": "c", "agent_id": "a", "text": "hi",
            "message_id": "m"}
    try:
        InboundMessage.model_validate({**good, field: bad})
    except ValidationError as exc:
        assert field in str(exc)
    else:
        raise AssertionError(f"{field}={bad!r} was accepted")


def test_huge_text_and_wrong_types_are_refused() -> None:
    base = {"tenant": "t", "conversation_id": "c", "agent_id": "a", "message_id": "m"}
    for text in ("x" * (MAX_TEXT_CHARS + 1), "   ", 42, None, ["hi"]):
        try:
            InboundMessage.model_validate({**base, "text": text})
        except ValidationError:
            continue
        raise AssertionError(f"text={text!r:.40} was accepted")
    for approved in ("maybe", None, [True]):
        try:
            ConfirmMessage.model_validate({"conversation_id": "c", "approved": approved})
        except ValidationError:
            continue
        raise AssertionError(f"approved={approved!r} was accepted")
