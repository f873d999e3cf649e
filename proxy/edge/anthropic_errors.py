"""Errors on the Anthropic routes in Anthropic's shape.

Anthropic clients (the ``anthropic`` SDK, Claude Code ...) read
``{"type": "error", "error": {"type": "authentication_error", "message": ...}}``.
LiteLLM answers its ``/v1/messages`` route's own failures that way, but errors
raised before the route runs (``custom_auth``: 401, 403, the body checks' 400 and
413; LiteLLM's own pre-call checks) leave through its app-wide handler in OpenAI's
shape ``{"error": {"message", "type", "param", "code"}}``.

:class:`AnthropicErrors` is a small ASGI layer in front of the proxy app: on the
Anthropic routes (:func:`proxy.edge.routes.anthropic_shaped`) it rewrites a JSON error answer
(status >= 400) not already in Anthropic's shape, keeping the status and the
message; the error type comes from the status, as LiteLLM maps it
(``AnthropicExceptionMapping``: 400 ``invalid_request_error``, 401
``authentication_error``, 403 ``permission_error``, 413 ``request_too_large``,
429 ``rate_limit_error`` ...). Two errors keep what a client acts on: a 503 (a provider
overloaded or failing, :mod:`proxy.edge.errors_shape`; the gateway's stores away) is sent
as Anthropic's own **529** ``overloaded_error`` (Anthropic clients back off and retry it),
and the gateway's ``budget_exceeded`` keeps its type. Everything else streams through
untouched.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from proxy.edge.errors_shape import RETRY_AFTER_FIELD
from proxy.edge.routes import anthropic_shaped
from proxy.plugin import internals

__all__ = ["AnthropicErrors", "anthropic_error_body", "anthropic_status",
           "install", "reshape"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _message_of(body: Any, raw: str) -> str:
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return error if isinstance(error, str) else json.dumps(error)
    return raw or "error"


OVERLOADED = 529  # Anthropic's status for "overloaded"
KEPT_TYPES = frozenset({"budget_exceeded"})  # the gateway's own types a client acts on


def _type_of(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def anthropic_status(status: int) -> int:
    """The status an Anthropic client gets for ``status``: 503 becomes 529."""
    return OVERLOADED if status == 503 else status


def anthropic_error_body(status: int, raw: bytes) -> bytes | None:
    """``raw`` (an error answer's body) in Anthropic's shape; None when it already is."""
    reshaped = reshape(status, raw)
    return None if reshaped is None else reshaped[1]


def reshape(status: int, raw: bytes) -> tuple[int, bytes, str | None] | None:
    """(status, Anthropic-shaped body, Retry-After or None) for an error answer; None when
    it goes out as it is. ``error.retry_after`` (set by :mod:`proxy.edge.errors_shape`)
    leaves the body for the ``Retry-After`` header."""
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    wait = error.pop(RETRY_AFTER_FIELD, None) if isinstance(error, dict) else None
    retry = str(wait) if isinstance(wait, int | float) else None
    if isinstance(body, dict) and body.get("type") == "error" and status != 503:
        return None if retry is None else (status, json.dumps(body).encode(), retry)
    shaped = internals.anthropic_error_response(anthropic_status(status),
                                                _message_of(body, text))
    kind = _type_of(body)
    if kind in KEPT_TYPES:
        shaped["error"]["type"] = kind
    return anthropic_status(status), json.dumps(shaped).encode(), retry


def _header(start: Message, name: bytes) -> bytes:
    for key, value in start.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return b""


class _Rewriter:
    """The ``send`` of one request: holds back an error answer and sends it reshaped."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400 and b"json" in _header(message, b"content-type"):
                self._start = message
                return
        elif message["type"] == "http.response.body" and self._start is not None:
            self._chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._flush(self._start)
            return
        await self._send(message)

    async def _flush(self, start: Message) -> None:
        raw = b"".join(self._chunks)
        gzipped = _header(start, b"content-encoding") == b"gzip"
        reshaped = reshape(start["status"], gzip.decompress(raw) if gzipped else raw)
        if reshaped is None:
            await self._send(start)
            await self._send({"type": "http.response.body", "body": raw})
            return
        status, shaped, retry = reshaped
        dropped = (b"content-length", b"content-encoding") + ((b"retry-after",) if retry else ())
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
        headers.append((b"content-length", str(len(shaped)).encode()))
        if retry:
            headers.append((b"retry-after", retry.encode()))
        await self._send({**start, "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": shaped})


class AnthropicErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not anthropic_shaped(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Rewriter(send))


def install(app: ASGIApp) -> AnthropicErrors:
    """``app`` behind an :class:`AnthropicErrors` layer (see :mod:`proxy.plugin.startup`)."""
    return AnthropicErrors(app)
