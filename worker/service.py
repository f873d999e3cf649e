"""What the actors do, without Dramatiq: run a message, take a decision, expire a
confirmation. Coroutines: the agent runs with :class:`~sdk.AsyncGateway` and
:meth:`~sdk.Agent.arun` on the worker's event loop (sync tools run on the loop's
bounded thread pool, ``POOL_WORKER_TOOL_THREADS``). Nothing here blocks the loop:
the PostgreSQL and Redis work runs in segments on the service's own bounded I/O
threads (``io_threads``, :func:`~worker.turn.off_loop`), the run lease uses
``redis.asyncio``, and the agent's events and tool claims are awaited
(:meth:`Turn.aon_event`, :class:`~sdk.AsyncToolCallClaims`).

At-least-once safety (a message may be redelivered after a crash, at any point, or
delivered twice at once; see docs/workers.md):

- a delivery works on a run (a message and its resumed confirmations) only while it
  holds the run's lease (:mod:`worker.lease`); a second delivery waits for it, then
  answers from what the first stored, in the first's reply slot (no second reply);
- every tool call is claimed in PostgreSQL before it runs (:meth:`Turn.claim`), and
  its result recorded after; a claim whose worker died is taken over by the run's
  next lease holder, which runs the tool again with the same idempotency key;
- the agent's tool call ids are derived from the run id (= the message id), so a
  re-run asks for the same ids; every tool result is stored in PostgreSQL keyed
  by conversation + call id *as soon as the tool returns* and is reused on re-run
  (the tool does not run again); each tool also gets that key as an idempotency
  key (``sdk.current_tool_call()``) for its own side effect;
- memory rows, audit rows and the message outcome are written with ``ON CONFLICT``;
- every event is appended to the conversation stream once (see :class:`~worker.turn.Emitter`);
- a message whose outcome is final is answered from PostgreSQL without running;
- decisions are stored before anything runs (:mod:`worker.decisions`): a decided
  confirmation is finished by a redelivered answer whatever the TTL, and reports
  what really happened; a decision redelivered after its run went on (paused again,
  or ended) is answered from the outcome in its own reply slot (``{ns}:decision:<id>``);
- a decided confirmation is resumed through the SDK's resume-once protocol with the
  worker's store (:class:`~worker.resumes.RedisResumeStore`): a finished resume is
  never run again, an unfinished one is taken over only under the run's next lease.

What a gateway failure becomes (the truth, not one polite reply for all):

- **budget exceeded**: a reply saying the tenant's budget is reached, a
  ``budget_exceeded`` event, status ``budget_exceeded``; never retried;
- **rate limited** (still, after the SDK's own retries): :class:`RetryLater`, the
  actor retries the message after the gateway's ``Retry-After``;
- **gateway unreachable** (a wrong ``POOL_PROXY_URL``, a stopped proxy):
  :class:`GatewayUnreachable`, an ``error`` event; the actor logs one line and the
  message is retried with backoff, then dead-lettered. Never the polite outage reply;
- **auth or configuration** (401/403, unknown alias, a 4xx): :class:`GatewayRefusedError`,
  an ``error`` event; the actor logs one line naming the cause; dead-lettered at once;
- **provider outage** (a 5xx from the proxy, a timeout): a polite reply, status
  ``failed``, not retried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pydantic

from sdk import (
    CONFIGURATION_ERRORS,
    Agent,
    AsyncGateway,
    BudgetExceededError,
    GatewayError,
    GatewayUnreachableError,
    Outcome,
    PendingConfirmation,
    ProviderUnavailableError,
    RateLimitedError,
    ResumeStore,
    RunResult,
    Tool,
)
from worker.agents import AgentSpec
from worker.broker import async_redis_client
from worker.counters import UNKNOWN, Counters, EndStatus
from worker.db import WorkerDB
from worker.decisions import ArgumentCheck, Verdict, decide, sdk_decisions, undecided
from worker.errors import GatewayRefusedError, GatewayUnreachable, RetryLater
from worker.lease import Lease, RunLeases
from worker.models import (
    ConfirmMessage,
    ExpireMessage,
    InboundMessage,
    PendingCall,
    Reply,
)
from worker.redis_store import UNCHANGED, PendingChange, RedisStore
from worker.resumes import RedisResumeStore
from worker.settings import WorkerSettings
from worker.turn import Emitter, Turn, off_loop

__all__ = [
    "BUDGET_REPLY",
    "EXPIRED_REPLY",
    "NOTHING_PENDING_REPLY",
    "OUTAGE_REPLY",
    "ConversationService",
    "GatewayRefusedError",
    "RetryLater",
]

log = logging.getLogger(__name__)

OUTAGE_REPLY = ("Sorry, I can't reach the language model right now. Your message was "
                "received; please try again in a few minutes.")
BUDGET_REPLY = ("Sorry, your organisation's budget for the assistant is used up, so I can't "
                "answer this. Please ask your administrator to raise it.")
EXPIRED_REPLY = ("This request expired before it was confirmed, so nothing was done. "
                 "Please ask again if you still want it.")
NOTHING_PENDING_REPLY = "There is nothing waiting for your confirmation in this conversation."
EXPIRY_GRACE = 300  # seconds an undecided record outlives its expiry (the expire message ends it)
DEFAULT_RETRY_AFTER = 5.0  # seconds, when a rate-limited gateway said nothing
IO_THREADS = 16  # threads for PostgreSQL/Redis work, per worker process

T = TypeVar("T")


class ConversationService:
    """Runs messages and confirmations against PostgreSQL, Redis and the proxy."""

    def __init__(self, settings: WorkerSettings, db: WorkerDB, store: RedisStore,
                 agents: dict[str, tuple[AgentSpec, list[Tool]]],
                 gateway_for: Callable[[str], AsyncGateway],
                 counters: Counters | None = None, leases: RunLeases | None = None,
                 io_threads: int = IO_THREADS) -> None:
        self.settings, self.db, self.store = settings, db, store
        self.agents, self.gateway_for = agents, gateway_for
        self.counters = counters if counters is not None else Counters()
        self.leases = leases if leases is not None else RunLeases(
            lambda: async_redis_client(settings.redis_url), settings.namespace,
            settings.heartbeat_ms)
        self.io = ThreadPoolExecutor(io_threads, thread_name_prefix="pool-io")

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await off_loop(self.io, fn, *args)

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the service's bounded I/O threads, awaited (for the actors' own
        Redis work: scheduling an expiry)."""
        return await self._io(fn)

    # ------------------------------------------------------------ handle_message

    async def handle(self, message: InboundMessage) -> Reply:
        """Run a message, holding its run's lease (a second delivery waits, then
        answers from the stored outcome)."""
        async with self.leases.hold(message.message_id) as lease:
            return await self._handle(message, lease)

    async def _handle(self, message: InboundMessage, lease: Lease) -> Reply:
        emit = Emitter(self.store, message.conversation_id, message.message_id, "run",
                       message.reply_channel)
        started = await self._io(self._start_run, message, emit, lease)
        if isinstance(started, Reply):
            return started
        turn, memory = started
        agent = self._agent(message.agent_id, turn)
        request = [*memory, {"role": "user", "content": message.text}]
        ran = await self._guarded(
            agent.arun(request, run_id=message.message_id, user=message.tenant),
            message, emit, turn)
        if isinstance(ran, Reply):
            return ran
        # the turn starts after the system prompt and the memory
        return await self._io(turn.after_flush, self._after_run, message, emit, ran,
                              1 + len(memory))

    def _start_run(self, message: InboundMessage, emit: Emitter, lease: Lease
                   ) -> Reply | tuple[Turn, list[dict[str, Any]]]:
        """(off the loop) The stored answer of a message handled before, or the turn
        and the conversation's memory to run it with."""
        known = self.agents.get(message.agent_id)
        turn = self._turn(message, emit, known[0].alias, lease) if known else None
        done, memory, journaled = self.db.begin_run(
            message.message_id, message.conversation_id,
            turn.interrupted_row() if turn is not None else None)  # + interrupted calls audited
        if done is not None:
            return self._still_pending(self._resend(done, emit))
        emit("received", {"agent_id": message.agent_id})
        if turn is None:
            return self._finish(message, emit, "failed",
                                f"Sorry, there is no agent called {message.agent_id!r} here.")
        turn.fresh = journaled == 0  # no earlier delivery sent an LLM call: no tool results
        turn.defer = True  # a plain run: reporting events ride on the next hop
        return turn, memory

    def _still_pending(self, reply: Reply) -> Reply:
        """A re-sent ``needs_confirmation`` reply with its undecided calls and expiry
        (so the actor schedules the expiry a crash may have kept it from scheduling)."""
        raw = self.store.get_pending(reply.conversation_id)
        record = json.loads(raw) if raw is not None else None
        if reply.status != "needs_confirmation" or record is None \
                or record["message"]["message_id"] != reply.message_id:
            return reply
        return reply.model_copy(update={"pending_calls": undecided(record),
                                        "expires_at": record["expires_at"]})

    def _after_run(self, message: InboundMessage, emit: Emitter, result: RunResult,
                   history_len: int, all_declined: bool = False) -> Reply:
        new = list(result.messages[history_len:])  # the user message and what followed
        if result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None:
            return self._pause(message, emit, result.pending, history_len, result.text)
        status: EndStatus = ("max_iterations" if result.outcome is not Outcome.COMPLETED
                             else "declined" if all_declined else "completed")
        text = result.text or "I could not finish that within my step limit."
        return self._finish(message, emit, status, text, memory=new)

    def _pause(self, message: InboundMessage, emit: Emitter, pending: PendingConfirmation,
               history_len: int, text: str) -> Reply:
        calls = [PendingCall(id=c.id, name=c.name, arguments=dict(c.arguments))
                 for c in pending.calls]
        question = (f"{text}\n\n" if text else "") + _question(calls)
        expires_at = time.time() + self.settings.confirm_ttl
        record = {"message": message.model_dump(), "history_len": history_len,
                  "question": question, "pending": pending.to_json(), "expires_at": expires_at,
                  "calls": [c.model_dump() for c in calls], "decisions": {},
                  "resumed_by": None}
        kept = self.store.change_pending(message.conversation_id, lambda old: _replace(old, record))
        calls = undecided(kept)
        self.db.set_outcome(message_id=message.message_id,
                            conversation_id=message.conversation_id, tenant=message.tenant,
                            agent_id=message.agent_id, status="needs_confirmation",
                            reply=kept["question"], pending_tool=calls[0].name if calls else None,
                            pending_ttl=self.settings.confirm_ttl,
                            resumed_by=emit.decision_id)
        emit("confirmation_required", {
            "calls": [c.model_dump() for c in calls], "tool": calls[0].name if calls else None,
            "expires_in": self.settings.confirm_ttl, "expires_at": kept["expires_at"]})
        reply = Reply(conversation_id=message.conversation_id, message_id=message.message_id,
                      status="needs_confirmation", text=kept["question"],
                      pending_tool=calls[0].name if calls else None, pending_calls=calls,
                      expires_at=kept["expires_at"])
        emit("reply", reply.model_dump())
        return reply

    # ------------------------------------------------------------ confirm

    async def confirm(self, answer: ConfirmMessage, decision_id: str) -> Reply:
        """Take a decision on the conversation's pending confirmation, holding the lease
        of the run it belongs to (a second delivery of the same decision waits, then
        answers from what the first did)."""
        while True:
            run = await self._io(self._pending_run, answer.conversation_id)
            if run is None:  # nothing pending: nothing will run
                return await self._confirm(answer, decision_id, None)
            async with self.leases.hold(run) as lease:
                if await self._io(self._pending_run, answer.conversation_id) in (run, None):
                    return await self._confirm(answer, decision_id, lease)

    def _pending_run(self, conversation_id: str) -> str | None:
        raw = self.store.get_pending(conversation_id)
        return str(json.loads(raw)["message"]["message_id"]) if raw is not None else None

    async def _confirm(self, answer: ConfirmMessage, decision_id: str,
                       lease: Lease | None) -> Reply:
        decided = await self._io(self._decide, answer, decision_id, lease)
        if isinstance(decided, Reply):
            return decided
        message, emit, record = decided
        return await self._resume(message, emit, record, answer.note, lease)

    def _decide(self, answer: ConfirmMessage, decision_id: str, lease: Lease | None
                ) -> Reply | tuple[InboundMessage, Emitter, dict[str, Any]]:
        """(off the loop) Record the decision: the reply it gets, or what to resume."""
        verdict: Verdict = self.store.change_pending(
            answer.conversation_id,
            lambda record: decide(record, answer, decision_id, time.time(),
                                  self._checker(record)))
        if verdict.kind == "missing":
            return self._no_pending(answer, decision_id)
        message = InboundMessage.model_validate(verdict.record["message"]) \
            if verdict.record else None
        if verdict.kind == "expired" and message is not None:
            return self._expire(message, verdict.record)
        if verdict.kind == "spent" and message is not None:  # this decision's run went on
            return self._answered(message.message_id, decision_id)
        if verdict.kind == "resume" and message is not None and (
                lease is None or lease.run != message.message_id):
            # the record changed hands between the look and the lease: come back for it
            raise RetryLater(f"message_id={message.message_id}: decision {decision_id} "
                             "recorded; its run is taken up by the redelivery", 100)
        emit = Emitter(self.store, answer.conversation_id,
                       message.message_id if message else "-", f"confirm:{decision_id}",
                       message.reply_channel if message else None)
        if verdict.kind == "refused" or message is None:
            return self._refuse(answer, emit, verdict.text)
        self.store.note_decision(decision_id, message.message_id)
        emit("confirmation_resolved", _resolved(verdict.record, decision_id, answer.note))
        if verdict.kind == "partial":
            calls = undecided(verdict.record)
            reply = Reply(conversation_id=message.conversation_id,
                          message_id=message.message_id, status="needs_confirmation",
                          text=_question(calls), pending_tool=calls[0].name,
                          pending_calls=calls, expires_at=verdict.record["expires_at"])
            emit("reply", reply.model_dump())
            return reply
        return message, emit, verdict.record

    def _answered(self, message_id: str, decision_id: str) -> Reply:
        """The stored outcome of the run ``decision_id`` resumed, re-sent in that
        decision's own reply slot (so a redelivered decision adds no reply)."""
        row = self.db.get_outcome(message_id)
        assert row is not None  # a run that went on stored its outcome
        return self._resend(row, Emitter(self.store, str(row["conversation_id"]), message_id,
                                         f"confirm:{decision_id}"))

    async def _resume(self, message: InboundMessage, emit: Emitter, record: dict[str, Any],
                      note: str | None, lease: Lease | None) -> Reply:
        pending = PendingConfirmation.from_json(record["pending"])
        spec, _ = self.agents[message.agent_id]
        turn = self._turn(message, emit, spec.alias, lease)
        turn.decisions = {cid: ("approved" if d["approve"] else "declined", d["by"])
                          for cid, d in record["decisions"].items()}
        names = {c["id"]: c["name"] for c in record["calls"]}
        turn.approved_for_run = {**dict.fromkeys(pending.approved_tools), **{
            names[cid]: d["by"] for cid, d in record["decisions"].items() if d.get("for_run")}}
        await self._io(turn.audit_interrupted)
        agent = self._agent(message.agent_id, turn, RedisResumeStore(
            self.store.client, self.settings.namespace, lease=lease, io=self.io))
        decisions = sdk_decisions(record)
        ran = await self._guarded(agent.aresume(pending, decisions=decisions, note=note),
                                  message, emit, turn)
        if isinstance(ran, Reply):
            await self._io(self._drop_resumed, message.conversation_id, record["resumed_by"])
            return ran
        return await self._io(self._resumed, message, emit, ran, record)

    def _resumed(self, message: InboundMessage, emit: Emitter, ran: RunResult,
                 record: dict[str, Any]) -> Reply:
        """(off the loop) Store a resumed run's outcome; the record goes once it ended."""
        reply = self._after_run(message, emit, ran, int(record["history_len"]),
                                all_declined=not any(d["approve"]
                                                     for d in record["decisions"].values()))
        if reply.status != "needs_confirmation":
            self._drop_resumed(message.conversation_id, record["resumed_by"])
        return reply

    def _drop_resumed(self, conversation_id: str, owner: str) -> None:
        """Delete the decided record once its run has finished (not a newer pause)."""
        def change(record: dict[str, Any] | None) -> tuple[None, PendingChange]:
            mine = record is not None and record.get("resumed_by") == owner
            return None, PendingChange(None) if mine else UNCHANGED
        self.store.change_pending(conversation_id, change)

    def _checker(self, record: dict[str, Any] | None) -> ArgumentCheck:
        """Validates edited arguments against the tools of the record's agent."""
        agent_id = (record or {}).get("message", {}).get("agent_id")
        tools = {t.name: t for t in self.agents.get(agent_id, (None, []))[1]}

        def check(tool_name: str, arguments: dict[str, Any]) -> str | None:
            if tool_name not in tools:
                return f"there is no tool named {tool_name!r}"
            try:
                tools[tool_name].validate(arguments)
            except pydantic.ValidationError as exc:
                return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in exc.errors(include_url=False))
            return None
        return check

    def _refuse(self, answer: ConfirmMessage, emit: Emitter, why: str) -> Reply:
        reply = Reply(conversation_id=answer.conversation_id, message_id=emit.message_id,
                      status="refused", text=f"Decision refused, nothing was changed: {why}")
        emit("reply", reply.model_dump())
        return reply

    def _no_pending(self, answer: ConfirmMessage, decision_id: str) -> Reply:
        taken_on = self.store.decided_message(decision_id)
        row = self.db.get_outcome(taken_on) if taken_on is not None else None
        if row is not None and row["conversation_id"] == answer.conversation_id:
            # this decision, redelivered after its run went on: no second reply
            return self._answered(str(row["message_id"]), decision_id)
        latest = self.db.latest_awaiting(answer.conversation_id)
        if latest is None:
            return Reply(conversation_id=answer.conversation_id, message_id="-",
                         status="nothing_pending", text=NOTHING_PENDING_REPLY)
        message_id = str(latest["message_id"])
        if latest.get("resumed_by") == decision_id:  # this decision, redelivered: done
            return self._answered(message_id, decision_id)
        if latest["status"] == "needs_confirmation":  # its record is gone: past its time
            return self._expire_row(latest)
        if answer.decisions is not None:
            emit = Emitter(self.store, answer.conversation_id, message_id,
                           f"confirm:{decision_id}")
            return self._refuse(answer, emit, f"this confirmation is {latest['status']} already")
        phase = "expire" if latest["status"] == "expired" else "confirm"
        return self._resend(latest, Emitter(self.store, answer.conversation_id, message_id,
                                            phase))

    # ------------------------------------------------------------ expiry

    async def expire(self, due: ExpireMessage) -> Reply | None:
        """The scheduled end of an undecided confirmation (a no-op once decided)."""
        return await self._io(self._expire_due, due)

    def _expire_due(self, due: ExpireMessage) -> Reply | None:
        def change(record: dict[str, Any] | None) -> tuple[str, PendingChange]:
            if record is None or record["message"]["message_id"] != due.message_id:
                return "elsewhere", UNCHANGED  # gone, or replaced by a newer message's
            if record.get("resumed_by"):
                return "decided", UNCHANGED
            if time.time() < float(record["expires_at"]) - 0.5:
                return "early", UNCHANGED
            return "expire", PendingChange(None)

        found = self.store.change_pending(due.conversation_id, change)
        row = self.db.get_outcome(due.message_id)
        if found in ("expire", "elsewhere") and row is not None \
                and row["status"] == "needs_confirmation":
            self.counters.expire_run("expired")
            return self._expire_row(row)
        self.counters.expire_run("decided" if found == "decided" else
                                 "early" if found == "early" else "gone")
        return None

    def _expire(self, message: InboundMessage, record: dict[str, Any]) -> Reply:
        calls = record["calls"]
        return self._expire_row({"message_id": message.message_id,
                                 "conversation_id": message.conversation_id,
                                 "tenant": message.tenant, "agent_id": message.agent_id,
                                 "pending_tool": calls[0]["name"] if calls else None})

    def _expire_row(self, row: dict[str, Any]) -> Reply:
        conv, message_id = str(row["conversation_id"]), str(row["message_id"])
        emit = Emitter(self.store, conv, message_id, "expire")
        emit("expired", {"tool": row["pending_tool"]})
        self.db.expire_tool_calls(conv, message_id)
        self.db.set_outcome(message_id=message_id, conversation_id=conv,
                            tenant=str(row["tenant"]), agent_id=str(row["agent_id"]),
                            status="expired", reply=EXPIRED_REPLY)
        self.counters.turn(self._agent_label(str(row["agent_id"])), "expired")
        reply = Reply(conversation_id=conv, message_id=message_id, status="expired",
                      text=EXPIRED_REPLY, pending_tool=row["pending_tool"])
        emit("reply", reply.model_dump())
        return reply

    # ------------------------------------------------------------ gateway failures

    async def _guarded(self, run: Awaitable[RunResult], message: InboundMessage, emit: Emitter,
                       turn: Turn) -> RunResult | Reply:
        """The run's result, or the reply its failure deserves (see the module docstring)."""
        try:
            return await run
        except GatewayError as exc:
            return await self._io(turn.after_flush, self._gateway_failed, exc, message, emit,
                                  turn)
        except Exception:  # the deferred events (see worker.turn) are written all the same
            with contextlib.suppress(Exception):
                await self._io(turn.flush)
            raise

    def _gateway_failed(self, exc: GatewayError, message: InboundMessage, emit: Emitter,
                        turn: Turn) -> Reply:
        """(off the loop) Audit a failed LLM call; the reply it deserves, or raise."""
        turn.failed_llm_call(exc)
        if isinstance(exc, BudgetExceededError):
            emit("budget_exceeded", {"tenant": message.tenant, "detail": str(exc)[:500]})
            return self._failed(message, emit, "budget_exceeded", BUDGET_REPLY)
        if isinstance(exc, RateLimitedError):
            wait = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
            emit.once("rate_limited", {"retry_after": wait}, f"rate_limited:{uuid.uuid4().hex}")
            raise RetryLater(f"rate limited: {exc}", int(wait * 1000)) from exc
        if isinstance(exc, ProviderUnavailableError):
            emit("error", {"error": type(exc).__name__, "detail": str(exc)[:500]})
            return self._failed(message, emit, "failed", OUTAGE_REPLY)
        if isinstance(exc, GatewayUnreachableError):
            emit.once("error", {"error": type(exc).__name__, "detail": str(exc)[:500]},
                      f"unreachable:{uuid.uuid4().hex}")  # one per attempt
            raise GatewayUnreachable(str(exc)) from exc
        hint = (" Check POOL_API_KEY, POOL_TENANT_KEYS_FILE and the agents file's aliases."
                if isinstance(exc, CONFIGURATION_ERRORS) else "")
        cause = (f"the gateway refused the worker's request ({type(exc).__name__}, "
                 f"HTTP {exc.status}): {exc}.{hint}")
        emit("error", {"error": type(exc).__name__, "status": exc.status, "fatal": True,
                       "detail": str(exc)[:500]})
        self.counters.turn(self._agent_label(message.agent_id), "error")
        raise GatewayRefusedError(cause) from exc

    async def dead_lettered(self, conversation_id: str, message_id: str | None,
                            cause: BaseException) -> None:
        """Tell the conversation's stream that a message was dead-lettered, and why."""
        emit = Emitter(self.store, conversation_id, message_id or "-", "dead")
        await self._io(emit.once, "dead_lettered",
                       {"cause": f"{type(cause).__name__}: {cause}"[:500]}, "final")

    def _failed(self, message: InboundMessage, emit: Emitter, status: EndStatus,
                text: str) -> Reply:
        user = {"role": "user", "content": message.text}
        return self._finish(message, emit, status, text,
                            memory=[user, {"role": "assistant", "content": text}])

    # ------------------------------------------------------------ shared

    def _turn(self, message: InboundMessage, emit: Emitter, alias: str,
              lease: Lease | None) -> Turn:
        _, tools = self.agents[message.agent_id]
        return Turn(self.db, emit, message.tenant, message.conversation_id, message.agent_id,
                    message.message_id, alias, counters=self.counters,
                    tool_names=frozenset(t.name for t in tools), lease=lease, io=self.io)

    def _agent_label(self, agent_id: str) -> str:
        """The agent's metric label: only ids of the agents file (bounded)."""
        return agent_id if agent_id in self.agents else UNKNOWN

    def _agent(self, agent_id: str, turn: Turn, resumes: ResumeStore | None = None) -> Agent:
        """The agent for one run; ``resumes``: the store that lets a saved confirmation
        be resumed once (:class:`~worker.resumes.RedisResumeStore`)."""
        spec, tools = self.agents[agent_id]
        return Agent(name=spec.name, alias=spec.alias, instructions=spec.instructions,
                     role=spec.role, persona=spec.persona, version=spec.version,
                     tools=tools, gateway=self.gateway_for(turn.tenant),
                     max_iterations=spec.max_iterations, stream=spec.stream,
                     on_event=turn.aon_event, tool_result_cache=turn, resume_store=resumes,
                     tags=[f"conversation:{turn.conversation_id}", f"agent:{agent_id}"])

    def _finish(self, message: InboundMessage, emit: Emitter, status: EndStatus,
                text: str, memory: list[dict[str, Any]] | None = None) -> Reply:
        """The turn's final outcome: stored (with the turn's ``memory`` messages, in one
        transaction), counted (once: a message handled before is answered by
        :meth:`_resend`), sent."""
        if memory is not None:
            self.db.finish_turn(message.conversation_id, message.tenant, message.message_id,
                                memory, self.settings.memory_max_messages,
                                agent_id=message.agent_id, status=status, reply=text,
                                resumed_by=emit.decision_id)
        else:
            self.db.set_outcome(message_id=message.message_id,
                                conversation_id=message.conversation_id,
                                tenant=message.tenant, agent_id=message.agent_id,
                                status=status, reply=text, resumed_by=emit.decision_id)
        self.counters.turn(self._agent_label(message.agent_id), status)
        reply = Reply(conversation_id=message.conversation_id, message_id=message.message_id,
                      status=status, text=text)
        emit("reply", reply.model_dump())
        return reply

    @staticmethod
    def _resend(row: dict[str, Any], emit: Emitter) -> Reply:
        """The stored outcome of a message handled before; its reply event is sent
        again only if a crash kept it from being sent (the slot is deduplicated)."""
        reply = Reply(conversation_id=str(row["conversation_id"]),
                      message_id=str(row["message_id"]), status=row["status"],
                      text=str(row["reply"] or ""),
                      pending_tool=row.get("pending_tool")
                      if row["status"] in ("needs_confirmation", "expired") else None)
        emit("reply", reply.model_dump())
        return reply


def _question(calls: list[PendingCall]) -> str:
    if len(calls) == 1:
        call = calls[0]
        return (f"I need your confirmation to run {call.name} with "
                f"{json.dumps(call.arguments)}. Reply yes or no.")
    lines = [f"- {c.id}: {c.name} {json.dumps(c.arguments)}" for c in calls]
    return ("I need your confirmation for each of these actions (approve or decline each "
            "by its id, or answer yes or no for all):\n" + "\n".join(lines))


def _replace(old: dict[str, Any] | None, new: dict[str, Any]
             ) -> tuple[dict[str, Any], PendingChange]:
    """Store ``new`` unless the same message's record is there already (a re-run
    after a crash: decisions may have been taken on it)."""
    same = old is not None and old["message"]["message_id"] == new["message"]["message_id"]
    if same and old is not None and old.get("resumed_by") is None:
        return old, UNCHANGED
    if same and old is not None:  # the resumed run paused again: its decisions are spent
        new = {**new, "spent": [*old.get("spent", []), old["resumed_by"]]}
    return new, PendingChange(new, int(new["expires_at"] - time.time()) + EXPIRY_GRACE)


def _resolved(record: dict[str, Any], decision_id: str, note: str | None) -> dict[str, Any]:
    names = {c["id"]: c["name"] for c in record["calls"]}
    mine = [{"call_id": cid, "tool": names[cid],
             "decision": "approved" if d["approve"] else "declined",
             "arguments": d["arguments"], "note": d["note"], "by": d["by"],
             "for_run": bool(d.get("for_run"))}
            for cid, d in record["decisions"].items() if d["decision_id"] == decision_id]
    decision = {d["decision"] for d in mine}
    return {"decisions": mine, "note": note,
            "decision": decision.pop() if len(decision) == 1 else "mixed"}
