"""Request bodies checked at the edge, before anything reaches a provider.

Called from ``custom_auth`` (:mod:`proxy.auth`) once the key is known, for the
chat-completion and embedding routes:

- a body over ``POOL_MAX_REQUEST_MB`` (default 4 MB) is refused with **413**;
- the body must be a JSON object of the OpenAI shape: known fields only (an
  unknown one, e.g. a client-supplied ``api_key`` or ``aws_secret_access_key``,
  is refused), each of the right type (``messages`` a non-empty list of
  ``{role, content}`` objects, ``max_tokens`` an integer ...): else **400** with
  a message naming the field.

Without this, LiteLLM forwarded wrong types and unknown fields to the provider
(200 or a 500 from deep inside the call) and read bodies of any size.

A body that is valid JSON but not an object (``[...]``, ``"x"``) crashed LiteLLM
in its own pre-auth checks, before ``custom_auth`` runs (a bare 500); the narrow
guard :func:`install_body_guard` (installed when LiteLLM loads ``proxy.auth``)
makes LiteLLM treat it as unparsable JSON: a 400.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from litellm.proxy._types import ProxyErrorTypes, ProxyException
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

__all__ = ["BadRequest", "TooLarge", "check_body", "install_body_guard", "validated_route"]

log = logging.getLogger("llm_pool.validation")

Number = StrictInt | float
Stop = str | list[str] | None


class BadRequest(ProxyException):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message=message, type=ProxyErrorTypes.bad_request_error.value,
                         param=param, code=400)


class TooLarge(ProxyException):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(message=f"request body too large: {size / 1e6:.1f} MB, the limit is "
                                 f"{limit / 1e6:.1f} MB (POOL_MAX_REQUEST_MB)",
                         type="request_too_large", param=None, code=413)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The OpenAI chat-completion body (``extra`` forbidden)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: Number | None = None
    top_p: Number | None = None
    n: StrictInt | None = Field(default=None, ge=1)
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None
    stop: Stop = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    logit_bias: dict[str, Number] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    seed: StrictInt | None = None
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None  # tags travel here (see sdk.client)
    store: StrictBool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[str] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = Field(default=None, ge=1)
    user: str | None = None
    metadata: dict[str, Any] | None = None


SCHEMAS: dict[str, type[BaseModel]] = {
    "/chat/completions": ChatRequest, "/v1/chat/completions": ChatRequest,
    "/embeddings": EmbeddingRequest, "/v1/embeddings": EmbeddingRequest,
}


def validated_route(route: str) -> bool:
    return route in SCHEMAS


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        what = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {what}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def check_body(route: str, body: Any, size: int | None, max_bytes: int) -> None:
    """Raise :class:`TooLarge` or :class:`BadRequest` for a body ``route`` must refuse."""
    schema = SCHEMAS.get(route)
    if schema is None:
        return
    if size is not None and size > max_bytes:
        raise TooLarge(size, max_bytes)
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    try:
        schema.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        raise BadRequest(f"invalid request: {_describe(exc)}",
                         param=str(first[0]) if first else None) from None


# ----------------------------------------------------------------- non-object bodies

Reader = Callable[..., Awaitable[tuple[Any, Exception | None]]]
READER = "_read_request_body_deferring_parse_failure"


def _guarded(reader: Reader) -> Reader:
    @functools.wraps(reader)
    async def guarded(*args: Any, **kwargs: Any) -> tuple[Any, Exception | None]:
        body, failure = await reader(*args, **kwargs)
        if failure is None and not isinstance(body, dict):
            return {}, BadRequest("the request body must be a JSON object")
        return body, failure
    guarded.__dict__["pool_guarded"] = True
    return guarded


def install_body_guard() -> bool:
    """Make LiteLLM treat a JSON body that is not an object like unparsable JSON (a
    400 after auth) instead of calling ``.get`` on it (a bare 500). False when this
    LiteLLM has no such reader (the hostile-input tests would then fail)."""
    try:
        from litellm.proxy.auth import user_api_key_auth as module
    except ImportError:  # pragma: no cover - another LiteLLM layout
        return False
    reader = getattr(module, READER, None)
    if reader is None:
        log.warning("validation: LiteLLM has no %s; non-object JSON bodies are not guarded",
                    READER)
        return False
    if not getattr(reader, "pool_guarded", False):
        setattr(module, READER, _guarded(reader))
    return True
