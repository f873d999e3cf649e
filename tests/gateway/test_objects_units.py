"""A JSON body that is not an object is refused by the edge (:mod:`proxy.edge.objects`)
before LiteLLM parses it; everything else reaches the app byte for byte."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from proxy.edge.objects import MESSAGE, JsonObjects

Message = dict[str, Any]


def _call(body_chunks: list[bytes], *, method: str = "POST",
          content_type: bytes | None = b"application/json") -> tuple[list[Message], bytes | None]:
    """Send the chunks through the layer: what it answered, and the body the app read."""
    seen: list[bytes | None] = [None]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got = b""
        while True:
            message = await receive()
            got += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen[0] = got
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
                for i, chunk in enumerate(body_chunks)]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-type", content_type)] if content_type is not None else []
    scope = {"type": "http", "method": method, "path": "/v1/chat/completions",
             "headers": headers}
    asyncio.run(JsonObjects(app)(scope, receive, send))
    return sent, seen[0]


@pytest.mark.parametrize("body", [[b"[1, 2]"], [b"  \n", b"\"x\""], [b"3"], [b"null"],
                                  [b"", b" ", b"[{}]"], [b"not json"]])
def test_a_body_that_is_not_an_object_is_a_400_the_app_never_sees(body: list[bytes]) -> None:
    sent, seen = _call(body)
    assert seen is None
    assert sent[0]["status"] == 400
    error = json.loads(sent[1]["body"])["error"]
    assert error == {"message": MESSAGE, "type": "bad_request_error", "param": None,
                     "code": "400"}


@pytest.mark.parametrize("body", [[b'{"model": "fast"}'], [b"  ", b'{"a"', b": 1}"], [b""],
                                  []])
def test_an_object_or_an_empty_body_reaches_the_app_unchanged(body: list[bytes]) -> None:
    sent, seen = _call(body or [b""])
    assert sent[0]["status"] == 200 and seen == b"".join(body)


@pytest.mark.parametrize(("method", "content_type"), [
    ("GET", b"application/json"), ("POST", b"multipart/form-data; boundary=x"),
    ("POST", b"application/x-www-form-urlencoded"), ("POST", b"text/plain")])
def test_forms_other_types_and_bodiless_methods_pass_untouched(method: str,
                                                               content_type: bytes) -> None:
    sent, seen = _call([b"[1]"], method=method, content_type=content_type)
    assert sent[0]["status"] == 200 and seen == b"[1]"


def test_no_content_type_is_json_as_litellm_reads_it() -> None:
    sent, seen = _call([b"[1]"], content_type=None)
    assert sent[0]["status"] == 400 and seen is None
