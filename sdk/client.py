"""Typed clients for the proxy: :class:`Gateway` (sync) and :class:`AsyncGateway`.

Both wrap the official ``openai`` client pointed at the proxy (``<root>/v1``) and
call models by alias only (``fast``, ``quality`` ...). Example::

    gateway = Gateway()                      # POOL_PROXY_URL, POOL_API_KEY
    reply = gateway.complete("fast", "Say hi")
    reply.text, reply.deployment, reply.cost, reply.usage.total_tokens

    with gateway.stream("fast", "Tell me a story") as stream:
        for delta in stream:
            print(delta, end="")
    stream.completion.tool_calls

    answer = gateway.complete_model("fast", "Extract the invoice", Invoice)

The environment is read only when ``base_url``/``api_key`` are not given.
Failures raise :mod:`sdk.errors`; transient ones are retried per :class:`RetryPolicy`.
"""

from __future__ import annotations

import os
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx
import openai
from openai.types.chat import ChatCompletionChunk
from pydantic import BaseModel

from sdk.errors import AuthError, ProviderUnavailableError, error_from_openai
from sdk.results import (
    Completion,
    EmbeddingResult,
    ResponseMeta,
    StreamAssembler,
    completion_from_response,
    embeddings_from_response,
)
from sdk.retries import RetryPolicy
from sdk.structured import DEFAULT_CORRECTIONS, structured_exchange

__all__ = [
    "DEFAULT_PROXY_URL",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_PROXY_URL",
    "AsyncCompletionStream",
    "AsyncGateway",
    "CompletionStream",
    "Gateway",
    "GatewaySettings",
    "Messages",
    "ToolSpec",
]

ENV_PROXY_URL = "POOL_PROXY_URL"
ENV_API_KEY = "POOL_API_KEY"
DEFAULT_PROXY_URL = "http://127.0.0.1:4000"
DEFAULT_TIMEOUT = 60.0  # seconds per HTTP request

Messages = str | Sequence[Mapping[str, Any]]
"""A user prompt, or OpenAI-format chat messages."""

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")


class ToolSpec(Protocol):
    """Anything offering an OpenAI tool schema (a :class:`sdk.tools.Tool`)."""

    def schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GatewaySettings:
    """Where the proxy is and which key to use. ``base_url`` is the proxy's root;
    a URL ending in ``/v1`` is accepted too."""

    base_url: str
    api_key: str

    @property
    def api_url(self) -> str:
        root = self.base_url.rstrip("/")
        return root if root.endswith("/v1") else f"{root}/v1"

    @classmethod
    def resolve(cls, base_url: str | None = None, api_key: str | None = None,
                env: Mapping[str, str] | None = None) -> GatewaySettings:
        """Explicit values first, then ``POOL_PROXY_URL`` / ``POOL_API_KEY``."""
        source = os.environ if env is None else env
        url = base_url or source.get(ENV_PROXY_URL) or DEFAULT_PROXY_URL
        key = api_key or source.get(ENV_API_KEY)
        if not key:
            raise AuthError(f"no API key: pass api_key= or set {ENV_API_KEY}")
        return cls(url, key)


def as_messages(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(message) for message in messages]


def _tool_schema(tool: ToolSpec | Mapping[str, Any]) -> dict[str, Any]:
    return dict(tool) if isinstance(tool, Mapping) else tool.schema()


def request_kwargs(alias: str, messages: Messages, *,
                   tools: Sequence[ToolSpec | Mapping[str, Any]] | None,
                   tags: Sequence[str] | None, user: str | None,
                   params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``chat.completions.create``."""
    kwargs: dict[str, Any] = {"model": alias, "messages": as_messages(messages), **params}
    if tools:
        kwargs["tools"] = [_tool_schema(tool) for tool in tools]
    if user is not None:
        kwargs["user"] = user
    if tags:
        extra = dict(kwargs.pop("extra_body", None) or {})
        extra["metadata"] = {**extra.get("metadata", {}), "tags": list(tags)}
        kwargs["extra_body"] = extra
    return kwargs


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _completion(raw: Any, alias: str, started: float) -> Completion:
    """A :class:`Completion` from an openai raw response (body and headers)."""
    return completion_from_response(raw.parse(), ResponseMeta.from_headers(raw.headers),
                                    alias=alias, latency_ms=_elapsed_ms(started))


def _embeddings(raw: Any, alias: str, started: float) -> EmbeddingResult:
    return embeddings_from_response(raw.parse(), ResponseMeta.from_headers(raw.headers),
                                    alias=alias, latency_ms=_elapsed_ms(started))


def _stream_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "stream": True, "stream_options": {"include_usage": True}}


def _finished(assembler: StreamAssembler, started: float) -> Completion:
    if assembler.finish_reason is None:
        raise ProviderUnavailableError("the stream ended before the model finished",
                                       request_id=assembler.meta.request_id)
    return assembler.completion(_elapsed_ms(started))


class CompletionStream:
    """Iterate for text deltas; then ``.completion`` is the assembled result
    (tool calls included). Use it as a context manager to release the connection."""

    def __init__(self, chunks: openai.Stream[ChatCompletionChunk], assembler: StreamAssembler,
                 started: float) -> None:
        self._chunks, self._assembler, self._started = chunks, assembler, started
        self._completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self._chunks:
                delta = self._assembler.add(chunk)
                if delta:
                    yield delta
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise ProviderUnavailableError(f"the stream broke: {exc}") from exc
        self._completion = _finished(self._assembler, self._started)

    @property
    def completion(self) -> Completion:
        """The whole result; reads the rest of the stream first if needed."""
        if self._completion is None:
            for _ in self:
                pass
        assert self._completion is not None
        return self._completion

    def close(self) -> None:
        self._chunks.close()

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncCompletionStream:
    """The async twin of :class:`CompletionStream` (``async for``, ``await s.result()``)."""

    def __init__(self, chunks: openai.AsyncStream[ChatCompletionChunk],
                 assembler: StreamAssembler, started: float) -> None:
        self._chunks, self._assembler, self._started = chunks, assembler, started
        self._completion: Completion | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._chunks:
                delta = self._assembler.add(chunk)
                if delta:
                    yield delta
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise ProviderUnavailableError(f"the stream broke: {exc}") from exc
        self._completion = _finished(self._assembler, self._started)

    async def result(self) -> Completion:
        """The whole result; reads the rest of the stream first if needed."""
        if self._completion is None:
            async for _ in self:
                pass
        assert self._completion is not None
        return self._completion

    async def close(self) -> None:
        await self._chunks.close()

    async def __aenter__(self) -> AsyncCompletionStream:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class AsyncStreamCall:
    """What :meth:`AsyncGateway.stream` returns: use it any of three ways::

        async for delta in gateway.stream("fast", "hi"): ...      # opened and closed for you
        async with gateway.stream("fast", "hi") as stream: ...    # then stream.result()
        stream = await gateway.stream("fast", "hi")               # close it yourself
    """

    def __init__(self, open_stream: Callable[[], Awaitable[AsyncCompletionStream]]) -> None:
        self._open = open_stream
        self._stream: AsyncCompletionStream | None = None

    def __await__(self) -> Generator[Any, None, AsyncCompletionStream]:
        return self._open().__await__()

    async def __aiter__(self) -> AsyncIterator[str]:
        async with self as stream:
            async for delta in stream:
                yield delta

    async def __aenter__(self) -> AsyncCompletionStream:
        self._stream = await self._open()
        return self._stream

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._stream is not None:
            await self._stream.close()


class _Base:
    def __init__(self, retry: RetryPolicy | None) -> None:
        self.retry = retry or RetryPolicy()

    @staticmethod
    def _settings(base_url: str | None, api_key: str | None) -> GatewaySettings:
        return GatewaySettings.resolve(base_url, api_key)


class Gateway(_Base):
    """Sync client. Pass ``client=`` to inject a configured ``openai.OpenAI``
    (tests use one on ``httpx.MockTransport``); its own retries are turned off."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 client: openai.OpenAI | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None) -> None:
        super().__init__(retry)
        if client is None:
            settings = self._settings(base_url, api_key)
            client = openai.OpenAI(base_url=settings.api_url, api_key=settings.api_key,
                                   timeout=timeout, max_retries=0)
        self.client = client.with_options(max_retries=0)

    def _call(self, alias: str, fn: Callable[[], T]) -> T:
        def mapped() -> T:
            try:
                return fn()
            except openai.OpenAIError as exc:
                raise error_from_openai(exc, alias=alias) from exc
        return self.retry.retrying()(mapped)

    def complete(self, alias: str, messages: Messages, *,
                 tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
                 tags: Sequence[str] | None = None, user: str | None = None,
                 **params: Any) -> Completion:
        """One chat completion from the model group ``alias``."""
        kwargs = request_kwargs(alias, messages, tools=tools, tags=tags, user=user, params=params)
        started = time.perf_counter()
        raw = self._call(alias, lambda: self.client.chat.completions.with_raw_response.create(
            **kwargs))
        return _completion(raw, alias, started)

    def stream(self, alias: str, messages: Messages, *,
               tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
               tags: Sequence[str] | None = None, user: str | None = None,
               **params: Any) -> CompletionStream:
        """Start a streamed completion (the request is retried, the stream is not)."""
        kwargs = request_kwargs(alias, messages, tools=tools, tags=tags, user=user, params=params)
        started = time.perf_counter()
        raw = self._call(alias, lambda: self.client.chat.completions.with_raw_response.create(
            **_stream_kwargs(kwargs)))
        assembler = StreamAssembler(alias, ResponseMeta.from_headers(raw.headers))
        return CompletionStream(raw.parse(), assembler, started)

    def aliases(self) -> list[str]:
        """The model aliases this key may call (``GET /v1/models``), sorted."""
        return sorted({model.id for model in self._call("", lambda: list(
            self.client.models.list()))})

    def embed(self, alias: str, texts: Sequence[str]) -> EmbeddingResult:
        started = time.perf_counter()
        raw = self._call(alias, lambda: self.client.embeddings.with_raw_response.create(
            model=alias, input=list(texts)))
        return _embeddings(raw, alias, started)

    def complete_model(self, alias: str, messages: Messages, output: type[ModelT], *,
                       corrections: int = DEFAULT_CORRECTIONS, **params: Any) -> ModelT:
        """The reply parsed into ``output``, re-asking up to ``corrections`` times
        (see :mod:`sdk.structured`); raises :class:`~sdk.errors.StructuredOutputError`."""
        exchange = structured_exchange(as_messages(messages), output, corrections)
        try:
            request = next(exchange)
            while True:
                request = exchange.send(self.complete(alias, request, **params))
        except StopIteration as done:
            result: ModelT = done.value
            return result

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncGateway(_Base):
    """Async client, the same API as :class:`Gateway` with ``await``
    (``stream`` returns an :class:`AsyncCompletionStream`)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 client: openai.AsyncOpenAI | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None) -> None:
        super().__init__(retry)
        if client is None:
            settings = self._settings(base_url, api_key)
            client = openai.AsyncOpenAI(base_url=settings.api_url, api_key=settings.api_key,
                                        timeout=timeout, max_retries=0)
        self.client = client.with_options(max_retries=0)

    async def _call(self, alias: str, fn: Callable[[], Awaitable[T]]) -> T:
        async def mapped() -> T:
            try:
                return await fn()
            except openai.OpenAIError as exc:
                raise error_from_openai(exc, alias=alias) from exc
        return await self.retry.async_retrying()(mapped)

    async def complete(self, alias: str, messages: Messages, *,
                       tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
                       tags: Sequence[str] | None = None, user: str | None = None,
                       **params: Any) -> Completion:
        kwargs = request_kwargs(alias, messages, tools=tools, tags=tags, user=user, params=params)
        started = time.perf_counter()
        raw = await self._call(alias, lambda: self.client.chat.completions.with_raw_response
                               .create(**kwargs))
        return _completion(raw, alias, started)

    def stream(self, alias: str, messages: Messages, *,
               tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
               tags: Sequence[str] | None = None, user: str | None = None,
               **params: Any) -> AsyncStreamCall:
        """A streamed completion: ``async for delta in gateway.stream(...)``, or
        ``async with gateway.stream(...) as s``, or ``s = await gateway.stream(...)``
        (see :class:`AsyncStreamCall`)."""
        kwargs = request_kwargs(alias, messages, tools=tools, tags=tags, user=user, params=params)

        async def open_stream() -> AsyncCompletionStream:
            started = time.perf_counter()
            raw = await self._call(alias, lambda: self.client.chat.completions
                                   .with_raw_response.create(**_stream_kwargs(kwargs)))
            assembler = StreamAssembler(alias, ResponseMeta.from_headers(raw.headers))
            return AsyncCompletionStream(raw.parse(), assembler, started)
        return AsyncStreamCall(open_stream)

    async def aliases(self) -> list[str]:
        """The model aliases this key may call (``GET /v1/models``), sorted."""
        async def listed() -> list[str]:
            return [model.id async for model in self.client.models.list()]
        return sorted(set(await self._call("", listed)))

    async def embed(self, alias: str, texts: Sequence[str]) -> EmbeddingResult:
        started = time.perf_counter()
        raw = await self._call(alias, lambda: self.client.embeddings.with_raw_response.create(
            model=alias, input=list(texts)))
        return _embeddings(raw, alias, started)

    async def complete_model(self, alias: str, messages: Messages, output: type[ModelT], *,
                             corrections: int = DEFAULT_CORRECTIONS, **params: Any) -> ModelT:
        exchange = structured_exchange(as_messages(messages), output, corrections)
        try:
            request = next(exchange)
            while True:
                request = exchange.send(await self.complete(alias, request, **params))
        except StopIteration as done:
            result: ModelT = done.value
            return result

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
