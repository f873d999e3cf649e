"""OpenAI's chat completions wire format (``/v1/chat/completions``, ``/v1/embeddings``)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from llm_pool.offline.steps import Step, ToolCallSpec, Usage, embedding, tokens

__all__ = ["chunks", "completion", "embeddings", "error_body", "sse", "stream_error_event",
           "usage_json"]


def _tool_call_json(call: ToolCallSpec, index: int) -> dict[str, Any]:
    return {
        "id": call.id or f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "index": index,
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def usage_json(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt_tokens": usage.prompt, "completion_tokens": usage.completion,
                            "total_tokens": usage.prompt + usage.completion}
    if usage.cached:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached}
    if usage.reasoning:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning}
    return body


def completion(step: Step, usage: Usage, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text}
    finish = "stop"
    if step.tool_calls:
        message["tool_calls"] = [_tool_call_json(c, i) for i, c in enumerate(step.tool_calls)]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_json(usage),
    }


def chunks(step: Step, usage: Usage, model: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for word in re.findall(r"\S+\s*", step.text or ""):
        yield chunk({"content": word})
    for i, call in enumerate(step.tool_calls or []):
        full = _tool_call_json(call, i)
        args = full["function"]["arguments"]
        half = len(args) // 2
        yield chunk({"tool_calls": [{"index": i, "id": full["id"], "type": "function",
                                     "function": {"name": call.name, "arguments": args[:half]}}]})
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
    yield chunk({}, "tool_calls" if step.tool_calls else "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": usage_json(usage)}


def sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = "rate_limit_error" if status == 429 else "server_error"
    if status < 500 and status != 429:
        kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": status}}


def stream_error_event(kind: str, message: str) -> bytes:
    return sse({"error": {"message": message, "type": kind, "code": None}})


def embeddings(texts: list[str], model: str) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": embedding(t)}
            for i, t in enumerate(texts)]
    count = sum(tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": count, "total_tokens": count}}
