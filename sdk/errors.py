"""Errors raised by the SDK. One root, :class:`SDKError`::

    SDKError
    ├── GatewayError                  the proxy answered with an error (``status``)
    │   ├── GatewayUnreachableError   no connection to the proxy at all (a wrong
    │   │                             POOL_PROXY_URL, a stopped proxy): configuration,
    │   │                             not an outage; not retried by the SDK
    │   ├── AuthError                 401/403: unknown, revoked or unauthorised key
    │   ├── UnknownAliasError         400 "Invalid model name" / 404 (``alias``)
    │   ├── BudgetExceededError       429 ``budget_exceeded``: never retried
    │   ├── RateLimitedError          429 otherwise (``retry_after``): retried
    │   ├── ProviderUnavailableError  5xx from the proxy (its retries and fallbacks are
    │   │                             spent: not retried again), or a timeout (retried)
    │   └── InvalidRequestError       any other 4xx

``AuthError``, ``UnknownAliasError`` and ``GatewayUnreachableError`` are
configuration errors (:data:`CONFIGURATION_ERRORS`): retrying cannot fix them and
they must not be mistaken for a provider outage.
    ├── BadModelOutputError           the model's reply is unusable (``raw_text``)
    │   └── StructuredOutputError     no valid structured reply after the corrections
    ├── ToolDefinitionError           ``@tool`` cannot describe a function (``tool_name``)
    ├── ToolError                     raised *by a tool* to tell the model why it failed
    │                                 (its message reaches the model whole)
    └── ConfirmationError             a pending confirmation cannot be resumed
        ├── ConfirmationExpiredError  ... because it has expired
        └── InvalidDecisionError      ... edited arguments fail the tool's schema (``call_id``)

A tool that fails *while the agent runs* never raises: its error goes back to the
model as the tool's result (see :mod:`sdk.tool_calls`).

:func:`error_from_openai` / :func:`error_from_status` map what the openai client
raises (the proxy's HTTP status and error body) onto this tree.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import openai

__all__ = [
    "CONFIGURATION_ERRORS",
    "AuthError",
    "BadModelOutputError",
    "BudgetExceededError",
    "ConfirmationError",
    "ConfirmationExpiredError",
    "GatewayError",
    "GatewayUnreachableError",
    "InvalidDecisionError",
    "InvalidRequestError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "SDKError",
    "StructuredOutputError",
    "ToolDefinitionError",
    "ToolError",
    "UnknownAliasError",
    "error_from_openai",
    "error_from_status",
    "parse_retry_after",
]

BUDGET_ERROR_TYPE = "budget_exceeded"
UNKNOWN_MODEL_MARKER = "invalid model name"
RETRY_AFTER_HEADERS = ("retry-after-ms", "retry-after", "llm_provider-retry-after")


class SDKError(Exception):
    """Root of every error the SDK raises."""


class GatewayError(SDKError):
    """The proxy refused or failed a request. ``status`` is ``None`` for transport failures."""

    def __init__(self, message: str, *, status: int | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id


class GatewayUnreachableError(GatewayError):
    """No connection to the proxy (refused, DNS, TLS): the proxy URL is wrong or the
    proxy is not running. ``url`` is the base URL tried."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class AuthError(GatewayError):
    """The API key is unknown, revoked or not allowed to do this."""


class UnknownAliasError(GatewayError):
    """The proxy has no model alias of that name."""

    def __init__(self, message: str, *, alias: str, status: int | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.alias = alias


class BudgetExceededError(GatewayError):
    """The tenant is over budget. Retrying cannot help, so the SDK never retries it."""


class RateLimitedError(GatewayError):
    """Too many requests. ``retry_after`` is in seconds, when the proxy said."""

    def __init__(self, message: str, *, status: int | None = 429,
                 retry_after: float | None = None, request_id: str | None = None) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.retry_after = retry_after


class ProviderUnavailableError(GatewayError):
    """No deployment could answer (all fallbacks exhausted), or the proxy is unreachable."""


class InvalidRequestError(GatewayError):
    """The proxy rejected the request as malformed (a 4xx not covered above)."""


CONFIGURATION_ERRORS: tuple[type[GatewayError], ...] = (
    GatewayUnreachableError, AuthError, UnknownAliasError)
"""Errors that mean the caller is configured wrong (not an outage)."""


class BadModelOutputError(SDKError):
    """The model answered with something unusable; ``raw_text`` is what it said."""

    def __init__(self, message: str, *, raw_text: str) -> None:
        super().__init__(message)
        self.raw_text = raw_text


class StructuredOutputError(BadModelOutputError):
    """No reply validated against the output model, even after correction attempts."""

    def __init__(self, message: str, *, raw_text: str, attempts: int, errors: str) -> None:
        super().__init__(message, raw_text=raw_text)
        self.attempts = attempts
        self.errors = errors


class ToolDefinitionError(SDKError):
    """A function cannot be turned into a tool (e.g. ``*args``, a missing annotation)."""

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name


class ToolError(SDKError):
    """Raise it in a tool to tell the model why the call failed: its message reaches the
    model whole (any other exception's text is cut short, see :mod:`sdk.tool_calls`)."""


class ConfirmationError(SDKError):
    """A :class:`~sdk.agent.PendingConfirmation` cannot be resumed by this agent."""


class ConfirmationExpiredError(ConfirmationError):
    """The pending confirmation is past its ``expires_at``."""


class InvalidDecisionError(ConfirmationError):
    """Arguments a human edited for a pending call fail the tool's schema; nothing ran."""

    def __init__(self, message: str, *, call_id: str) -> None:
        super().__init__(message)
        self.call_id = call_id


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
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailableError(f"the gateway did not answer in time: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        url = str(exc.request.url) if getattr(exc, "request", None) is not None else None
        where = f" at {url}" if url else ""
        cause = exc.__cause__ or exc
        return GatewayUnreachableError(
            f"cannot reach the gateway{where} ({type(cause).__name__}: {cause}); check "
            "POOL_PROXY_URL and that the proxy runs", url=url)
    return GatewayError(str(exc))
