"""Unit tests of proxy.edge.errors_shape: provider failures as errors a client can act on."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from proxy.edge.anthropic_errors import reshape
from proxy.edge.errors_shape import (
    DEFAULT_RETRY_AFTER,
    clean_message,
    retry_after,
    seconds_to_next_month,
    shape_failure,
)

CHAT = {"model": "quality", "proxy_server_request": {"url": "http://gw/v1/chat/completions"}}
MESSAGES = {"model": "quality", "proxy_server_request": {"url": "http://gw/v1/messages"}}


class ProviderError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code, self.message, self.llm_provider = status, message, "anthropic"
        self.headers = headers or {}


class BudgetRefusal(Exception):
    status_code, type = 429, "budget_exceeded"

    def __init__(self) -> None:
        super().__init__("over budget")
        self.message = "tenant t has reached its monthly budget"
        self.headers: dict[str, str] = {}


def test_clean_message_cuts_prefixes_and_the_fallback_chain() -> None:
    raw = ("litellm.BadRequestError: AnthropicException - prompt is too long\n\nLiteLLM: "
           "model group 'quality' failed ... Fallback to fast also failed: OllamaException")
    assert clean_message(raw) == "prompt is too long"


def test_overload_is_503_with_the_providers_retry_after_naming_the_alias() -> None:
    shaped = shape_failure(CHAT, ProviderError(500, "AnthropicException - Overloaded",
                                               {"retry-after": "7"}))
    assert shaped is not None and shaped.status_code == 503
    assert shaped.headers == {"retry-after": "7"}
    assert "'quality'" in shaped.detail and "Anthropic" not in shaped.detail


def test_on_messages_the_exception_becomes_a_529_overloaded_body() -> None:
    error = ProviderError(500, "AnthropicException - Overloaded")
    assert shape_failure(MESSAGES, error) is None
    assert error.status_code == 529
    status, body, retry = reshape(529, error.message.encode()) or (0, b"", None)
    assert (status, retry) == (529, str(DEFAULT_RETRY_AFTER))
    assert json.loads(body)["error"]["type"] == "overloaded_error"
    assert "retry_after" not in json.loads(body)["error"]


def test_budget_refusal_gets_retry_after_until_next_month_and_keeps_its_type() -> None:
    refusal = BudgetRefusal()
    assert shape_failure(MESSAGES, refusal) is None
    assert int(refusal.headers["retry-after"]) >= 1
    assert json.loads(refusal.message)["error"]["type"] == "budget_exceeded"
    chat = BudgetRefusal()
    assert shape_failure(CHAT, chat) is None and chat.message.startswith("tenant t")


def test_retry_after_and_next_month() -> None:
    assert retry_after(ProviderError(429, "x", {"retry-after": "2.5"})) == 3
    assert retry_after(ProviderError(429, "x")) == DEFAULT_RETRY_AFTER
    assert seconds_to_next_month(datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)) == 30


def test_gateway_errors_without_a_provider_are_left_alone() -> None:
    assert shape_failure(CHAT, ValueError("boom")) is None
