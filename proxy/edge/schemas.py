"""The request bodies of the model routes, as pydantic models (read by
:mod:`proxy.edge.validation`; which route takes which: :mod:`proxy.edge.routes`).

Each top level is **closed** (a field not listed is refused); message and content
objects are open. What LiteLLM does with each field: ``docs/request-rules.md``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

__all__ = ["AnthropicMessage", "ChatRequest", "CountTokensRequest", "EmbeddingRequest",
           "Message", "MessagesRequest", "Metadata", "ResponsesRequest"]

Number = StrictInt | float
Stop = str | list[str] | None
Object = dict[str, Any]
Objects = list[dict[str, Any]]


class _Open(BaseModel):
    """Known fields typed, any other field let through (message and content objects)."""

    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    """Known fields typed, any other field refused (a request's top level)."""

    model_config = ConfigDict(extra="forbid")


class Metadata(_Closed):
    """The keys of ``metadata`` LiteLLM only logs: spend tags, Anthropic's end-user id."""

    tags: list[str] | None = None
    user_id: str | None = None


class _Common(_Closed):
    """Fields every model route shares (LiteLLM's ``metadata`` and ``tags`` included)."""

    model: str = Field(min_length=1)
    user: str | None = None
    metadata: Metadata | None = None
    tags: list[str] | None = None


class _Sampling(_Common):
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = None
    stream: StrictBool | None = None
    stream_options: Object | None = None
    tools: Objects | None = None
    service_tier: str | None = None


class _OpenAI(_Sampling):
    """Fields the chat-completion and Responses bodies share."""

    top_logprobs: StrictInt | None = None
    tool_choice: str | Object | None = None
    parallel_tool_calls: StrictBool | None = None
    store: StrictBool | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | Objects | None = None


class ChatRequest(_OpenAI):
    """The OpenAI chat-completion body, with LiteLLM's and common provider extras."""

    messages: list[Message] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    n: StrictInt | None = Field(default=None, ge=1)
    stop: Stop = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    logit_bias: dict[str, Number] | None = None
    logprobs: StrictBool | None = None
    seed: StrictInt | None = None
    functions: Objects | None = None
    function_call: str | Object | None = None
    response_format: Object | None = None
    reasoning_effort: str | None = None
    thinking: Object | None = None
    chat_template_kwargs: Object | None = None
    modalities: list[str] | None = None
    audio: Object | None = None
    prediction: Object | None = None
    web_search_options: Object | None = None
    verbosity: str | None = None
    # inert provider parameters (vLLM / Ollama sampling and templates)
    min_p: Number | None = None
    repetition_penalty: Number | None = None
    guided_json: Object | None = None


class EmbeddingRequest(_Common):
    input: str | list[str] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = Field(default=None, ge=1)


class ResponsesRequest(_OpenAI):
    """The OpenAI Responses body (``POST /v1/responses``)."""

    input: str | Objects
    instructions: str | None = None
    max_output_tokens: StrictInt | None = Field(default=None, ge=1)
    max_tool_calls: StrictInt | None = Field(default=None, ge=1)
    text: Object | None = None
    reasoning: Object | None = None
    include: list[str] | None = None
    truncation: str | None = None
    prompt: Object | None = None
    background: StrictBool | None = None
    previous_response_id: str | None = None
    conversation: str | Object | None = None


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | Objects


class CountTokensRequest(_Common):
    """The Anthropic ``/v1/messages/count_tokens`` body."""

    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | Objects | None = None
    tools: Objects | None = None
    tool_choice: Object | None = None
    thinking: Object | None = None


class MessagesRequest(CountTokensRequest):
    """The Anthropic Messages body (``POST /v1/messages``)."""

    max_tokens: StrictInt = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: StrictBool | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = None
    service_tier: str | None = None
    mcp_servers: Objects | None = None
    context_management: Object | None = None
