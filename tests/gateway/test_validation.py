"""Unit tests of the request-body checks (proxy.validation); the same cases go through
the real proxy in tests/faults/test_hostile_input.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.validation import BadRequest, TooLarge, _guarded, check_body

CHAT = "/v1/chat/completions"
LIMIT = 1000
OK: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def test_valid_bodies_pass() -> None:
    check_body(CHAT, OK, 100, LIMIT)
    check_body(CHAT, {**OK, "stream": True, "stream_options": {"include_usage": True},
                      "temperature": 0, "max_tokens": 5, "tools": [{"type": "function"}],
                      "metadata": {"tags": ["a"]}, "response_format": {"type": "json_object"}},
               100, LIMIT)
    check_body("/v1/embeddings", {"model": "embedder", "input": ["a", "b"],
                                  "encoding_format": "base64"}, 10, LIMIT)
    check_body("/v1/models", ["anything"], 10**9, LIMIT)  # other routes are not checked


@pytest.mark.parametrize(("body", "named"), [
    ({**OK, "max_tokens": "x"}, "max_tokens"),
    ({**OK, "messages": "hi"}, "messages"),
    ({**OK, "api_key": "sk-x"}, "api_key: unknown field"),
    ({**OK, "messages": [{"content": "hi"}]}, "messages.0.role"),
    ({"messages": OK["messages"]}, "model"),
    ([OK], "JSON object"),
])
def test_bad_bodies_are_400_naming_the_field(body: Any, named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_body(CHAT, body, 100, LIMIT)
    assert caught.value.code == "400" and named in caught.value.message


def test_too_large_is_413() -> None:
    with pytest.raises(TooLarge) as caught:
        check_body(CHAT, None, LIMIT + 1, LIMIT)
    assert caught.value.code == "413" and "POOL_MAX_REQUEST_MB" in caught.value.message


def test_guard_turns_non_object_bodies_into_a_parse_failure() -> None:
    async def reader(body: Any) -> tuple[Any, Exception | None]:
        return body, None

    guarded = _guarded(reader)
    assert asyncio.run(guarded(OK)) == (OK, None)
    body, failure = asyncio.run(guarded([1, 2]))
    assert body == {} and isinstance(failure, BadRequest)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["model", "messages", "max_tokens", "stream", "x"]),
                       json_values))
def test_any_json_body_is_accepted_or_a_clean_400(body: dict[str, Any]) -> None:
    try:
        check_body(CHAT, body, 10, LIMIT)
    except BadRequest as exc:
        assert exc.message.startswith("invalid request: ")
    else:
        assert isinstance(body["model"], str) and isinstance(body["messages"], list)
        assert "x" not in body
