"""Structured output: fences stripped, validation, correction retries, typed failure."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, Field

from sdk import StructuredOutputError
from sdk.structured import extract_json
from tests.sdk.fakes import FakeProxy, chat


class Invoice(BaseModel):
    number: str
    total: float = Field(gt=0)
    paid: bool = False


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1}', '{"a": 1}'),
    ('```json\n{"a": 1}\n```', '{"a": 1}'),
    ('```\n{"a": 1}\n```', '{"a": 1}'),
    ('Sure! Here it is:\n```json\n{"a": 1}\n```\nAnything else?', '{"a": 1}'),
    ('Here you go: {"a": {"b": 2}} hope that helps', '{"a": {"b": 2}}'),
    ("no json at all", "no json at all"),
])
def test_extract_json(text: str, expected: str) -> None:
    assert extract_json(text) == expected


def test_a_fenced_valid_reply_parses_first_time() -> None:
    proxy = FakeProxy(chat('```json\n{"number": "A-1", "total": 12.5}\n```'))
    invoice = proxy.gateway().complete_model("fast", "extract it", Invoice)
    assert invoice == Invoice(number="A-1", total=12.5)
    system = proxy.messages(0)[0]
    assert system["role"] == "system" and '"total"' in system["content"]
    assert len(proxy.requests) == 1


def test_an_invalid_reply_is_corrected_with_the_validation_error() -> None:
    proxy = FakeProxy(chat('{"number": "A-1", "total": -3}'),
                      chat('{"number": "A-1", "total": 3}'))
    invoice = proxy.gateway().complete_model("fast", "extract it", Invoice)
    assert invoice.total == 3
    second = proxy.messages(1)
    assert second[-2] == {"role": "assistant", "content": '{"number": "A-1", "total": -3}'}
    assert second[-1]["role"] == "user"
    assert "total" in second[-1]["content"] and "greater than 0" in second[-1]["content"]


def test_after_the_corrections_a_typed_error_carries_the_raw_text() -> None:
    proxy = FakeProxy(chat("I cannot do that"), chat("still no"), chat("nope, sorry"))
    with pytest.raises(StructuredOutputError) as caught:
        proxy.gateway().complete_model("fast", "extract it", Invoice, corrections=2)
    assert caught.value.raw_text == "nope, sorry"
    assert caught.value.attempts == 3
    assert "Invoice" in str(caught.value)
    assert len(proxy.requests) == 3


def test_zero_corrections_means_one_attempt() -> None:
    proxy = FakeProxy(chat("{}"))
    with pytest.raises(StructuredOutputError):
        proxy.gateway().complete_model("fast", "x", Invoice, corrections=0)
    assert len(proxy.requests) == 1


def test_async_complete_model_corrects_too() -> None:
    proxy = FakeProxy(chat('{"number": 5}'), chat('{"number": "5", "total": 1, "paid": true}'))
    invoice = asyncio.run(proxy.async_gateway().complete_model("fast", "x", Invoice))
    assert invoice == Invoice(number="5", total=1, paid=True)
    assert len(proxy.requests) == 2
