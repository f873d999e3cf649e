"""Provider failures as errors a client can act on, in the alias's name.

LiteLLM answers a failed provider call with the provider's status and a text naming the
provider, its model and the fallback chain (``litellm.InternalServerError:
AnthropicException - ... LiteLLM: model group 'quality' failed ... Fallback to fast also
failed: ... Ollama_chatException``); an overloaded Anthropic (529) reaches the client as a
500, and a 429 may come without ``Retry-After``. :func:`shape_failure` (called from the
gateway's ``async_post_call_failure_hook``, which may replace the error LiteLLM sends)
turns a provider failure into:

- provider overloaded or failing (any 5xx, 529): **503** with ``Retry-After``, "model
  'quality' is temporarily unavailable" (the Anthropic routes send it as Anthropic's
  **529** ``overloaded_error``: :mod:`proxy.edge.anthropic_errors`);
- provider rate limit (429), or every deployment of the alias cooling down after such
  failures (no provider was called): **429** with ``Retry-After``;
- any other provider error (400, 404, 413, 422 ...): its status, the provider's own
  words with the provider's and LiteLLM's prefixes and the fallback chain cut off.

A stream that fails once its answer has begun (a provider's error event or a cut mid-answer,
no fallback possible any more) ends with a last ``data: {"error": ...}`` event that LiteLLM
builds from the exception, not from the hook's answer: the exception is rewritten in place,
so that event says the same (``"code": "503"``, ``"type": "service_unavailable_error"``, the
alias's name). The HTTP status was sent already (200).

The gateway's own refusals (``RequestRefused``: budget, limits, caps) are left as they
are, except that a 429 without ``Retry-After`` gets one: the budget refusal's is the
time until the budget's month starts again (UTC). ``Retry-After`` otherwise comes from
the provider's answer, then from LiteLLM's cooldown, then :data:`DEFAULT_RETRY_AFTER`.

On the Anthropic routes LiteLLM ignores the hook's answer and builds the error from the
exception itself (its ``message`` passes through when it already is an Anthropic error
body). There :func:`shape_failure` rewrites the exception in place: ``message`` becomes
the Anthropic body (``overloaded_error`` and status 529 for an overload, the gateway's
own type such as ``budget_exceeded`` kept) with the wait in ``error.retry_after``, which
:mod:`proxy.edge.anthropic_errors` turns into the ``Retry-After`` header.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException

from proxy.edge.routes import anthropic_shaped

__all__ = ["DEFAULT_RETRY_AFTER", "RETRY_AFTER_FIELD", "clean_message",
           "retry_after", "seconds_to_next_month", "shape_failure"]

DEFAULT_RETRY_AFTER = 10  # seconds, when neither the provider nor the router says
BUDGET_TYPE = "budget_exceeded"
RETRY_AFTER_FIELD = "retry_after"  # error.retry_after: the Anthropic routes' Retry-After

_CHAIN = re.compile(r"\s*(LiteLLM: model group|Received Model Group=|LiteLLM Retried:|"
                    r"Fallback to \S+ also failed|No fallback model group).*", re.DOTALL)
_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+(?:Exception|Error)\s*-\s*)?")


def clean_message(message: str) -> str:
    """A provider's error text without LiteLLM's and the provider's prefixes and without
    the fallback chain LiteLLM appends."""
    text = _CHAIN.sub("", message).strip()
    return _PREFIX.sub("", text, count=1).strip() or "the provider refused the request"


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    try:
        return int(str(getattr(exc, "code", "")))
    except ValueError:
        return None


def _header(exc: BaseException, name: str) -> str | None:
    for source in (getattr(exc, "headers", None), getattr(exc, "litellm_response_headers", None),
                   getattr(getattr(exc, "response", None), "headers", None)):
        try:
            value = source.get(name) if source is not None else None
        except (AttributeError, TypeError):
            continue
        if value:
            return str(value)
    return None


def retry_after(exc: BaseException) -> int:
    """Seconds: the provider's ``Retry-After``, else the router's cooldown, else the default."""
    raw = _header(exc, "retry-after")
    try:
        if raw is not None:
            return max(1, math.ceil(float(raw)))
    except ValueError:
        pass
    cooldown = getattr(exc, "cooldown_time", None)
    if isinstance(cooldown, int | float) and cooldown > 0:
        return max(1, math.ceil(cooldown))
    return DEFAULT_RETRY_AFTER


def seconds_to_next_month(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, math.ceil((first - now).total_seconds()))


def _from_provider(exc: BaseException) -> bool:
    """A provider call failed (LiteLLM's exceptions name the provider), or the router
    found every deployment of the alias cooling down."""
    return bool(getattr(exc, "llm_provider", None)) or type(exc).__name__ == "RouterRateLimitError"


def _own_refusal(exc: BaseException) -> int | None:
    """The gateway's own 429s: add the ``Retry-After`` a client can act on."""
    headers = getattr(exc, "headers", None)
    if _status(exc) != 429 or not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            return int(value) if str(value).isdigit() else None
    wait = seconds_to_next_month() if getattr(exc, "type", None) == BUDGET_TYPE \
        else DEFAULT_RETRY_AFTER
    headers["retry-after"] = str(wait)
    return wait


def _route(request_data: Mapping[str, Any]) -> str:
    server_request = request_data.get("proxy_server_request")
    url = server_request.get("url") if isinstance(server_request, Mapping) else None
    return urlsplit(str(url or "")).path


def _provider_failure(alias: str, exc: BaseException) -> tuple[int, str, int | None]:
    """(status, message, seconds to wait or None) for a failed provider call."""
    status = _status(exc) or 500
    if type(exc).__name__ == "RouterRateLimitError":  # every deployment cooling down
        wait = retry_after(exc)
        return 429, (f"model '{alias}' is in cooldown after provider failures; retry after "
                     f"{wait} s"), wait
    if status >= 500:
        wait = retry_after(exc)
        return 503, (f"model '{alias}' is temporarily unavailable: its providers are "
                     f"overloaded or failing; retry after {wait} s"), wait
    if status == 429:
        wait = retry_after(exc)
        return 429, f"model '{alias}' is rate limited by its provider; retry after {wait} s", wait
    return status, f"model '{alias}': {clean_message(str(getattr(exc, 'message', exc)))}", None


def _anthropic_body(status: int, kind: str | None, message: str, wait: int | None) -> str:
    error: dict[str, Any] = {"type": kind or ANTHROPIC_TYPES.get(status, "api_error"),
                             "message": message}
    if wait is not None:
        error[RETRY_AFTER_FIELD] = wait
    return json.dumps({"type": "error", "error": error})


# Anthropic's error types by status (LiteLLM's AnthropicExceptionMapping agrees)
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                   429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def _shape_anthropic(alias: object, exc: BaseException) -> None:
    """Rewrite ``exc`` in place for LiteLLM's Anthropic routes (see the module docstring)."""
    if not _from_provider(exc):
        wait = _own_refusal(exc)
        kind = getattr(exc, "type", None)
        message = getattr(exc, "message", None)
        if isinstance(message, str) and isinstance(kind, str) and kind == BUDGET_TYPE:
            exc.message = _anthropic_body(429, kind, message, wait)  # type: ignore[attr-defined]
        return
    if not isinstance(alias, str) or not alias:
        return
    status, message, wait = _provider_failure(alias, exc)
    status = 529 if status == 503 else status
    exc.message = _anthropic_body(status, None, message, wait)  # type: ignore[attr-defined]
    exc.status_code = status  # type: ignore[attr-defined]


def shape_failure(request_data: Mapping[str, Any], exc: BaseException) -> HTTPException | None:
    """The error to send instead of LiteLLM's, or None to send LiteLLM's as it is."""
    alias = request_data.get("model")
    if anthropic_shaped(_route(request_data)):
        _shape_anthropic(alias, exc)
        return None
    if not _from_provider(exc):
        _own_refusal(exc)
        return None
    if not isinstance(alias, str) or not alias:
        return None
    status, message, wait = _provider_failure(alias, exc)
    headers = {"retry-after": str(wait)} if wait is not None else None
    kind = OPENAI_TYPES.get(status)
    if request_data.get("stream"):  # failed mid-stream: LiteLLM's error event reads exc
        _rewrite(exc, status, message, kind)
    shaped = HTTPException(status_code=status, detail=message, headers=headers)
    if kind is not None:
        shaped.type = kind  # type: ignore[attr-defined]  # LiteLLM reads error.type from it
    return shaped


# error.type of the gateway's provider failures on the OpenAI-shaped routes (LiteLLM's own
# default for a 5xx is internal_server_error)
OPENAI_TYPES = {503: "service_unavailable_error", 429: "rate_limit_error"}


def _rewrite(exc: BaseException, status: int, message: str, kind: str | None) -> None:
    """A stream that fails after its answer began: LiteLLM sends the error as a last
    ``data: {"error": ...}`` event built from the exception itself (``message``, ``type``,
    ``status_code``) and ignores the hook's answer, so the exception is rewritten in place."""
    exc.message = message  # type: ignore[attr-defined]
    exc.status_code = status  # type: ignore[attr-defined]
    if kind is not None:
        exc.type = kind  # type: ignore[attr-defined]
