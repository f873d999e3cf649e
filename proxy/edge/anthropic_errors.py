"""Errors on the Anthropic routes in Anthropic's shape.

Anthropic clients (the ``anthropic`` SDK, Claude Code ...) read
``{"type": "error", "error": {"type": "authentication_error", "message": ...}}``.
LiteLLM answers its ``/v1/messages`` route's own failures that way, but errors
raised before the route runs (``custom_auth``: 401, 403, the body checks' 400 and
413; LiteLLM's own pre-call checks) leave through its app-wide handler in OpenAI's
shape ``{"error": {"message", "type", "param", "code"}}``.

:class:`AnthropicErrors` is a small ASGI layer in front of the proxy app: on the
Anthropic routes (:data:`ANTHROPIC_ROUTES`) it rewrites a JSON error answer
(status >= 400) not already in Anthropic's shape, keeping the status and the
message; the error type comes from the status, as LiteLLM maps it
(``AnthropicExceptionMapping``: 400 ``invalid_request_error``, 401
``authentication_error``, 403 ``permission_error``, 413 ``request_too_large``,
429 ``rate_limit_error`` ...). Everything else streams through untouched.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from proxy.plugin import internals

__all__ = ["ANTHROPIC_ROUTES", "AnthropicErrors", "anthropic_error_body", "install"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ANTHROPIC_ROUTES = frozenset({"/v1/messages", "/messages", "/v1/messages/count_tokens",
                              "/messages/count_tokens"})


def _message_of(body: Any, raw: str) -> str:
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return error if isinstance(error, str) else json.dumps(error)
    return raw or "error"


def anthropic_error_body(status: int, raw: bytes) -> bytes | None:
    """``raw`` (an error answer's body) in Anthropic's shape; None when it already is."""
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("type") == "error":
        return None
    shaped = internals.anthropic_error_response(status, _message_of(body, text))
    return json.dumps(shaped).encode()


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
        shaped = anthropic_error_body(start["status"], gzip.decompress(raw) if gzipped else raw)
        if shaped is None:
            await self._send(start)
            await self._send({"type": "http.response.body", "body": raw})
            return
        dropped = (b"content-length", b"content-encoding")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
        headers.append((b"content-length", str(len(shaped)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": shaped})


class AnthropicErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        if scope.get("type") != "http" or path not in ANTHROPIC_ROUTES:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Rewriter(send))


def install(app: Any) -> bool:
    """Put :class:`AnthropicErrors` in front of ``app`` (a Starlette app), once."""
    from proxy.plugin.internals import wrap_app

    return wrap_app(app, AnthropicErrors)
