"""One run or resume of a message: its events (each appended once) and its audit rows.

Audit rule: every LLM call that reached the gateway has a row in ``audit_llm_calls``,
a redelivered run's calls included. Each request carries its own call id (the
proxy's call id, the key of its spend row; see :class:`sdk.LLMCallStarted`); the
id is written to ``llm_journal`` *before* the request is sent, and the audit row's
``call_key`` is ``<message id>:llm:<call id>``. A worker killed while a call is in
flight leaves a journal row without an audit row: the redelivered run audits it
as ``interrupted`` (:meth:`~worker.db.WorkerDB.audit_interrupted`) before it starts.
For the worker's traffic, audit rows and the gateway's spend rows match one to one.

Tool calls (see docs/workers.md): the turn is the agent's :class:`~sdk.ToolCallClaims`.
A call is claimed in ``audit_tool_calls`` (``running``, ``claimed_by`` = the run's
lease token) right before it runs, only while the run's lease is held, and its result
recorded after; a finished call's record is reused instead of running it again. A
*fresh* run (no delivery of its message ever journaled an LLM call, so none can have
recorded a tool call: a tool call follows the LLM answer that asked for it) skips
the look-up before the claim (:meth:`Turn.aget`): one PostgreSQL round trip and one
thread hop fewer per tool call; the claim itself still finds a finished call.

Thread hops (each costs the worker CPU: GIL hand-offs, wake-ups): in a plain run
(``defer``; not a resume, whose resume store finishes before the run's last hop),
the events that only report (:class:`~sdk.LLMCallFinished`: its audit row and
``llm_call`` event; :class:`~sdk.ToolCalled`) are queued and written, in order, at
the start of the turn's next hop: the journal row of the next LLM call, a tool
claim, or the run's end (:meth:`Turn.flush`, called by the service before it stores
the outcome). Nothing that must happen *before* a step is deferred: the journal row
before its request, the claim before its tool, the tool's result right after it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sdk import (
    AgentEvent,
    ConfirmationRequired,
    LLMCallFinished,
    LLMCallStarted,
    TextDelta,
    ToolCall,
    ToolCalled,
    ToolCallRecord,
)
from worker.counters import UNKNOWN, Counters
from worker.db import WorkerDB
from worker.lease import Lease
from worker.models import Event, EventType
from worker.redis_store import RedisStore

__all__ = ["Emitter", "Turn"]

log = logging.getLogger(__name__)

T = TypeVar("T")


async def off_loop(executor: Executor | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on ``executor`` (the worker's bounded I/O threads), awaited: the
    event loop goes on with other conversations meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(
        executor, functools.partial(fn, *args))


@dataclass
class Emitter:
    """Appends a message's events in order, each exactly once across redeliveries."""

    store: RedisStore
    conversation_id: str
    message_id: str
    phase: str
    stream: str | None = None
    seq: int = 0

    def __call__(self, kind: EventType, data: dict[str, Any] | None = None) -> bool:
        """Append the next event; a ``reply`` has one fixed slot per phase, so a
        re-sent reply (after a crash between storing and sending it) is deduplicated.
        False when the event was appended already (by an earlier run of the message)."""
        self.seq += 1
        return self.once(kind, data, "reply" if kind == "reply" else str(self.seq))

    @property
    def decision_id(self) -> str | None:
        """The decision whose resumed run this is (phase ``confirm:<id>``), if any."""
        return self.phase.removeprefix("confirm:") if self.phase.startswith("confirm:") \
            else None

    def once(self, kind: EventType, data: dict[str, Any] | None, slot: str) -> bool:
        """Append an event in its own ``slot`` of this phase (outside the sequence)."""
        event = Event(type=kind, conversation_id=self.conversation_id,
                      message_id=self.message_id, data=data or {})
        marker = f"{self.phase}:{slot}"
        added = self.store.append_event(event, marker)
        if self.stream and kind == "reply":
            self.store.append_event(event, marker, stream=self.stream)
        return added


@dataclass
class Turn:
    """The context of one run or resume, and the sink for the agent's events."""

    db: WorkerDB
    emit: Emitter
    tenant: str
    conversation_id: str
    agent_id: str
    message_id: str
    alias: str
    decisions: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # tools approved for the rest of the run (Approve.for_run): name -> who approved
    approved_for_run: dict[str, str | None] = field(default_factory=dict)
    started: str | None = None  # the call id of the LLM request in flight
    counters: Counters = field(default_factory=Counters)
    tool_names: frozenset[str] = frozenset()  # the agent's tools (metric labels)
    lease: Lease | None = None  # the run's lease (None: unit tests without Redis)
    io: Executor | None = None  # where the async methods run the sync writes
    # no delivery of the message journaled an LLM call before this one started (set by
    # the service from begin_run): no tool call of it can be recorded but this turn's own
    fresh: bool = False
    written: set[str] = field(default_factory=set)  # tool call ids this turn wrote
    defer: bool = False  # queue the reporting events for the next hop (module docstring)
    deferred: collections.deque[AgentEvent] = field(default_factory=collections.deque)
    flushing: threading.Lock = field(default_factory=threading.Lock)

    # -- async twins (the agent's AsyncToolCallClaims and async on_event): the same
    # PostgreSQL/Redis work, on the bounded I/O threads instead of the event loop
    async def aget(self, call_id: str) -> ToolCallRecord | None:
        if self.fresh and call_id not in self.written:
            return None  # nothing recorded it: no round trip (see the module docstring)
        return await off_loop(self.io, self.get, call_id)

    async def aput(self, record: ToolCallRecord) -> None:
        await off_loop(self.io, self.after_flush, self.put, record)

    async def aclaim(self, call: ToolCall) -> ToolCallRecord | None:
        return await off_loop(self.io, self.after_flush, self.claim, call)

    async def aon_event(self, event: AgentEvent) -> None:
        if self.defer and isinstance(event, (LLMCallFinished, ToolCalled)):
            self.deferred.append(event)  # written at the start of the next hop
            return
        await off_loop(self.io, self.after_flush, self.on_event, event)

    def flush(self) -> None:
        """Write the deferred events, in order (one flusher at a time: a run's tool
        calls are claimed concurrently)."""
        with self.flushing:
            while self.deferred:
                self.on_event(self.deferred.popleft())

    def after_flush(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` after :meth:`flush` (one hop for both)."""
        self.flush()
        return fn(*args)

    # -- the ToolResultCache protocol, backed by audit_tool_calls (its outcome is the
    # record's ok: the result text says nothing about it)
    def get(self, call_id: str) -> ToolCallRecord | None:
        row = self.db.tool_result(self.conversation_id, call_id)
        if row is None:
            return None
        return ToolCallRecord(call_id, str(row["tool_name"]), dict(row["arguments"]),
                              str(row["result"] or ""), ok=row["outcome"] == "ok")

    def put(self, record: ToolCallRecord) -> None:
        self.tool_row(record.call_id, record.name, dict(record.arguments),
                      "ok" if record.ok else "error", record.result)

    def claim(self, call: ToolCall) -> ToolCallRecord | None:
        """Claim ``call`` before it runs (the :class:`~sdk.ToolCallClaims` protocol):
        ``None`` = ours now, run it; a record = it finished meanwhile. Raises
        :class:`~worker.lease.LeaseLost` when the run's lease is no longer held."""
        owner = self._owner()
        if self.lease is not None:
            self.lease.check()
        self.written.add(call.id)
        found = self.db.claim_tool_call(
            self._tool_values(call.id, call.name, dict(call.arguments), "running", None),
            owner)
        if found["outcome"] in ("ok", "error"):
            return ToolCallRecord(call.id, str(found["tool_name"]), dict(found["arguments"]),
                                  str(found["result"] or ""), ok=found["outcome"] == "ok")
        if int(found["attempts"]) > 1:
            log.warning("message_id=%s: tool call %s (%s) was claimed before by a delivery "
                        "that stopped before recording its result (attempt %d); running it "
                        "again with the same idempotency key", self.message_id, call.id,
                        call.name, found["attempts"])
        return None

    def _owner(self) -> str:
        return self.lease.token if self.lease is not None else f"local:{id(self)}"

    def tool_row(self, call_id: str, name: str, arguments: dict[str, Any], outcome: str,
                 result: str | None, confirmation: str | None = None) -> None:
        self.written.add(call_id)
        self.db.audit_tool_call({**self._tool_values(call_id, name, arguments, outcome, result,
                                                     confirmation),
                                 "claimed_by": self._owner()})

    def _tool_values(self, call_id: str, name: str, arguments: dict[str, Any], outcome: str,
                     result: str | None, confirmation: str | None = None) -> dict[str, Any]:
        decided, who = self.decisions.get(call_id, ("not_required", None))
        if call_id not in self.decisions and name in self.approved_for_run:
            decided, who = "approved", self.approved_for_run[name]
        return {
            "tenant": self.tenant, "conversation_id": self.conversation_id,
            "agent_id": self.agent_id, "message_id": self.message_id, "tool_call_id": call_id,
            "tool_name": name, "arguments": arguments, "outcome": outcome, "result": result,
            "confirmation": confirmation or decided, "decided_by": who}

    # -- agent events
    def on_event(self, event: AgentEvent) -> None:
        if isinstance(event, LLMCallStarted):
            self.started = event.request_id
            self.db.journal_started(self.message_id, event.request_id, self.emit.phase)
        elif isinstance(event, LLMCallFinished):
            self._llm_call(event)
        elif isinstance(event, ToolCalled):
            record = event.record
            if record.approved is False:
                self.tool_row(record.call_id, record.name, dict(record.arguments),
                              "declined", record.result)
            if self.emit("tool_called", {"tool": record.name, "call_id": record.call_id,
                                         "ok": record.ok, "approved": record.approved,
                                         "cached": record.cached}):
                # counted once: a redelivered run's event lands in the same slot
                self.counters.tool_call(
                    self.agent_id, record.name if record.name in self.tool_names else UNKNOWN,
                    "declined" if record.approved is False else "ok" if record.ok else "error")
        elif isinstance(event, ConfirmationRequired):
            for call in event.pending.calls:
                self.tool_row(call.id, call.name, dict(call.arguments), "pending", None,
                              "pending")
        elif isinstance(event, TextDelta):
            self.emit("text_delta", {"text": event.text})

    def _row(self, call_id: str, **values: Any) -> dict[str, Any]:
        return {"tenant": self.tenant, "conversation_id": self.conversation_id,
                "agent_id": self.agent_id, "message_id": self.message_id,
                "call_key": f"{self.message_id}:llm:{call_id}", **values}

    def _llm_call(self, event: LLMCallFinished) -> None:
        completion = event.completion
        self.db.audit_llm_call(self._row(
            self.started or completion.request_id or uuid.uuid4().hex,
            alias=completion.alias, deployment=completion.deployment,
            request_id=completion.request_id, prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens, cost_usd=completion.cost,
            latency_ms=completion.latency_ms, outcome="ok", error=None))
        self.started = None
        self.emit("llm_call", {"alias": completion.alias, "deployment": completion.deployment,
                               "tokens": completion.usage.total_tokens,
                               "cost": completion.cost, "latency_ms": completion.latency_ms})

    def failed_llm_call(self, exc: Exception) -> None:
        call_id = self.started or uuid.uuid4().hex
        self.db.audit_llm_call(self._row(
            call_id, alias=self.alias, deployment=None,
            request_id=getattr(exc, "request_id", None) or self.started, prompt_tokens=0,
            completion_tokens=0, cost_usd=None, latency_ms=None, outcome="error",
            error=f"{type(exc).__name__}: {exc}"[:2000]))
        self.started = None

    def audit_interrupted(self) -> None:
        """Audit the calls an earlier (crashed) run of this message left in flight."""
        self.db.audit_interrupted(self.interrupted_row())

    def interrupted_row(self) -> dict[str, Any]:
        """The fields of this turn's ``interrupted`` audit rows (see
        :meth:`~worker.db.WorkerDB.audit_interrupted`)."""
        return {"tenant": self.tenant, "conversation_id": self.conversation_id,
                "agent_id": self.agent_id, "message_id": self.message_id, "alias": self.alias}
