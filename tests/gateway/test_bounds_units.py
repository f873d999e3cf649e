"""The edge's body bounds (:mod:`proxy.edge.guard`), on a fake app: what is read of a
request before it is refused, and what the app is handed when it is not."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from proxy.edge import guard as edge

LIMIT = 1000


class _Body:
    """A client's body as the server hands it over, counting what was read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0  # receive() calls

    async def __call__(self) -> dict[str, Any]:
        if self.read >= len(self.chunks):
            await asyncio.sleep(3600)  # the server's receive blocks until a disconnect
        self.read += 1
        return {"type": "http.request", "body": self.chunks[self.read - 1],
                "more_body": self.read < len(self.chunks)}


def _run(headers: list[tuple[bytes, bytes]], body: _Body, method: str = "POST",
         path: str = "/v1/chat/completions") -> tuple[list[dict[str, Any]], list[bytes]]:
    sent: list[dict[str, Any]] = []
    bodies: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        bodies.append(message["body"])
        assert not message.get("more_body")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = edge.EdgeGuard(app, lambda: "sk-master", edge.Redactor(lambda: []),
                           max_body=lambda: LIMIT)
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    asyncio.run(asyncio.wait_for(guard(scope, body, send), 10))
    return sent, bodies


KEY = [(b"authorization", b"Bearer sk-pool-whatever")]


def test_no_key_is_401_before_a_byte_is_read() -> None:
    body = _Body([b"x" * 10])
    sent, bodies = _run([(b"content-length", b"10")], body)
    assert sent[0]["status"] == 401 and (b"connection", b"close") in sent[0]["headers"]
    assert "missing API key" in json.loads(sent[1]["body"])["error"]["message"]
    assert body.read == 0 and bodies == []


def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read() -> None:
    body = _Body([b"x" * 10])
    sent, bodies = _run([*KEY, (b"content-length", str(LIMIT + 1).encode())], body)
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    message = json.loads(sent[1]["body"])["error"]["message"]
    assert "too large" in message and "POOL_MAX_REQUEST_MB" in message
    assert body.read == 0 and bodies == []


def test_a_chunked_body_is_cut_as_it_passes_the_limit() -> None:
    body = _Body([b"x" * 400] * 100)  # 40,000 bytes in 100 chunks, no length declared
    sent, bodies = _run(KEY, body)
    assert sent[0]["status"] == 413 and bodies == []
    assert body.read == 3  # 400, 800, 1200 > 1000: the rest is never read


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    body = _Body([b"a" * 400, b"b" * 400, b"c" * 200])  # exactly the limit
    sent, bodies = _run(KEY, body)
    assert sent[0]["status"] == 200
    assert bodies == [b"a" * 400 + b"b" * 400 + b"c" * 200]


def test_liveness_and_preflights_need_no_key_but_are_bounded_too() -> None:
    sent, _ = _run([], _Body([b""]), "GET", "/health/liveliness")
    assert sent[0]["status"] == 200
    sent, _ = _run([], _Body([b""]), "OPTIONS", "/v1/chat/completions")
    assert sent[0]["status"] == 200
    sent, bodies = _run([], _Body([b"x" * 600] * 5), "GET", "/health/liveliness")
    assert sent[0]["status"] == 413 and bodies == []


def test_the_master_key_is_not_bounded_here() -> None:
    body = _Body([b"x" * 3000])
    sent, bodies = _run([(b"authorization", b"Bearer sk-master")], body, "POST", "/files")
    assert sent[0]["status"] == 200  # the operator's uploads (LiteLLM's own limits apply)
    assert bodies == [b"x" * 3000]
