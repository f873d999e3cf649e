"""A minimal OpenAI-compatible upstream for the wrk benchmarks (starlette on uvicorn):
a fixed chat answer, or a stream of 20 chunks over 2 s. Lighter than the scripted
provider, so the proxy, not the upstream, is what the load measures.

    .venv/bin/python -m uvicorn bench.upstream:app --port 4011 --log-level warning
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STREAM_CHUNKS = 20
STREAM_SECONDS = 2.0
ANSWER = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def _chunk(model: str, delta: dict[str, str], finish: str | None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


async def _stream(model: str) -> AsyncIterator[bytes]:
    yield _chunk(model, {"role": "assistant", "content": "w0 "}, None)
    for i in range(1, STREAM_CHUNKS):
        await asyncio.sleep(STREAM_SECONDS / STREAM_CHUNKS)
        yield _chunk(model, {"content": f"w{i} "}, None)
    yield _chunk(model, {}, "stop")
    yield b"data: [DONE]\n\n"


async def chat(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", "bench"))
    if body.get("stream"):
        return StreamingResponse(_stream(model), media_type="text/event-stream")
    return JSONResponse({**ANSWER, "model": model})


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
