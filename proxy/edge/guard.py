"""The gateway's edge: what reaches LiteLLM, and what leaves it, for anyone but the operator.

:class:`EdgeGuard` is an ASGI layer in front of the whole proxy app (LiteLLM's own
middlewares and routes included), put there when LiteLLM loads :mod:`proxy.plugin.auth`.

**Routes, deny by default.** A request that does not carry the master key reaches
LiteLLM only on an explicit allowlist, the routes of :data:`proxy.edge.routes.ROUTES`
open to tenants (chat completions, embeddings, the Responses and Messages APIs, the
model list) or to anyone (liveness); a request carrying exactly ``POOL_METRICS_KEY``
reaches ``GET /metrics`` and nothing else. Everything else
(pass-through routes, files, batches, vector stores, fine-tuning, assistants, admin,
info, docs, ``openapi.json``, UI, routes a LiteLLM upgrade adds) is answered here:
401 without a key, 403 with one.
``custom_auth`` then authenticates the key on the allowed routes.

**Nothing about upstreams leaves.** Responses to non-master requests keep only
the headers in :data:`TENANT_HEADERS` (no ``x-litellm-model-api-base``, no
``llm_provider-*``, no cost breakdown or version); error bodies, and error events
in streams, have upstream URLs and host:port pairs replaced by ``[upstream]``.
Which deployment answered stays visible as ``x-litellm-model-id``.

**Bodies bounded before they are read.** For anyone but the operator, a request without
a key is answered 401 before a byte of its body is read (CORS preflights and liveness
excepted); a ``Content-Length`` over ``POOL_MAX_REQUEST_MB`` is answered 413 before a
byte is read; a chunked body is read here, counting, and cut with 413 the moment it
passes the limit. Those answers close the connection (the unread rest is never
received). A body within the limit is handed to LiteLLM whole, so nothing behind this
layer ever holds more than the limit of a tenant's request.
"""

from __future__ import annotations

import gzip
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from proxy.edge.routes import Access, access_of, tenant_may_call

__all__ = [
    "TENANT_HEADERS",
    "EdgeGuard",
    "Redactor",
    "request_key",
    "tenant_may_call",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TENANT_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "transfer-encoding", "date",
    "cache-control", "connection", "vary", "retry-after", "retry-after-ms", "x-should-retry",
    "x-litellm-call-id", "x-litellm-model-id", "x-litellm-model-group",
    "x-litellm-attempted-fallbacks", "x-litellm-attempted-retries", "x-litellm-max-retries",
    "x-litellm-response-cost", "x-litellm-response-duration-ms",
    "x-content-type-options", "x-frame-options", "content-security-policy",
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
    "x-pool-limits",  # shared | local: whether limits are shared (proxy.admission.limits)
})
_RELAYED = {b"llm_provider-retry-after": b"retry-after",
            b"llm_provider-retry-after-ms": b"retry-after-ms"}

# where a client may put its key (LiteLLM reads all of these)
KEY_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"x-litellm-api-key",
               b"x-goog-api-key")

_URL = re.compile(rb"(?:https?|wss?)://[^\s\"'\\<>]+", re.IGNORECASE)
_ADDRESS_TUPLE = re.compile(rb"\(\s*'[^']*',\s*\d{1,5}\s*\)")  # ('10.0.0.5', 8000) in errors
_HOST_PORT = re.compile(rb"\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\])(?::\d{1,5})?\b",
                        re.IGNORECASE)
REDACTED = b"[upstream]"
CLOSE = (b"connection", b"close")
_CALL_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
MAX_ERROR_BODY = 1_000_000  # bytes of an error body buffered for redaction
DEFAULT_MAX_BODY = 4_000_000  # bytes; the proxy passes POOL_MAX_REQUEST_MB's
MISSING_KEY = "missing API key: send `Authorization: Bearer <key>`"


def request_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The API key a request carries, in the first key header that has one."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in KEY_HEADERS and lowered not in found:
            found[lowered] = value
    for name in KEY_HEADERS:
        raw = found.get(name)
        if raw is None:
            continue
        text = raw.decode("latin-1").strip()
        if name == b"authorization":
            scheme, _, token = text.partition(" ")
            text = token.strip() if scheme.lower() == "bearer" else ""
        if text:
            return text
    return None


class Redactor:
    """Replaces upstream URLs and host:port pairs in bytes with ``[upstream]``."""

    def __init__(self, upstreams: Callable[[], Iterable[str]]) -> None:
        self._upstreams = upstreams
        self._known: list[bytes] | None = None

    def _known_upstreams(self) -> list[bytes]:
        if self._known is None:
            known: set[bytes] = set()
            for base in self._upstreams():
                known.add(base.rstrip("/").encode())
                host = base.split("://", 1)[-1].split("/", 1)[0]
                if host:
                    known.add(host.encode())
                _, colon, port = host.rpartition(":")
                if colon and port.isdigit():
                    known.add(f":{port}".encode())  # LiteLLM masks IPs but not ports
            self._known = sorted(known, key=len, reverse=True)
        return self._known

    def __call__(self, body: bytes) -> bytes:
        for known in self._known_upstreams():
            body = body.replace(known, REDACTED)
        body = _URL.sub(REDACTED, body)
        body = _ADDRESS_TUPLE.sub(REDACTED, body)
        return _HOST_PORT.sub(REDACTED, body)


def _route(scope: Scope) -> str:
    path = str(scope.get("path") or "/")
    root = str(scope.get("root_path") or "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return path


def _metrics_slash(scope: Scope) -> Scope:
    path = str(scope.get("path") or "/") + "/"
    return {**scope, "path": path, "raw_path": path.encode()}


def _same(key: str | None, expected: str | None) -> bool:
    return bool(expected and key and secrets.compare_digest(key.encode(), expected.encode()))


class EdgeGuard:
    """The ASGI layer described in the module docstring."""

    def __init__(self, app: ASGIApp, master_key: Callable[[], str | None],
                 redactor: Redactor, metrics_key: Callable[[], str | None] = lambda: None,
                 max_body: Callable[[], int] = lambda: DEFAULT_MAX_BODY) -> None:
        self.app = app
        self._master_key = master_key
        self._metrics_key = metrics_key
        self._max_body = max_body
        self._redact = redactor

    def _is_master(self, key: str | None) -> bool:
        return _same(key, self._master_key())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        key = request_key(scope.get("headers") or ())
        if kind == "http" and _route(scope) == "/metrics":
            scope = _metrics_slash(scope)  # LiteLLM mounts it at /metrics/: no 307 detour
        if self._is_master(key):
            return await self.app(scope, receive, send)
        method = str(scope.get("method") or "GET") if kind == "http" else "WEBSOCKET"
        route = _route(scope)
        access = access_of(method, route)
        if access is Access.PUBLIC or (
                access is Access.METRICS and _same(key, self._metrics_key())):
            return await self._bounded(scope, receive, send, send)
        if not tenant_may_call(method, route):
            return await self._refuse(kind, key, method, route, send)
        if key is None and method != "OPTIONS":  # a CORS preflight carries no key
            return await _reply(send, 401, "auth_error", MISSING_KEY)
        if not _call_id_ok(scope.get("headers") or ()):
            return await _reply(send, 400, "invalid_request_error", "x-litellm-call-id must be "
                                "1 to 128 letters, digits, '.', '_', ':' or '-'")
        return await self._bounded(scope, receive, send, _Filtered(send, self._redact))

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, app_send: Send
                       ) -> None:
        """Hand the request on with its body read here, or answer 413 (see the module
        docstring). ``app_send`` is what the app answers through."""
        limit = self._max_body()
        declared = _content_length(scope.get("headers") or ())
        if declared is not None and declared > limit:
            return await _reply(send, 413, "request_too_large", _too_large(declared, limit))
        body = await _read_body(receive, limit)
        if body is None:
            return await _reply(send, 413, "request_too_large", _too_large(None, limit))
        return await self.app(scope, _Replay(body, receive), app_send)

    async def _refuse(self, kind: str, key: str | None, method: str, route: str,
                      send: Send) -> None:
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if key is None:
            status, message = 401, MISSING_KEY
        else:
            status, message = 403, (f"{method} {route} is not available to tenant keys; "
                                    "they may call the model endpoints only")
        await _reply(send, status, "auth_error", message)


async def _reply(send: Send, status: int, kind: str, message: str) -> None:
    """An error answer given before the request's body was read: it closes the
    connection, so the server never receives the unread rest."""
    body = json.dumps({"error": {"message": message, "type": kind, "param": None,
                                 "code": str(status)}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), CLOSE]})
    await send({"type": "http.response.body", "body": body})


def _too_large(size: int | None, limit: int) -> str:
    said = "over the limit" if size is None else f"{size / 1e6:.1f} MB"
    return (f"request body too large: {said}, the limit is {limit / 1e6:.1f} MB "
            "(POOL_MAX_REQUEST_MB)")


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared body size (the server has already refused malformed ones)."""
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


async def _read_body(receive: Receive, limit: int) -> Message | None:
    """The request's body as one ``http.request`` message (or the client's disconnect),
    read up to ``limit`` bytes; None as soon as it passes the limit (the rest unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return message  # the client went away: the app hears it
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


class _Replay:
    """``receive`` for the app: the body read by :func:`_read_body`, then the server's
    own (a disconnect, while a streamed answer goes on)."""

    def __init__(self, first: Message, receive: Receive) -> None:
        self._first: Message | None = first
        self._receive = receive

    async def __call__(self) -> Message:
        first, self._first = self._first, None
        return first if first is not None else await self._receive()


def _call_id_ok(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A client-chosen request id (it becomes the spend row's id) of a safe shape."""
    return all(_CALL_ID.fullmatch(value) for name, value in headers
               if name.lower() == b"x-litellm-call-id")


_TENANT_HEADER_NAMES = frozenset(name.encode() for name in TENANT_HEADERS)


def _tenant_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers a tenant may see; a provider's ``Retry-After`` (relayed by LiteLLM as
    ``llm_provider-retry-after``) is kept as ``retry-after``: when to come back is theirs."""
    kept: list[tuple[bytes, bytes]] = []
    relayed: dict[bytes, bytes] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in _TENANT_HEADER_NAMES or lowered.startswith(b"access-control-"):
            kept.append((name, value))
        elif lowered in _RELAYED:
            relayed[_RELAYED[lowered]] = value
    if relayed:
        present = {name.lower() for name, _ in kept}
        kept.extend((name, value) for name, value in relayed.items() if name not in present)
    return kept


class _Filtered:
    """``send`` for a tenant's response: headers filtered, error text redacted."""

    def __init__(self, send: Send, redact: Redactor) -> None:
        self._send = send
        self._redact = redact
        self._start: Message | None = None
        self._held: list[bytes] | None = None  # an error body being buffered
        self._held_size = 0
        self._stream = False

    async def __call__(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            return await self._on_start(message)
        if kind != "http.response.body":
            return await self._send(message)
        if self._held is not None:
            return await self._hold(message)
        if self._stream:
            body = message.get("body", b"")
            if b'"error"' in body:
                message = {**message, "body": self._redact(body)}
        return await self._send(message)

    async def _on_start(self, message: Message) -> None:
        headers = _tenant_headers(message.get("headers", []))
        status = int(message.get("status", 200))
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        self._stream = b"event-stream" in content_type
        if status >= 400 and not self._stream:
            self._start = {**message, "headers": headers}
            self._held = []
            return None
        return await self._send({**message, "headers": headers})

    async def _hold(self, message: Message) -> None:
        assert self._held is not None and self._start is not None
        chunk = message.get("body", b"")
        self._held.append(chunk)
        self._held_size += len(chunk)
        more = bool(message.get("more_body", False))
        if more and self._held_size < MAX_ERROR_BODY:
            return
        body, headers = b"".join(self._held), list(self._start["headers"])
        self._held = None
        encoding = [v for k, v in headers if k.lower() == b"content-encoding"]
        if not more and encoding in ([], [b"gzip"]):  # whole, and readable: redact it
            body = self._redact(gzip.decompress(body) if encoding else body)
            headers = [(k, v) for k, v in headers
                       if k.lower() not in (b"content-length", b"content-encoding")]
            headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": more})


def install(app: ASGIApp, master_key: Callable[[], str | None], redactor: Redactor,
            metrics_key: Callable[[], str | None] = lambda: None,
            max_body: Callable[[], int] = lambda: DEFAULT_MAX_BODY) -> EdgeGuard:
    """``app`` behind an :class:`EdgeGuard` (the start-up wraps LiteLLM's app with it,
    :mod:`proxy.plugin.startup`)."""
    return EdgeGuard(app, master_key=master_key, redactor=redactor,
                     metrics_key=metrics_key, max_body=max_body)
