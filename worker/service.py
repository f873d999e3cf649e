"""What the actors do, without Dramatiq: run one message, or resume one confirmation.

At-least-once safety (a message may be redelivered after a crash, at any point):

- the agent's tool call ids are derived from the run id (= the message id), so a
  re-run asks for the same ids; every tool result is stored in PostgreSQL keyed
  by conversation + call id *as soon as the tool returns* and is reused on re-run
  (the tool does not run again); each tool also gets that key as an idempotency
  key (``sdk.current_tool_call()``) for its own side effect;
- memory rows, audit rows and the message outcome are written with ``ON CONFLICT``;
- every event is appended to the conversation stream once (see ``redis_store``);
- a message whose outcome is final is answered from PostgreSQL without running.

A provider outage (every deployment and fallback failed) is not retried: the user
gets a polite reply, the failed call is audited, the outcome is ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdk import (
    Agent,
    AgentEvent,
    ConfirmationRequired,
    Gateway,
    GatewayError,
    LLMCallFinished,
    Outcome,
    PendingConfirmation,
    ProviderUnavailableError,
    RunResult,
    TextDelta,
    Tool,
    ToolCall,
    ToolCalled,
)
from worker.agents import AgentSpec
from worker.db import WorkerDB
from worker.models import ConfirmMessage, Event, EventType, InboundMessage, Reply
from worker.redis_store import RedisStore
from worker.settings import WorkerSettings

__all__ = [
    "EXPIRED_REPLY",
    "NOTHING_PENDING_REPLY",
    "OUTAGE_REPLY",
    "ConversationService",
    "UnknownAgentError",
]

OUTAGE_REPLY = ("Sorry, I can't reach the language model right now. Your message was "
                "received; please try again in a few minutes.")
EXPIRED_REPLY = ("This request expired before it was confirmed, so nothing was done. "
                 "Please ask again if you still want it.")
NOTHING_PENDING_REPLY = "There is nothing waiting for your confirmation in this conversation."
ERROR_PREFIX = "Error:"
FINAL_STATUSES = ("completed", "declined", "expired", "failed", "max_iterations")


class UnknownAgentError(LookupError):
    """A message names an agent id the agents file does not define."""


@dataclass
class _Emitter:
    """Appends a message's events in order, each exactly once across redeliveries."""

    store: RedisStore
    conversation_id: str
    message_id: str
    phase: str
    stream: str | None = None
    seq: int = 0

    def __call__(self, kind: EventType, data: dict[str, Any] | None = None) -> None:
        """Append the next event; a ``reply`` has one fixed slot per phase, so a
        re-sent reply (after a crash between storing and sending it) is deduplicated."""
        self.seq += 1
        event = Event(type=kind, conversation_id=self.conversation_id,
                      message_id=self.message_id, data=data or {})
        marker = f"{self.phase}:{'reply' if kind == 'reply' else self.seq}"
        self.store.append_event(event, marker)
        if self.stream and kind == "reply":
            self.store.append_event(event, marker, stream=self.stream)


@dataclass
class _Turn:
    """One run or resume of a message: its context, and the sink for agent events."""

    db: WorkerDB
    emit: _Emitter
    tenant: str
    conversation_id: str
    agent_id: str
    message_id: str
    alias: str
    decisions: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    calls: dict[str, ToolCall] = field(default_factory=dict)
    llm_seq: int = 0

    # -- the ToolResultCache protocol, backed by audit_tool_calls
    def get(self, call_id: str) -> str | None:
        row = self.db.tool_result(self.conversation_id, call_id)
        return str(row["result"]) if row else None

    def put(self, call_id: str, result: str) -> None:
        call = self.calls.get(call_id)
        outcome = "error" if result.startswith(ERROR_PREFIX) else "ok"
        self._tool_row(call_id, call.name if call else "?",
                       dict(call.arguments) if call else {}, outcome, result)

    def _tool_row(self, call_id: str, name: str, arguments: dict[str, Any], outcome: str,
                  result: str | None, confirmation: str | None = None) -> None:
        decided, who = self.decisions.get(call_id, ("not_required", None))
        self.db.audit_tool_call({
            "tenant": self.tenant, "conversation_id": self.conversation_id,
            "agent_id": self.agent_id, "message_id": self.message_id, "tool_call_id": call_id,
            "tool_name": name, "arguments": arguments, "outcome": outcome, "result": result,
            "confirmation": confirmation or decided, "decided_by": who})

    # -- agent events
    def on_event(self, event: AgentEvent) -> None:
        if isinstance(event, LLMCallFinished):
            self._llm_call(event)
        elif isinstance(event, ToolCalled):
            record = event.record
            if record.approved is False:
                self._tool_row(record.call_id, record.name, dict(record.arguments),
                               "declined", record.result)
            self.emit("tool_called", {"tool": record.name, "call_id": record.call_id,
                                      "ok": record.ok, "approved": record.approved,
                                      "cached": record.cached})
        elif isinstance(event, ConfirmationRequired):
            for call in event.pending.calls:
                self._tool_row(call.id, call.name, dict(call.arguments), "pending", None,
                               "pending")
        elif isinstance(event, TextDelta):
            self.emit("text_delta", {"text": event.text})

    def _llm_call(self, event: LLMCallFinished) -> None:
        completion = event.completion
        self.calls.update((c.id, c) for c in completion.tool_calls)
        self.llm_seq += 1
        self.db.audit_llm_call({
            "tenant": self.tenant, "conversation_id": self.conversation_id,
            "agent_id": self.agent_id, "message_id": self.message_id,
            "call_key": f"{self.message_id}:{self.emit.phase}:{self.llm_seq}",
            "alias": completion.alias, "deployment": completion.deployment,
            "request_id": completion.request_id,
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
            "cost_usd": completion.cost, "latency_ms": completion.latency_ms,
            "outcome": "ok", "error": None})
        self.emit("llm_call", {"alias": completion.alias, "deployment": completion.deployment,
                               "tokens": completion.usage.total_tokens,
                               "cost": completion.cost, "latency_ms": completion.latency_ms})

    def failed_llm_call(self, exc: Exception) -> None:
        self.llm_seq += 1
        self.db.audit_llm_call({
            "tenant": self.tenant, "conversation_id": self.conversation_id,
            "agent_id": self.agent_id, "message_id": self.message_id,
            "call_key": f"{self.message_id}:{self.emit.phase}:{self.llm_seq}:error",
            "alias": self.alias, "deployment": None, "request_id": None, "prompt_tokens": 0,
            "completion_tokens": 0, "cost_usd": None, "latency_ms": None, "outcome": "error",
            "error": f"{type(exc).__name__}: {exc}"[:2000]})


class ConversationService:
    """Runs messages and confirmations against PostgreSQL, Redis and the proxy."""

    def __init__(self, settings: WorkerSettings, db: WorkerDB, store: RedisStore,
                 agents: dict[str, tuple[AgentSpec, list[Tool]]],
                 gateway_for: Callable[[str], Gateway]) -> None:
        self.settings, self.db, self.store = settings, db, store
        self.agents, self.gateway_for = agents, gateway_for

    # ------------------------------------------------------------ handle_message

    def handle(self, message: InboundMessage) -> Reply:
        emit = _Emitter(self.store, message.conversation_id, message.message_id, "run",
                        message.reply_channel)
        done = self.db.get_outcome(message.message_id)
        if done is not None:
            return self._resend(done, emit)
        emit("received", {"agent_id": message.agent_id})
        if message.agent_id not in self.agents:
            return self._finish(message, emit, "failed",
                                f"Sorry, there is no agent called {message.agent_id!r} here.")
        spec, _ = self.agents[message.agent_id]
        memory = self.db.load_memory(message.conversation_id)
        turn = self._turn(message, emit, spec.alias)
        agent = self._agent(message.agent_id, turn)
        request = [*memory, {"role": "user", "content": message.text}]
        try:
            result = agent.run(request, run_id=message.message_id, user=message.tenant)
        except (ProviderUnavailableError, GatewayError) as exc:
            return self._outage(message, emit, turn, exc, [request[-1]])
        # the turn starts after the system prompt and the memory
        return self._after_run(message, emit, result, history_len=1 + len(memory))

    def _after_run(self, message: InboundMessage, emit: _Emitter, result: RunResult,
                   history_len: int) -> Reply:
        new = list(result.messages[history_len:])  # the user message and what followed
        if result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None:
            return self._pause(message, emit, result.pending, history_len, result.text)
        status = "completed" if result.outcome is Outcome.COMPLETED else "max_iterations"
        text = result.text or "I could not finish that within my step limit."
        self.db.save_turn(message.conversation_id, message.tenant, message.message_id, new,
                          self.settings.memory_max_messages)
        return self._finish(message, emit, status, text)

    def _pause(self, message: InboundMessage, emit: _Emitter, pending: PendingConfirmation,
               history_len: int, text: str) -> Reply:
        call = pending.calls[0]
        question = (f"{text}\n\n" if text else "") + (
            f"I need your confirmation to run {call.name} with "
            f"{json.dumps(dict(call.arguments))}. Reply yes or no.")
        saved = {"message": message.model_dump(), "history_len": history_len,
                 "question": question, "pending": pending.to_json()}
        self.store.put_pending(message.conversation_id, json.dumps(saved),
                               self.settings.confirm_ttl)
        self.db.set_outcome(message_id=message.message_id,
                            conversation_id=message.conversation_id, tenant=message.tenant,
                            agent_id=message.agent_id, status="needs_confirmation",
                            reply=question, pending_tool=call.name,
                            pending_ttl=self.settings.confirm_ttl)
        emit("confirmation_required", {"tool": call.name, "arguments": dict(call.arguments),
                                       "expires_in": self.settings.confirm_ttl})
        reply = Reply(conversation_id=message.conversation_id, message_id=message.message_id,
                      status="needs_confirmation", text=question, pending_tool=call.name)
        emit("reply", reply.model_dump())
        return reply

    # ------------------------------------------------------------ confirm

    def confirm(self, answer: ConfirmMessage) -> Reply:
        raw = self.store.get_pending(answer.conversation_id)
        if raw is None:
            return self._no_pending(answer)
        saved = json.loads(raw)
        message = InboundMessage.model_validate(saved["message"])
        pending = PendingConfirmation.from_json(saved["pending"])
        emit = _Emitter(self.store, message.conversation_id, message.message_id,
                        "confirm", message.reply_channel)
        decision = "approved" if answer.approved else "declined"
        emit("confirmation_resolved", {"decision": decision, "note": answer.note})
        spec, _ = self.agents[message.agent_id]
        turn = self._turn(message, emit, spec.alias)
        turn.decisions = {c.id: (decision, answer.decided_by or "user") for c in pending.calls}
        turn.calls = {c.id: c for c in pending.calls}
        agent = self._agent(message.agent_id, turn)
        history_len = int(saved["history_len"])
        try:
            result = agent.resume(pending, approved=answer.approved, note=answer.note)
        except (ProviderUnavailableError, GatewayError) as exc:
            user = {"role": "user", "content": message.text}
            reply = self._outage(message, emit, turn, exc, [user])
            self.store.delete_pending(message.conversation_id)
            return reply
        reply = self._after_run(message, emit, result, history_len)
        if reply.status == "completed" and not answer.approved:
            reply = reply.model_copy(update={"status": "declined"})
            self.db.set_outcome(message_id=message.message_id,
                                conversation_id=message.conversation_id, tenant=message.tenant,
                                agent_id=message.agent_id, status="declined", reply=reply.text)
        self.store.delete_pending(message.conversation_id)
        return reply

    def _no_pending(self, answer: ConfirmMessage) -> Reply:
        latest = self.db.latest_awaiting(answer.conversation_id)
        if latest is None:
            return Reply(conversation_id=answer.conversation_id, message_id="-",
                         status="nothing_pending", text=NOTHING_PENDING_REPLY)
        message_id = str(latest["message_id"])
        if latest["status"] != "needs_confirmation":  # resolved already: a repeated confirm
            phase = "expire" if latest["status"] == "expired" else "confirm"
            return self._resend(latest, _Emitter(self.store, answer.conversation_id,
                                                 message_id, phase))
        emit = _Emitter(self.store, answer.conversation_id, message_id, "expire")
        emit("expired", {"tool": latest["pending_tool"]})
        self.db.expire_tool_calls(answer.conversation_id, message_id)
        self.db.set_outcome(message_id=message_id, conversation_id=answer.conversation_id,
                            tenant=str(latest["tenant"]), agent_id=str(latest["agent_id"]),
                            status="expired", reply=EXPIRED_REPLY)
        reply = Reply(conversation_id=answer.conversation_id, message_id=message_id,
                      status="expired", text=EXPIRED_REPLY, pending_tool=latest["pending_tool"])
        emit("reply", reply.model_dump())
        return reply

    # ------------------------------------------------------------ shared

    def _turn(self, message: InboundMessage, emit: _Emitter, alias: str) -> _Turn:
        return _Turn(self.db, emit, message.tenant, message.conversation_id, message.agent_id,
                     message.message_id, alias)

    def _agent(self, agent_id: str, turn: _Turn) -> Agent:
        spec, tools = self.agents[agent_id]
        return Agent(name=spec.name, alias=spec.alias, instructions=spec.instructions,
                     role=spec.role, persona=spec.persona, version=spec.version,
                     tools=tools, gateway=self.gateway_for(turn.tenant),
                     max_iterations=spec.max_iterations, stream=spec.stream,
                     on_event=turn.on_event, tool_result_cache=turn,
                     tags=[f"conversation:{turn.conversation_id}", f"agent:{agent_id}"])

    def _outage(self, message: InboundMessage, emit: _Emitter, turn: _Turn, exc: Exception,
                turn_messages: list[dict[str, Any]]) -> Reply:
        turn.failed_llm_call(exc)
        emit("error", {"error": type(exc).__name__, "detail": str(exc)[:500]})
        self.db.save_turn(message.conversation_id, message.tenant, message.message_id,
                          [*turn_messages, {"role": "assistant", "content": OUTAGE_REPLY}],
                          self.settings.memory_max_messages)
        return self._finish(message, emit, "failed", OUTAGE_REPLY)

    def _finish(self, message: InboundMessage, emit: _Emitter, status: str, text: str) -> Reply:
        self.db.set_outcome(message_id=message.message_id,
                            conversation_id=message.conversation_id, tenant=message.tenant,
                            agent_id=message.agent_id, status=status, reply=text)
        reply = Reply(conversation_id=message.conversation_id, message_id=message.message_id,
                      status=status,  # type: ignore[arg-type]
                      text=text)
        emit("reply", reply.model_dump())
        return reply

    @staticmethod
    def _resend(row: dict[str, Any], emit: _Emitter) -> Reply:
        """The stored outcome of a message handled before; its reply event is sent
        again only if a crash kept it from being sent (the slot is deduplicated)."""
        reply = Reply(conversation_id=str(row["conversation_id"]),
                      message_id=str(row["message_id"]), status=row["status"],
                      text=str(row["reply"] or ""), pending_tool=row.get("pending_tool"))
        emit("reply", reply.model_dump())
        return reply

