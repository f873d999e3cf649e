"""Unit tests of proxy.edge.anthropic_errors: error answers on the Anthropic routes are
rewritten to Anthropic's shape; everything else passes untouched. Through the real
proxy: tests/clients/test_routes.py and tests/clients/test_anthropic.py."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest
from starlette.applications import Starlette

from proxy.edge.anthropic_errors import AnthropicErrors, install

OPENAI_401 = {"error": {"message": "invalid API key", "type": "auth_error", "param": "api_key",
                        "code": "401"}}


def _app(status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
         chunks: int = 1) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers or [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        size = max(1, len(body) // chunks)
        parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part,
                        "more_body": i < len(parts) - 1})
    return app


def _call(app: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    asyncio.run(AnthropicErrors(app)({"type": "http", "path": path}, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error")])
def test_openai_shaped_errors_on_messages_become_anthropic(status: int, kind: str) -> None:
    raw = json.dumps(OPENAI_401).encode()
    got_status, headers, body = _call(_app(status, raw, chunks=3), "/v1/messages")
    assert got_status == status and int(headers[b"content-length"]) == len(body)
    assert json.loads(body) == {"type": "error",
                                "error": {"type": kind, "message": "invalid API key"}}


def test_gzipped_errors_are_rewritten_uncompressed() -> None:
    raw = gzip.compress(json.dumps(OPENAI_401).encode())
    headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    _, got, body = _call(_app(401, raw, headers), "/v1/messages/count_tokens")
    assert b"content-encoding" not in got
    assert json.loads(body)["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/v1/chat/completions", 401, json.dumps(OPENAI_401).encode()),  # OpenAI route: its shape
    ("/v1/messages", 200, b'{"type": "message"}'),
    ("/v1/messages", 404, b'{"type": "error", "error": {"type": "not_found_error", '
                          b'"message": "x"}}'),  # already Anthropic's
])
def test_everything_else_passes_untouched(path: str, status: int, body: bytes) -> None:
    assert _call(_app(status, body), path)[2] == body


def test_install_puts_the_layer_in_front_of_the_app() -> None:
    app = Starlette()
    wrapped = install(app)
    assert isinstance(wrapped, AnthropicErrors) and wrapped.app is app
