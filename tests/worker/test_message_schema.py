"""Property tests: the queue messages (``handle_message``, ``confirm``, ``expire``) accept
every payload their schema documents, refuse any unknown field (nested ones too), and
fail with a ValidationError (never another exception) on anything else.

The generators build *valid* payloads first (every test below uses them), then break
them in one known way, so each assertion runs on the examples it is about."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from worker.models import (
    ID_PATTERN,
    MAX_TEXT_CHARS,
    ConfirmMessage,
    ExpireMessage,
    InboundMessage,
)

IDS = st.from_regex(ID_PATTERN, fullmatch=True)
# no control characters: Python's str.strip() and pydantic's disagree on \x1c-\x1f
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
               max_size=200).filter(lambda t: t.strip())
NOTE = st.none() | st.text(max_size=50)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
ARGUMENTS = st.dictionaries(st.text(max_size=5), JSONISH, max_size=3)

INBOUND = st.fixed_dictionaries(
    {"tenant": IDS, "conversation_id": IDS, "agent_id": IDS, "text": TEXT, "message_id": IDS},
    optional={"reply_channel": st.none() | IDS})
DECISION = (st.fixed_dictionaries({"approve": st.just(True)},
                                  optional={"arguments": st.none() | ARGUMENTS, "note": NOTE})
            | st.fixed_dictionaries({"approve": st.just(False)}, optional={"note": NOTE}))
ANSWER = (st.fixed_dictionaries({"approved": st.booleans()})
          | st.fixed_dictionaries({"decisions": st.dictionaries(IDS, DECISION, min_size=1,
                                                                max_size=4)}))
CONFIRM = st.builds(
    lambda base, answer: {**base, **answer},
    st.fixed_dictionaries({"conversation_id": IDS},
                          optional={"note": NOTE, "decided_by": st.none() | st.text(max_size=20),
                                    "decision_id": st.none() | IDS}),
    ANSWER)
EXPIRE = st.fixed_dictionaries({"conversation_id": IDS, "message_id": IDS})
MODELS: list[tuple[type[BaseModel], Any]] = [
    (InboundMessage, INBOUND), (ConfirmMessage, CONFIRM), (ExpireMessage, EXPIRE)]
VALID = st.sampled_from(MODELS).flatmap(
    lambda pair: st.tuples(st.just(pair[0]), pair[1]))


def _unknown(model: type[BaseModel]) -> Any:
    return st.text(min_size=1, max_size=8).filter(lambda k: k not in model.model_fields)


@settings(max_examples=300)
@given(VALID)
def test_valid_payloads_are_accepted(case: tuple[type[BaseModel], dict[str, Any]]) -> None:
    model, payload = case
    message = model.model_validate(payload)
    assert model.model_validate(message.model_dump()) == message
    if isinstance(message, InboundMessage):
        assert message.text == payload["text"].strip()
    if isinstance(message, ConfirmMessage) and message.decisions is not None:
        assert set(message.decisions) == set(payload["decisions"])


@settings(max_examples=300)
@given(VALID, st.data())
def test_an_unknown_field_is_refused(case: tuple[type[BaseModel], dict[str, Any]],
                                     data: st.DataObject) -> None:
    model, payload = case
    key = data.draw(_unknown(model))
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**payload, key: data.draw(JSONISH)})
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("extra_forbidden", (key,))]


@given(CONFIRM.filter(lambda p: "decisions" in p), st.text(min_size=1, max_size=8), st.data())
def test_an_unknown_field_in_a_decision_is_refused(payload: dict[str, Any], key: str,
                                                   data: st.DataObject) -> None:
    if key in ("approve", "arguments", "note"):
        key = f"x{key}"
    call_id = data.draw(st.sampled_from(sorted(payload["decisions"])))
    decisions = {**payload["decisions"], call_id: {**payload["decisions"][call_id], key: 1}}
    with pytest.raises(ValidationError) as caught:
        ConfirmMessage.model_validate({**payload, "decisions": decisions})
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("extra_forbidden", ("decisions", call_id, key))]


@settings(max_examples=300)
@given(INBOUND, st.sampled_from(["tenant", "conversation_id", "agent_id", "text",
                                 "message_id", "reply_channel"]), JSONISH, st.booleans())
def test_a_broken_field_validates_or_raises_validation_error(
        payload: dict[str, Any], field: str, value: Any, drop: bool) -> None:
    broken = {k: v for k, v in payload.items() if k != field}
    if not drop:
        broken[field] = value
    try:
        message = InboundMessage.model_validate(broken)
    except ValidationError:
        return
    assert not (drop and field != "reply_channel")  # a required field was missing
    for name in ("tenant", "conversation_id", "agent_id", "message_id"):
        assert re.fullmatch(ID_PATTERN, getattr(message, name))
    assert 1 <= len(message.text) <= MAX_TEXT_CHARS


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
