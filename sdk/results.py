"""What the gateway returns: frozen dataclasses built from the proxy's answers.

The proxy (LiteLLM) reports which deployment answered and what it cost in
response headers (``x-litellm-model-id``, ``x-litellm-model-group``,
``x-litellm-response-cost``, ``x-litellm-call-id``); a stream reports its cost in
the final usage chunk instead. The builders here are pure functions over the
openai types and those headers, shared by the sync and async clients.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

__all__ = [
    "Completion",
    "EmbeddingResult",
    "ResponseMeta",
    "StreamAssembler",
    "ToolCall",
    "Usage",
    "completion_from_response",
    "embeddings_from_response",
    "parse_tool_call",
    "stable_call_id",
]

HEADER_DEPLOYMENT = "x-litellm-model-id"
HEADER_MODEL_GROUP = "x-litellm-model-group"
HEADER_COST = "x-litellm-response-cost"
HEADER_CALL_ID = "x-litellm-call-id"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens,
                     self.total_tokens + other.total_tokens)


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for. ``arguments`` is the parsed JSON object;
    when the model sent something that is not a JSON object, ``arguments`` is empty
    and ``parse_error`` says why (``raw_arguments`` keeps what was sent)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    raw_arguments: str
    parse_error: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry for the assistant message."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.raw_arguments}}


@dataclass(frozen=True)
class ResponseMeta:
    """Facts from the proxy's response headers."""

    deployment: str | None = None
    model_group: str | None = None
    cost: float | None = None
    request_id: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ResponseMeta:
        return cls(deployment=headers.get(HEADER_DEPLOYMENT),
                   model_group=headers.get(HEADER_MODEL_GROUP),
                   cost=_float_or_none(headers.get(HEADER_COST)),
                   request_id=headers.get(HEADER_CALL_ID))


@dataclass(frozen=True)
class Completion:
    """One chat completion.

    ``deployment`` is the deployment that actually answered (``fast-1`` after a
    ``quality -> fast`` fallback), ``model_group`` its alias, ``cost`` in USD when
    the proxy reports it, ``request_id`` the proxy's call id (else the response id).
    """

    text: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: Usage
    alias: str
    model: str
    deployment: str | None
    model_group: str | None
    cost: float | None
    request_id: str | None
    latency_ms: float
    refusal: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to a conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage
    alias: str
    deployment: str | None
    cost: float | None
    request_id: str | None
    latency_ms: float


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def stable_call_id(*parts: object) -> str:
    """A deterministic tool call id (``call_`` + 24 hex digits) derived from ``parts``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"call_{digest[:24]}"


def parse_tool_call(call_id: str | None, name: str, raw_arguments: str, index: int) -> ToolCall:
    raw = raw_arguments or "{}"
    call_id = call_id or stable_call_id(index, name, raw)
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ToolCall(call_id, name, {}, raw, f"arguments are not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        return ToolCall(call_id, name, {}, raw, "arguments must be a JSON object")
    return ToolCall(call_id, name, parsed, raw)


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(raw.prompt_tokens or 0, raw.completion_tokens or 0, raw.total_tokens or 0)


def completion_from_response(response: ChatCompletion, meta: ResponseMeta, *, alias: str,
                             latency_ms: float) -> Completion:
    choice = response.choices[0]
    message = choice.message
    calls = tuple(
        parse_tool_call(c.id, c.function.name, c.function.arguments, i)
        for i, c in enumerate(message.tool_calls or []) if c.type == "function"
    )
    return Completion(
        text=message.content or "", tool_calls=calls, finish_reason=choice.finish_reason,
        usage=_usage(response.usage), alias=alias, model=response.model,
        deployment=meta.deployment, model_group=meta.model_group, cost=meta.cost,
        request_id=meta.request_id or response.id, latency_ms=latency_ms,
        refusal=message.refusal,
    )


def embeddings_from_response(response: CreateEmbeddingResponse, meta: ResponseMeta, *,
                             alias: str, latency_ms: float) -> EmbeddingResult:
    ordered = sorted(response.data, key=lambda item: item.index)
    usage = Usage(response.usage.prompt_tokens, 0, response.usage.total_tokens)
    return EmbeddingResult(
        vectors=tuple(tuple(item.embedding) for item in ordered), usage=usage, alias=alias,
        deployment=meta.deployment, cost=meta.cost, request_id=meta.request_id,
        latency_ms=latency_ms,
    )


@dataclass
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAssembler:
    """Accumulates stream chunks: text deltas, tool-call fragments (by ``index``),
    the finish reason and the final usage chunk, then builds a :class:`Completion`."""

    def __init__(self, alias: str, meta: ResponseMeta) -> None:
        self.alias = alias
        self.meta = meta
        self.text: list[str] = []
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()
        self.cost: float | None = meta.cost
        self.model = alias
        self.response_id: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; return its text delta ("" when none)."""
        self.model, self.response_id = chunk.model or self.model, chunk.id
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
            self.cost = _float_or_none(getattr(chunk.usage, "cost", None)) or self.cost
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        self.finish_reason = choice.finish_reason or self.finish_reason
        for fragment in choice.delta.tool_calls or []:
            partial = self.calls.setdefault(fragment.index, _PartialCall())
            partial.id = fragment.id or partial.id
            if fragment.function is not None:
                partial.name += fragment.function.name or ""
                partial.arguments.append(fragment.function.arguments or "")
        delta = choice.delta.content or ""
        if delta:
            self.text.append(delta)
        return delta

    def completion(self, latency_ms: float) -> Completion:
        calls = tuple(
            parse_tool_call(p.id, p.name, "".join(p.arguments), index)
            for index, p in sorted(self.calls.items())
        )
        return Completion(
            text="".join(self.text), tool_calls=calls, finish_reason=self.finish_reason,
            usage=self.usage, alias=self.alias, model=self.model,
            deployment=self.meta.deployment, model_group=self.meta.model_group,
            cost=self.cost, request_id=self.meta.request_id or self.response_id,
            latency_ms=latency_ms,
        )
