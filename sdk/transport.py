"""From openai-client failures to :mod:`sdk.errors`, and the retry policy.

The openai client's own retries are switched off (``max_retries=0``) so that
retries never stack: the SDK retries only :class:`RateLimitedError` (sleeping
``Retry-After`` when the proxy says) and :class:`ProviderUnavailableError`
(exponential backoff with jitter), a bounded number of times, with tenacity.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from sdk.errors import (
    AuthError,
    BudgetExceededError,
    GatewayError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownAliasError,
)

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_MAX_RETRY_AFTER",
    "RetryPolicy",
    "error_from_openai",
    "error_from_status",
    "parse_retry_after",
]

DEFAULT_ATTEMPTS = 3  # tries in all, the first included
DEFAULT_BACKOFF_INITIAL = 0.5  # seconds before the second try, doubled each time
DEFAULT_BACKOFF_MAX = 8.0
DEFAULT_MAX_RETRY_AFTER = 30.0  # a longer Retry-After is raised to the caller, not slept
BUDGET_ERROR_TYPE = "budget_exceeded"
UNKNOWN_MODEL_MARKER = "invalid model name"
RETRY_AFTER_HEADERS = ("retry-after-ms", "retry-after", "llm_provider-retry-after")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient gateway errors are retried (``attempts=1`` disables retries)."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, RateLimitedError):
            return exc.retry_after is None or exc.retry_after <= self.max_retry_after
        return isinstance(exc, ProviderUnavailableError)

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            return float(exc.retry_after)
        backoff = min(self.backoff_max, self.backoff_initial * 2.0 ** (state.attempt_number - 1))
        return backoff * random.uniform(0.5, 1.0)

    def _options(self) -> dict[str, Any]:
        return {"stop": stop_after_attempt(self.attempts), "wait": self.wait,
                "retry": retry_if_exception(self.should_retry), "reraise": True}

    def retrying(self) -> Retrying:
        return Retrying(**self._options())

    def async_retrying(self) -> AsyncRetrying:
        return AsyncRetrying(**self._options())


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``retry-after`` (seconds or an HTTP
    date) or the provider's header as relayed by LiteLLM (``llm_provider-retry-after``)."""
    for name in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        seconds = _seconds(value.strip())
        if seconds is not None:
            return seconds / 1000.0 if name == "retry-after-ms" else seconds
    return None


def _seconds(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from an error body, with or without the ``error`` wrapper."""
    if not isinstance(body, Mapping):
        return None, None, None
    inner = body.get("error", body)
    if not isinstance(inner, Mapping):
        return str(inner), None, None
    def text(key: str) -> str | None:
        value = inner.get(key)
        return None if value is None else str(value)
    return text("message"), text("type"), text("code")


def error_from_status(status: int, body: object, headers: Mapping[str, str], *,
                      alias: str | None = None, fallback_message: str = "") -> GatewayError:
    """The SDK error for an HTTP error the proxy returned."""
    message, kind, code = _error_fields(body)
    message = message or fallback_message or f"HTTP {status}"
    request_id = headers.get("x-litellm-call-id")
    common: dict[str, Any] = {"status": status, "request_id": request_id}
    if BUDGET_ERROR_TYPE in (kind, code):
        return BudgetExceededError(message, **common)
    if status in (401, 403):
        return AuthError(message, **common)
    if status == 404 or (status == 400 and UNKNOWN_MODEL_MARKER in message.lower()):
        return UnknownAliasError(message, alias=alias or "", **common)
    if status == 429:
        return RateLimitedError(message, retry_after=parse_retry_after(headers), **common)
    if status >= 500 or status == 408:
        return ProviderUnavailableError(message, **common)
    return InvalidRequestError(message, **common)


def error_from_openai(exc: openai.OpenAIError, *, alias: str | None = None) -> GatewayError:
    """The SDK error for any failure of the openai client."""
    if isinstance(exc, openai.APIStatusError):
        return error_from_status(exc.status_code, exc.body, exc.response.headers, alias=alias,
                                 fallback_message=exc.message)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailableError(f"cannot reach the gateway: {exc}")
    return GatewayError(str(exc))
