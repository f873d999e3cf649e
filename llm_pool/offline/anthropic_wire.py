"""Anthropic's Messages API wire format (``/v1/messages``, ``/v1/messages/count_tokens``).

JSON and SSE answers with text, ``tool_use`` and ``thinking`` blocks (each signed: a
thinking block sent back with a signature that does not match its text is refused with
a 400, as Anthropic does), cache usage fields, errors in Anthropic's shape (``529
overloaded_error``, ``429 rate_limit_error`` ...) and an ``error`` event mid-stream.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from llm_pool.offline.steps import Step, Usage, text_of

__all__ = ["ERROR_TYPES", "bad_signature", "error_body", "error_event", "event", "events",
           "message", "signature", "view"]

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def signature(thinking: str) -> str:
    """The (deterministic) signature of a thinking block's text."""
    return base64.b64encode(hashlib.sha256(b"scripted:" + thinking.encode()).digest()).decode()


def bad_signature(body: dict[str, Any]) -> str | None:
    """Why a thinking block sent back in ``body`` is refused; None when all are intact."""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "thinking" and \
                    block.get("signature") != signature(str(block.get("thinking", ""))):
                return "Invalid `signature` in `thinking` block"
    return None


def _tool_messages(content: list[Any]) -> list[dict[str, Any]]:
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    rest = text_of([b for b in content if b not in results])
    out = [{"role": "tool", "tool_call_id": b.get("tool_use_id"),
            "content": text_of(b) + (" " + rest if rest.strip() and b is results[-1] else "")}
           for b in results]
    return out


def view(body: dict[str, Any]) -> dict[str, Any]:
    """The request as chat completions would carry it (messages, tools), for the script."""
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": text_of(body["system"])})
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            messages.extend(_tool_messages(content))
        else:
            messages.append({"role": message.get("role"), "content": text_of(content)})
    tools = [{"type": "function", "function": {"name": t["name"],
                                               "parameters": t.get("input_schema") or {}}}
             for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    return {"messages": messages, "tools": tools}


def _usage_json(usage: Usage, output: int) -> dict[str, int]:
    return {"input_tokens": usage.uncached_prompt, "output_tokens": output,
            "cache_creation_input_tokens": usage.cache_creation,
            "cache_read_input_tokens": usage.cached}


def _blocks(step: Step) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if step.thinking is not None:
        blocks.append({"type": "thinking", "thinking": step.thinking,
                       "signature": signature(step.thinking)})
    if step.text is not None or not step.tool_calls:
        blocks.append({"type": "text", "text": step.text or ""})
    for call in step.tool_calls or []:
        blocks.append({"type": "tool_use", "id": call.id or f"toolu_{uuid.uuid4().hex[:20]}",
                       "name": call.name, "input": call.arguments})
    return blocks


def _stop_reason(step: Step) -> str:
    return "tool_use" if step.tool_calls else "end_turn"


def message(step: Step, usage: Usage, model: str) -> dict[str, Any]:
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": model, "content": _blocks(step), "stop_reason": _stop_reason(step),
            "stop_sequence": None, "usage": _usage_json(usage, usage.completion)}


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


def _block_events(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block["type"]
    if kind == "thinking":
        yield event("content_block_start", {"index": index, "content_block": {
            "type": "thinking", "thinking": "", "signature": ""}})
        for part in re.findall(r"\S+\s*", block["thinking"]):
            yield event("content_block_delta", {"index": index, "delta": {
                "type": "thinking_delta", "thinking": part}})
        yield event("content_block_delta", {"index": index, "delta": {
            "type": "signature_delta", "signature": block["signature"]}})
    elif kind == "text":
        yield event("content_block_start", {"index": index, "content_block": {
            "type": "text", "text": ""}})
        for part in re.findall(r"\S+\s*", block["text"]):
            yield event("content_block_delta", {"index": index, "delta": {
                "type": "text_delta", "text": part}})
    else:
        yield event("content_block_start", {"index": index, "content_block": {
            "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
        args = json.dumps(block["input"])
        for part in (args[:len(args) // 2], args[len(args) // 2:]):
            yield event("content_block_delta", {"index": index, "delta": {
                "type": "input_json_delta", "partial_json": part}})
    yield event("content_block_stop", {"index": index})


def events(step: Step, usage: Usage, model: str) -> list[bytes]:
    """The SSE stream of one answer (usage: input and cache on message_start, output on
    message_delta, as Anthropic sends it)."""
    start = message(step, usage, model)
    start.update(content=[], stop_reason=None, usage=_usage_json(usage, 1))
    out = [event("message_start", {"message": start}), event("ping", {})]
    for index, block in enumerate(_blocks(step)):
        out.extend(_block_events(index, block))
    out.append(event("message_delta", {
        "delta": {"stop_reason": _stop_reason(step), "stop_sequence": None},
        "usage": {"output_tokens": usage.completion}}))
    out.append(event("message_stop", {}))
    return out


def error_body(status: int, message_text: str, kind: str | None = None) -> dict[str, Any]:
    error_type = kind or ERROR_TYPES.get(status, "api_error" if status >= 500
                                         else "invalid_request_error")
    return {"type": "error", "error": {"type": error_type, "message": message_text}}


def error_event(kind: str, message_text: str) -> bytes:
    return event("error", {"error": {"type": kind, "message": message_text}})
