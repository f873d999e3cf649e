"""Errors raised by the SDK. One root, :class:`SDKError`::

    SDKError
    ├── GatewayError                  the proxy answered with an error (``status``)
    │   ├── AuthError                 401/403: unknown, revoked or unauthorised key
    │   ├── UnknownAliasError         400 "Invalid model name" / 404 (``alias``)
    │   ├── BudgetExceededError       429 ``budget_exceeded``: never retried
    │   ├── RateLimitedError          429 otherwise (``retry_after``): retried
    │   ├── ProviderUnavailableError  5xx, timeout, connection failure: retried
    │   └── InvalidRequestError       any other 4xx
    ├── BadModelOutputError           the model's reply is unusable (``raw_text``)
    │   └── StructuredOutputError     no valid structured reply after the corrections
    ├── ToolDefinitionError           ``@tool`` cannot describe a function (``tool_name``)
    └── ConfirmationError             a pending confirmation cannot be resumed
        ├── ConfirmationExpiredError  ... because it has expired
        └── InvalidDecisionError      ... edited arguments fail the tool's schema (``call_id``)

A tool that fails *while the agent runs* never raises: its error goes back to the
model as the tool's result (see :mod:`sdk.tools`).
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadModelOutputError",
    "BudgetExceededError",
    "ConfirmationError",
    "ConfirmationExpiredError",
    "GatewayError",
    "InvalidDecisionError",
    "InvalidRequestError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "SDKError",
    "StructuredOutputError",
    "ToolDefinitionError",
    "UnknownAliasError",
]


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


class ConfirmationError(SDKError):
    """A :class:`~sdk.agent.PendingConfirmation` cannot be resumed by this agent."""


class ConfirmationExpiredError(ConfirmationError):
    """The pending confirmation is past its ``expires_at``."""


class InvalidDecisionError(ConfirmationError):
    """Arguments a human edited for a pending call fail the tool's schema; nothing ran."""

    def __init__(self, message: str, *, call_id: str) -> None:
        super().__init__(message)
        self.call_id = call_id
