"""Running the tool calls a model asked for.

A call never raises: an unknown tool, arguments that are not JSON, arguments that
fail validation, or an exception inside the tool all become an ``"Error: ..."``
text that goes back to the model as the tool's result, and ``ok=False`` in the
:class:`ToolCallRecord`.

What the model reads of a tool's exception is *redacted* (an exception's text can
hold a connection string, a token, a customer's data, and it goes to the provider):
:func:`short_error` gives the exception's type and the first line of its message cut
to ``SHORT_ERROR_CHARS``; a :class:`~sdk.tools.ToolError` (raised on purpose to tell
the model something) passes whole. ``error_text=`` (``Agent(tool_error_text=...)``)
takes another function, e.g. :func:`error_type_only`. The record's ``error`` keeps
the full text for the caller (it never goes to the model).

Plug points (``Protocol``\\ s):

* :class:`ToolRegistry`: where the agent finds tools by name (:class:`Toolbox`
  is the default, built from a list of :class:`~sdk.tools.Tool`).
* :class:`ToolResultCache`: finished calls by tool call id. Before running a call
  the runner asks ``get(call_id)``; a hit (the whole :class:`ToolCallRecord`: the
  result *and* whether the call succeeded) is used instead of running the tool
  again (``cached=True``), and every fresh record is ``put``. A Dramatiq worker that
  redelivers a message uses it so that side effects happen once.
* :class:`ToolCallClaims`: a cache that also *claims* a call durably right before
  it runs (``claim(call)``: ``None`` = claimed, run it; a record = finished
  meanwhile, use it; an exception = this run may not go on, it propagates). The
  claim is what lets a second delivery, or the next owner of a dead worker's run,
  know that the call was started (see the worker's docs/workers.md).
* :class:`AsyncToolCallClaims`: the same with coroutine methods (``aget``,
  ``aput``, ``aclaim``), awaited by :func:`arun_tool_call` (a cache backed by a
  database need not block the event loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from sdk.errors import ToolError
from sdk.results import ToolCall
from sdk.tools import Tool, ToolContext, format_result, tool_context

__all__ = [
    "DEFAULT_MAX_TOOL_THREADS",
    "SHORT_ERROR_CHARS",
    "AsyncToolCallClaims",
    "ErrorText",
    "InMemoryToolResultCache",
    "ToolCallClaims",
    "ToolCallRecord",
    "ToolRegistry",
    "ToolResultCache",
    "Toolbox",
    "arun_tool_call",
    "arun_tool_calls",
    "declined_record",
    "error_type_only",
    "run_tool_call",
    "run_tool_calls",
    "short_error",
]

DEFAULT_MAX_TOOL_THREADS = 8  # parallel tool calls run on at most this many threads (sync)
ERROR_PREFIX = "Error:"  # starts the result text of every failed call
SHORT_ERROR_CHARS = 120  # of a tool exception's message, sent to the model
TOOL_ERROR_CHARS = 1000  # of a ToolError's message

ErrorText = Callable[[BaseException], str]
"""What the model reads of a tool's exception."""


def short_error(exc: BaseException) -> str:
    """The default :data:`ErrorText`: the type and the first line of the message, cut."""
    if isinstance(exc, ToolError):
        return str(exc)[:TOOL_ERROR_CHARS]
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > SHORT_ERROR_CHARS:
        first = first[:SHORT_ERROR_CHARS] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def error_type_only(exc: BaseException) -> str:
    """An :data:`ErrorText` that tells the model the exception's type and nothing else
    (a :class:`~sdk.tools.ToolError` still passes)."""
    return str(exc)[:TOOL_ERROR_CHARS] if isinstance(exc, ToolError) else type(exc).__name__


@runtime_checkable
class ToolRegistry(Protocol):
    """Tools by name, and their schemas for the request."""

    def get(self, name: str) -> Tool | None: ...

    def schemas(self) -> list[dict[str, Any]]: ...


class ToolResultCache(Protocol):
    """Finished tool calls by tool call id (e.g. in a database, for at-least-once
    workers): ``put`` keeps the whole record, ``get`` gives it back (``ok`` included:
    a tool may well return text that starts with ``"Error:"``)."""

    def get(self, call_id: str) -> ToolCallRecord | None: ...

    def put(self, record: ToolCallRecord) -> None: ...


@runtime_checkable
class ToolCallClaims(Protocol):
    """A :class:`ToolResultCache` that claims a call before it runs (see the module
    docstring); ``put`` then records the claimed call's result."""

    def get(self, call_id: str) -> ToolCallRecord | None: ...

    def put(self, record: ToolCallRecord) -> None: ...

    def claim(self, call: ToolCall) -> ToolCallRecord | None: ...


@runtime_checkable
class AsyncToolCallClaims(Protocol):
    """:class:`ToolCallClaims` with coroutine methods, for :func:`arun_tool_call`."""

    async def aget(self, call_id: str) -> ToolCallRecord | None: ...

    async def aput(self, record: ToolCallRecord) -> None: ...

    async def aclaim(self, call: ToolCall) -> ToolCallRecord | None: ...


class Toolbox:
    """The default :class:`ToolRegistry`: a fixed set of tools with unique names."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self._tools:
                raise ValueError(f"two tools are named {item.name!r}")
            self._tools[item.name] = item

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [item.schema() for item in self._tools.values()]

    def names(self) -> list[str]:
        return list(self._tools)


@dataclass
class InMemoryToolResultCache:
    """A :class:`ToolResultCache` in a dict (tests, single process)."""

    records: dict[str, ToolCallRecord] = field(default_factory=dict)

    def get(self, call_id: str) -> ToolCallRecord | None:
        return self.records.get(call_id)

    def put(self, record: ToolCallRecord) -> None:
        self.records[record.call_id] = record


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call as handled: ``result`` is the text the model received.

    ``approved`` is ``None`` for tools without confirmation, else the human's
    answer; a declined call was never run. ``cached`` means the result came from
    the :class:`ToolResultCache` instead of running the tool.
    """

    call_id: str
    name: str
    arguments: Mapping[str, Any]
    result: str
    ok: bool
    duration_ms: float = 0.0
    error: str | None = None
    approved: bool | None = None
    cached: bool = False

    def to_message(self) -> dict[str, Any]:
        """The ``tool`` message answering the call."""
        return {"role": "tool", "tool_call_id": self.call_id, "content": self.result}


def _failure(call: ToolCall, error: str, started: float) -> ToolCallRecord:
    return ToolCallRecord(call.id, call.name, call.arguments, f"{ERROR_PREFIX} {error}", ok=False,
                          duration_ms=_ms(started), error=error)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _validation_text(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
             for e in exc.errors(include_url=False)]
    return "; ".join(parts)


def _resolve(registry: ToolRegistry, call: ToolCall, started: float
             ) -> Tool | ToolCallRecord:
    """The tool to run, or the failure record when the call cannot be run."""
    found = registry.get(call.name)
    if found is None:
        names = ", ".join(s["function"]["name"] for s in registry.schemas())
        return _failure(call, f"there is no tool named {call.name!r}; available: {names}",
                        started)
    if call.parse_error is not None:
        return _failure(call, f"could not read the arguments for {call.name}: "
                              f"{call.parse_error}. Call it again with a JSON object.", started)
    return found


def _prepare(registry: ToolRegistry, call: ToolCall, cache: ToolResultCache | None,
             approved: bool | None, started: float
             ) -> ToolCallRecord | tuple[Tool, dict[str, Any]]:
    """A final record (cached, or failed before running), or the tool and its arguments."""
    hit = cache.get(call.id) if cache is not None else None
    if hit is not None:
        return dataclasses.replace(hit, approved=approved, cached=True)
    found = _resolve(registry, call, started)
    if isinstance(found, ToolCallRecord):
        return _remember(found, cache)
    try:
        kwargs = found.validate(call.arguments)
    except ValidationError as exc:
        return _remember(_failure(call, f"invalid arguments for {call.name}: "
                                        f"{_validation_text(exc)}. Fix them and call the tool "
                                        "again.", started), cache)
    if isinstance(cache, ToolCallClaims):
        finished = cache.claim(call)
        if finished is not None:
            return dataclasses.replace(finished, approved=approved, cached=True)
    return found, kwargs


def _finish(call: ToolCall, outcome: Any, started: float, approved: bool | None,
            cache: ToolResultCache | None, error_text: ErrorText = short_error
            ) -> ToolCallRecord:
    if isinstance(outcome, Exception):
        record = dataclasses.replace(
            _failure(call, f"{call.name} failed: {error_text(outcome)}", started),
            error=f"{call.name} failed: {type(outcome).__name__}: {outcome}")
    else:
        record = ToolCallRecord(call.id, call.name, call.arguments, format_result(outcome),
                                ok=True, duration_ms=_ms(started), approved=approved)
    return _remember(record, cache)


def _remember(record: ToolCallRecord, cache: ToolResultCache | None) -> ToolCallRecord:
    if cache is not None:
        cache.put(record)
    return record


def run_tool_call(registry: ToolRegistry, call: ToolCall, cache: ToolResultCache | None = None,
                  approved: bool | None = None, run_id: str | None = None,
                  error_text: ErrorText = short_error) -> ToolCallRecord:
    """Run one call (see the module docstring); never raises for a tool's failure."""
    started = time.perf_counter()
    prepared = _prepare(registry, call, cache, approved, started)
    if isinstance(prepared, ToolCallRecord):
        return prepared
    found, kwargs = prepared
    try:
        with tool_context(ToolContext(call.id, call.name, run_id)):
            outcome = found.run(kwargs)
    except Exception as exc:  # any tool failure goes back to the model
        outcome = exc
    return _finish(call, outcome, started, approved, cache, error_text)


async def arun_tool_call(registry: ToolRegistry, call: ToolCall,
                         cache: ToolResultCache | AsyncToolCallClaims | None = None,
                         approved: bool | None = None, run_id: str | None = None,
                         error_text: ErrorText = short_error) -> ToolCallRecord:
    """The async twin of :func:`run_tool_call` (an :class:`AsyncToolCallClaims` cache
    is awaited)."""
    if isinstance(cache, AsyncToolCallClaims):
        return await _arun_claimed(registry, call, cache, approved, run_id, error_text)
    started = time.perf_counter()
    prepared = _prepare(registry, call, cache, approved, started)
    if isinstance(prepared, ToolCallRecord):
        return prepared
    found, kwargs = prepared
    outcome = await _acall(found, kwargs, call, run_id)
    return _finish(call, outcome, started, approved, cache, error_text)


async def _acall(found: Tool, kwargs: dict[str, Any], call: ToolCall,
                 run_id: str | None) -> Any:
    try:
        with tool_context(ToolContext(call.id, call.name, run_id)):
            return await found.arun(kwargs)
    except Exception as exc:  # any tool failure goes back to the model
        return exc


async def _arun_claimed(registry: ToolRegistry, call: ToolCall, cache: AsyncToolCallClaims,
                        approved: bool | None, run_id: str | None,
                        error_text: ErrorText) -> ToolCallRecord:
    started = time.perf_counter()
    hit = await cache.aget(call.id)
    if hit is not None:
        return dataclasses.replace(hit, approved=approved, cached=True)
    prepared = _prepare(registry, call, None, approved, started)
    if isinstance(prepared, ToolCallRecord):  # failed before running
        await cache.aput(prepared)
        return prepared
    finished = await cache.aclaim(call)
    if finished is not None:
        return dataclasses.replace(finished, approved=approved, cached=True)
    found, kwargs = prepared
    record = _finish(call, await _acall(found, kwargs, call, run_id), started, approved, None,
                     error_text)
    await cache.aput(record)
    return record


def run_tool_calls(registry: ToolRegistry, calls: Sequence[ToolCall],
                   cache: ToolResultCache | None = None, approved: bool | None = None,
                   run_id: str | None = None,
                   max_threads: int = DEFAULT_MAX_TOOL_THREADS,
                   error_text: ErrorText = short_error) -> list[ToolCallRecord]:
    """Run calls concurrently on a thread pool; records in the calls' order."""
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(len(calls), max_threads))) as pool:
        return list(pool.map(
            lambda c: run_tool_call(registry, c, cache, approved, run_id, error_text), calls))


async def arun_tool_calls(registry: ToolRegistry, calls: Sequence[ToolCall],
                          cache: ToolResultCache | AsyncToolCallClaims | None = None,
                          approved: bool | None = None, run_id: str | None = None,
                          error_text: ErrorText = short_error) -> list[ToolCallRecord]:
    """Run calls concurrently with ``asyncio.gather``; records in the calls' order."""
    return list(await asyncio.gather(
        *(arun_tool_call(registry, call, cache, approved, run_id, error_text)
          for call in calls)))


def declined_record(call: ToolCall, note: str | None) -> ToolCallRecord:
    """The result the model reads for a call the human declined (never run)."""
    text = f"The user declined this action; {call.name} was not run."
    if note:
        text += f" Note from the user: {note}"
    return ToolCallRecord(call.id, call.name, call.arguments, text, ok=False,
                          error="declined", approved=False)
