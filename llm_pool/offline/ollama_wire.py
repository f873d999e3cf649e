"""Ollama's native API wire format (``/api/chat``, ``/api/embed``): JSON answers and
newline-delimited JSON streams, native tool calls (arguments as objects), ``thinking``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from llm_pool.offline.steps import Step, Usage, embedding, tokens

__all__ = ["chat", "embed", "error_body", "line", "lines", "view"]


def _created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def view(body: dict[str, Any]) -> dict[str, Any]:
    """The request as chat completions would carry it (Ollama's is close already)."""
    return {"messages": [m for m in body.get("messages") or [] if isinstance(m, dict)],
            "tools": [t for t in body.get("tools") or [] if isinstance(t, dict)]}


def _message(step: Step) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text or ""}
    if step.thinking is not None:
        message["thinking"] = step.thinking
    if step.tool_calls:
        message["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}}
                                 for c in step.tool_calls]
    return message


def _done(usage: Usage) -> dict[str, Any]:
    return {"done": True, "done_reason": "stop", "total_duration": 1000,
            "load_duration": 10, "prompt_eval_count": usage.prompt, "prompt_eval_duration": 10,
            "eval_count": usage.completion, "eval_duration": 10}


def chat(step: Step, usage: Usage, model: str) -> dict[str, Any]:
    return {"model": model, "created_at": _created(), "message": _message(step),
            **_done(usage)}


def line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode() + b"\n"


def lines(step: Step, usage: Usage, model: str) -> Iterator[bytes]:
    """The NDJSON stream: thinking and content word by word, tool calls in one chunk,
    then the ``done`` chunk with the counts."""
    def chunk(message: dict[str, Any]) -> bytes:
        return line({"model": model, "created_at": _created(),
                     "message": {"role": "assistant", "content": "", **message},
                     "done": False})

    for part in re.findall(r"\S+\s*", step.thinking or ""):
        yield chunk({"thinking": part})
    for part in re.findall(r"\S+\s*", step.text or ""):
        yield chunk({"content": part})
    if step.tool_calls:
        yield chunk({"tool_calls": _message(step)["tool_calls"]})
    yield line({"model": model, "created_at": _created(),
                "message": {"role": "assistant", "content": ""}, **_done(usage)})


def embed(texts: list[str], model: str) -> dict[str, Any]:
    return {"model": model, "embeddings": [embedding(t) for t in texts],
            "total_duration": 1000, "load_duration": 10,
            "prompt_eval_count": sum(tokens(t) for t in texts)}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": message}
