"""What the scripted provider answers: steps, scripts, rules and the usage they report.

Shared by every wire format the provider speaks (:mod:`llm_pool.offline.openai_wire`,
:mod:`llm_pool.offline.anthropic_wire`, :mod:`llm_pool.offline.ollama_wire`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["EMBEDDING_DIM", "Rule", "Script", "Step", "ToolCallSpec", "Usage", "embedding",
           "text_of", "tokens", "usage_of"]

EMBEDDING_DIM = 16


class ToolCallSpec(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Step(BaseModel):
    """One scripted answer.

    Token counts: ``prompt_tokens`` is the whole prompt, cache reads and writes included
    (OpenAI's meaning; Anthropic's ``input_tokens`` is what is left once ``cached_tokens``
    and ``cache_creation_tokens`` are taken out); ``completion_tokens`` the whole output,
    ``reasoning_tokens`` included. Unset counts are made up from the text (4 chars/token).
    """

    text: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    thinking: str | None = None  # reasoning text: Anthropic thinking block, Ollama `thinking`
    status: int | None = None
    retry_after: float | None = None
    error_message: str | None = None
    delay: float = 0.0
    malformed: bool = False
    truncate: bool = False
    cut: bool = False
    cut_after: int | None = None  # stream events sent before a cut (default: half of them)
    cut_delay: float = 0.0  # seconds between the last event sent and the cut
    stream_error: str | None = None  # an error event of this type after cut_after events
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens read from the provider's cache
    cache_creation_tokens: int | None = None  # prompt tokens written to it (Anthropic)
    reasoning_tokens: int | None = None  # output tokens spent reasoning (OpenAI)
    omit_usage: bool = False  # OpenAI wire: no usage, even when the stream asks for it


class Script(BaseModel):
    steps: list[Step] = Field(default_factory=list)
    by_model: dict[str, Step] = Field(default_factory=dict)


class Rule(BaseModel):
    match: str
    step: Step
    times: int | None = None


@dataclass(frozen=True)
class Usage:
    prompt: int
    completion: int
    cached: int = 0
    cache_creation: int = 0
    reasoning: int = 0

    @property
    def uncached_prompt(self) -> int:
        return max(0, self.prompt - self.cached - self.cache_creation)


def text_of(content: Any) -> str:
    """The text of a message's content: a string or a list of (possibly nested) blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        return text_of(content.get("content"))
    return ""


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def usage_of(step: Step, prompt_text: str) -> Usage:
    out_text = (step.thinking or "") + (step.text or "") + json.dumps(
        [c.arguments for c in step.tool_calls or []])
    prompt = step.prompt_tokens if step.prompt_tokens is not None else tokens(prompt_text)
    completion = (
        step.completion_tokens if step.completion_tokens is not None else tokens(out_text)
    )
    return Usage(prompt=prompt, completion=completion, cached=step.cached_tokens or 0,
                 cache_creation=step.cache_creation_tokens or 0,
                 reasoning=step.reasoning_tokens or 0)


def embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0 - 0.5, 6) for b in digest[:EMBEDDING_DIM]]
