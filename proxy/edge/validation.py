"""Request bodies checked at the edge, before anything reaches a provider.

Called from ``custom_auth`` (:mod:`proxy.plugin.auth`) once the key is known, for the
model routes (:data:`SCHEMAS`: chat completions, embeddings, the Responses API,
Anthropic Messages and its token count; with and without ``/v1``):

- a body over ``POOL_MAX_REQUEST_MB`` (default 4 MB) is refused with **413**;
- the body must be a JSON object; the fields the route documents must have the
  right JSON type (``messages`` a non-empty list of ``{role, content}`` objects,
  ``max_tokens`` an integer ...): else **400** with a message naming the field;
- credentials, upstream routing and price fields (``api_key``, ``api_base``,
  ``aws_*`` ...) and the router's and logger's controls (``num_retries``,
  ``fallbacks``, ``mock_*``, ``no-log`` ...; see :mod:`proxy.edge.credentials`) are refused
  with **400** naming the field, at the top level and inside ``metadata``/``extra_body``;
- the top level is **closed**: a field the route's schema does not list is refused
  with **400** naming it. LiteLLM reads more than the OpenAI/Anthropic schemas (its
  own parameters, ``extra_body`` merged into the provider call after every check, and
  unknown fields passed to the provider as is, where ``options.num_predict``,
  ``min_tokens`` or ``ignore_eos`` would outrun the caps), so only documented fields and
  a few inert provider ones (``top_k``, ``min_p``, ``repetition_penalty``,
  ``chat_template_kwargs``, ``guided_json``) reach it. The list, field by field, with what
  LiteLLM does with each: ``docs/request-rules.md``;
- ``metadata`` may hold ``tags`` (a list of strings) and ``user_id`` (Anthropic's) only:
  LiteLLM reads many other keys as controls (``model_info``, ``deployment``,
  ``disable_fallbacks``, ``guardrails``, ``spend_logs_metadata`` ...);
- the Responses API is stateless here (no response is kept): ``store: true``,
  ``previous_response_id``, ``conversation`` and ``background: true`` are refused
  with **400** saying to send the whole conversation in ``input``.

Without this, LiteLLM forwarded wrong types to the provider (200 or a 500 from
deep inside the call) and read bodies of any size.

A body that is valid JSON but not an object (``[...]``, ``"x"``) crashed LiteLLM
in its own pre-auth checks, before ``custom_auth`` runs (a bare 500); the narrow
guard :func:`install_body_guard` (installed when LiteLLM loads ``proxy.plugin.auth``)
makes LiteLLM treat it as unparsable JSON: a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from litellm.proxy._types import ProxyErrorTypes, ProxyException
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from proxy.edge.credentials import find_refused
from proxy.errors import RequestRefused

__all__ = ["SCHEMAS", "BadRequest", "TooLarge", "check_body", "not_an_object",
           "validated_route"]

Number = StrictInt | float
Stop = str | list[str] | None
Object = dict[str, Any]
Objects = list[dict[str, Any]]
REFUSED = "not allowed in the request body (credentials, upstream routing, prices, " \
          "retries, fallbacks, caching and logging are set by the gateway)"
STATELESS = "is not supported: this gateway keeps no responses; send the whole conversation " \
            "in `input` (and `store: false` or no `store`)"


class BadRequest(ProxyException, RequestRefused):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message=message, type=ProxyErrorTypes.bad_request_error.value,
                         param=param, code=400)


def not_an_object() -> BadRequest:
    """The 400 for a JSON body that is not an object (the edge refuses one before LiteLLM
    parses it with the same message, :mod:`proxy.edge.objects`)."""
    return BadRequest("the request body must be a JSON object")


class TooLarge(ProxyException, RequestRefused):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(message=f"request body too large: {size / 1e6:.1f} MB, the limit is "
                                 f"{limit / 1e6:.1f} MB (POOL_MAX_REQUEST_MB)",
                         type="request_too_large", param=None, code=413)


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


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | Objects | None = None


class ChatRequest(_Sampling):
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
    top_logprobs: StrictInt | None = None
    seed: StrictInt | None = None
    tool_choice: str | Object | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: Objects | None = None
    function_call: str | Object | None = None
    response_format: Object | None = None
    store: StrictBool | None = None
    reasoning_effort: str | None = None
    thinking: Object | None = None
    chat_template_kwargs: Object | None = None
    modalities: list[str] | None = None
    audio: Object | None = None
    prediction: Object | None = None
    web_search_options: Object | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # inert provider parameters (vLLM / Ollama sampling and templates)
    min_p: Number | None = None
    repetition_penalty: Number | None = None
    guided_json: Object | None = None


class EmbeddingRequest(_Common):
    input: str | list[str] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = Field(default=None, ge=1)


class ResponsesRequest(_Sampling):
    """The OpenAI Responses body (``POST /v1/responses``)."""

    input: str | Objects
    instructions: str | None = None
    max_output_tokens: StrictInt | None = Field(default=None, ge=1)
    max_tool_calls: StrictInt | None = Field(default=None, ge=1)
    top_logprobs: StrictInt | None = None
    tool_choice: str | Object | None = None
    parallel_tool_calls: StrictBool | None = None
    text: Object | None = None
    reasoning: Object | None = None
    include: list[str] | None = None
    truncation: str | None = None
    prompt: Object | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    store: StrictBool | None = None
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


def _routes(path: str, schema: type[BaseModel]) -> dict[str, type[BaseModel]]:
    return {f"{prefix}{path}": schema for prefix in ("", "/v1", "/openai/v1")}


SCHEMAS: dict[str, type[BaseModel]] = {
    **_routes("/chat/completions", ChatRequest), **_routes("/embeddings", EmbeddingRequest),
    **_routes("/responses", ResponsesRequest), **_routes("/messages", MessagesRequest),
    **_routes("/messages/count_tokens", CountTokensRequest),
}


def validated_route(route: str) -> bool:
    return route in SCHEMAS


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


EXTRA_BODY = ("is not accepted: send its fields at the top level of the body (the OpenAI "
              "SDK's extra_body= argument already does), where each is checked")
METADATA = ("is not accepted: metadata may hold `tags` and `user_id` only (LiteLLM reads its "
            "other keys as routing, pricing and logging controls)")
NOT_ACCEPTED = ("is not a field this gateway accepts on {route} (documented OpenAI/Anthropic "
                "fields only: LiteLLM would pass an unknown field to the provider unchecked; "
                "see docs/request-rules.md)")


def _refusal(error: ValidationError, route: str) -> BadRequest:
    """The 400 for a body the schema refuses: an unknown field named as such."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        why = (EXTRA_BODY if where == "extra_body" else METADATA if where.startswith("metadata.")
               else NOT_ACCEPTED.format(route=route))
        return BadRequest(f"invalid request: `{where}` {why}", param=where)
    return BadRequest(f"invalid request: {_describe(error)}",
                      param=str(first["loc"][0]) if first["loc"] else None)


def _stateful_field(parsed: BaseModel) -> str | None:
    """The Responses field asking for state this gateway does not keep, if any."""
    if not isinstance(parsed, ResponsesRequest):
        return None
    if parsed.store:
        return "store: true"
    if parsed.background:
        return "background: true"
    for name in ("previous_response_id", "conversation"):
        if getattr(parsed, name) is not None:
            return name
    return None


def check_body(route: str, body: Any, size: int | None, max_bytes: int) -> None:
    """Raise :class:`TooLarge` or :class:`BadRequest` for a body ``route`` must refuse."""
    schema = SCHEMAS.get(route)
    if schema is None:
        return
    if size is not None and size > max_bytes:
        raise TooLarge(size, max_bytes)
    if not isinstance(body, Mapping):
        raise not_an_object()
    refused = find_refused(body)
    if refused is not None:
        raise BadRequest(f"invalid request: {refused}: {REFUSED}", param=refused)
    try:
        parsed = schema.model_validate(body)
    except ValidationError as exc:
        raise _refusal(exc, route) from None
    stateful = _stateful_field(parsed)
    if stateful is not None:
        raise BadRequest(f"invalid request: {stateful} {STATELESS}",
                         param=stateful.split(":")[0])
