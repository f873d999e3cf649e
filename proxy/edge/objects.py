"""A JSON request body must be an object: 400 before LiteLLM parses it.

LiteLLM's auth parses the body and calls ``.get`` on it, so a body like ``[1]``, ``"x"``
or ``3`` became a bare 500. :class:`JsonObjects` is a small ASGI layer in front of the
proxy app: on ``POST``/``PUT``/``PATCH`` with a JSON body (content type absent or naming
``json``), the first character that is not white space must be ``{``; otherwise the
answer is 400 ``bad_request_error`` "the request body must be a JSON object" (a body
that is not JSON at all gets the same answer, which LiteLLM's parser gives it too). It
reads only as far as that character and hands every chunk read on unchanged; an empty
body, a form or any other content type passes untouched.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["MESSAGE", "JsonObjects", "install"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MESSAGE = "the request body must be a JSON object"  # as proxy.edge.validation.not_an_object
METHODS = frozenset({"POST", "PUT", "PATCH"})
WHITESPACE = b" \t\r\n"


def _json_body(scope: Scope) -> bool:
    if scope.get("type") != "http" or scope.get("method") not in METHODS:
        return False
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-type":
            return b"json" in value.lower()
    return True  # LiteLLM parses a body without a content type as JSON


class JsonObjects:
    """The ASGI layer described in the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _json_body(scope):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        while True:
            message = await receive()
            read.append(message)
            if message.get("type") != "http.request":
                break
            chunk = bytes(message.get("body", b"")).lstrip(WHITESPACE)
            if chunk:
                if chunk[:1] != b"{":
                    await _refuse(send)
                    return
                break
            if not message.get("more_body", False):
                break
        await self.app(scope, _Replay(read, receive), send)


class _Replay:
    """``receive`` for the app: the messages read here, then the server's own."""

    def __init__(self, read: list[Message], receive: Receive) -> None:
        self._read = read
        self._receive = receive

    async def __call__(self) -> Message:
        return self._read.pop(0) if self._read else await self._receive()


async def _refuse(send: Send) -> None:
    body = json.dumps({"error": {"message": MESSAGE, "type": "bad_request_error",
                                 "param": None, "code": "400"}}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def install(app: ASGIApp) -> JsonObjects:
    """``app`` behind a :class:`JsonObjects` layer."""
    return JsonObjects(app)
