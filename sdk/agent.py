"""The agent loop: model -> tools -> observe -> ... -> reply, with a confirmation gate.

::

    agent = Agent(name="support", alias="fast", instructions="Help with orders.",
                  tools=[lookup_order, refund_order], gateway=Gateway())
    result = agent.run("Please refund order 42")
    if result.outcome is Outcome.NEEDS_CONFIRMATION:
        saved = result.pending.to_json()            # store it anywhere
        ...                                          # ask a human, maybe in another process
        result = other_agent.resume(PendingConfirmation.from_json(saved), approved=True)
    print(result.text)

    # or one decision per pending call (``pending.calls`` lists them all):
    result = agent.resume(pending, decisions={
        first.id: Approve(),                                  # run as asked
        second.id: Approve(arguments={"order_id": 42, "amount": 10.0}),  # run, edited
        third.id: Decline("not this one"),                    # never run; the model is told
    })

Each iteration is one LLM call followed by the tool calls it asked for; parallel
calls run concurrently (a thread pool in :meth:`Agent.run`, ``asyncio.gather``
in :meth:`Agent.arun`). The run ends when the model answers without tool calls
(``completed``), after ``max_iterations`` LLM calls (``max_iterations``), or when
it calls a tool marked ``requires_confirmation`` (``needs_confirmation``): the
other calls of that turn are run, and :class:`PendingConfirmation` holds
everything needed to go on, as self-contained JSON. :meth:`Agent.resume` runs
(``approved=True``) or declines all the pending calls, or takes one
:class:`Approve` / :class:`Decline` per call (``decisions=``), telling the model,
and continues **within the same budget**: ``max_iterations`` bounds the LLM calls
for one user message across every pause and resume (a resume that starts with the
budget spent runs the approved calls, then ends ``max_iterations`` without asking
the model again). ``PendingConfirmation`` carries the calls made so far, so the
resumed :class:`RunResult`'s ``llm_calls``, ``usage`` and ``cost`` cover the whole
turn, not only the part after the pause. Arguments edited by the human
(``Approve(arguments=...)``) are validated against the tool's schema before
anything runs (:class:`~sdk.errors.InvalidDecisionError`); every pending call
needs exactly one decision (:class:`~sdk.errors.ConfirmationError` otherwise).

For callers that audit or persist (the Dramatiq worker):

* a conversation is carried forward by passing ``result.messages`` (plus the next
  user message) to the next :meth:`Agent.run`: the agent's own system prompt in it
  is dropped, so the model sees it once;
* ``run_id``: pass your own (e.g. the queue message id) to make the run's tool
  call ids reproducible. The agent gives every tool call an id derived from
  ``run_id``, the iteration, the call's position, its name and its arguments, so
  a redelivered run asking the same thing at the same point gets the same id;
* ``tool_result_cache`` (:class:`~sdk.tool_calls.ToolResultCache`): results by that
  id; a hit is used instead of running the tool again;
* :func:`~sdk.tools.current_tool_call` inside a tool gives its call id, run id
  and an ``idempotency_key`` for the tool's own side effects;
* every LLM request carries its own id (``x-litellm-call-id``, the proxy's call
  id and spend row key): :class:`LLMCallStarted` names it before the request is
  sent, so a caller can journal a call that a crash interrupts;
* ``on_event``: called in order with :class:`LLMCallStarted` (before the request
  is sent), :class:`LLMCallFinished`, :class:`ToolCalled` (after each batch of
  calls), :class:`ConfirmationRequired` and, when ``stream=True``,
  :class:`TextDelta`. An exception it raises stops the run. With
  :meth:`Agent.arun`/:meth:`Agent.aresume` it may be a coroutine function: it is
  awaited, so a handler that writes to a database need not block the event loop;
* ``tool_result_cache`` with coroutine methods ``aget``/``aput``/``aclaim``
  (:class:`~sdk.tool_calls.AsyncToolCallClaims`) is awaited by the async runs.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic

from sdk.client import AsyncGateway, Gateway, Messages, as_messages
from sdk.errors import (
    ConfirmationError,
    ConfirmationExpiredError,
    InvalidDecisionError,
    StructuredOutputError,
)
from sdk.prompts import build_system_prompt
from sdk.results import Completion, ToolCall, Usage, stable_call_id
from sdk.resumes import AsyncResumeStore, ResumeStore
from sdk.structured import correction_message, parse_output, schema_instruction
from sdk.tool_calls import (
    DEFAULT_MAX_TOOL_THREADS,
    ErrorText,
    Toolbox,
    ToolCallRecord,
    ToolRegistry,
    ToolResultCache,
    arun_tool_calls,
    declined_record,
    run_tool_calls,
    short_error,
)
from sdk.tools import Tool

if TYPE_CHECKING:
    from sdk.mcp.server import MCPServer

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "PENDING_FORMAT_VERSION",
    "Agent",
    "AgentEvent",
    "Approve",
    "ConfirmationRequired",
    "Decision",
    "Decline",
    "EventHandler",
    "LLMCallFinished",
    "LLMCallStarted",
    "Outcome",
    "PendingConfirmation",
    "RunResult",
    "TextDelta",
    "ToolCalled",
]

DEFAULT_MAX_ITERATIONS = 5  # LLM calls per user message, across pauses and resumes
CALL_ID_HEADER = "x-litellm-call-id"  # the proxy takes the client's call id
DEFAULT_AGENT_VERSION = "1"
PENDING_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Approve:
    """Run a pending call; with ``arguments``, run it with these instead (validated
    against the tool's schema before anything runs). ``for_run=True``: the same
    tool's later calls in this run (this user message) need no more confirmation."""

    arguments: Mapping[str, Any] | None = None
    for_run: bool = False


@dataclass(frozen=True)
class Decline:
    """Do not run a pending call; ``reason`` is passed to the model."""

    reason: str | None = None


Decision = Approve | Decline
"""A human's answer for one pending tool call."""


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    NEEDS_CONFIRMATION = "needs_confirmation"
    MAX_ITERATIONS = "max_iterations"


@dataclass(frozen=True)
class PendingConfirmation:
    """A run stopped before tool calls that need a human yes.

    ``messages`` is the whole conversation so far (system prompt, the assistant
    turn with the calls, the results of the calls already run); ``calls`` are the
    calls waiting for the answer. ``iterations`` LLM calls were made so far (they
    count against the resumed run's ``max_iterations``); ``llm_calls`` and
    ``tool_calls`` are what the run did so far (carried into the resumed result).
    """

    agent_name: str
    agent_version: str
    alias: str
    run_id: str
    messages: tuple[dict[str, Any], ...]
    calls: tuple[ToolCall, ...]
    iterations: int
    created_at: float
    expires_at: float | None = None
    user: str | None = None
    format_version: int = PENDING_FORMAT_VERSION
    llm_calls: tuple[Completion, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    approved_tools: tuple[str, ...] = ()  # approved for the rest of the run (Approve.for_run)

    def to_json(self) -> str:
        return _PENDING_ADAPTER.dump_json(self).decode()

    @property
    def resume_key(self) -> str:
        """Names this saved state (run, point in the run, pending calls) for a
        :class:`~sdk.resumes.ResumeStore`."""
        return f"{self.run_id}:{self.iterations}:{','.join(c.id for c in self.calls)}"

    @classmethod
    def from_json(cls, data: str | bytes) -> PendingConfirmation:
        try:
            pending = _PENDING_ADAPTER.validate_json(data)
        except pydantic.ValidationError as exc:
            raise ConfirmationError(f"not a pending confirmation: {exc}") from exc
        if pending.format_version != PENDING_FORMAT_VERSION:
            raise ConfirmationError(f"unsupported format_version {pending.format_version}")
        return pending


_PENDING_ADAPTER = pydantic.TypeAdapter(PendingConfirmation)


@dataclass(frozen=True)
class RunResult:
    """How a run (or resume) ended. ``llm_calls`` has every completion made, with
    usage, cost, latency and deployment; ``tool_calls`` every tool call handled."""

    outcome: Outcome
    text: str
    run_id: str
    messages: tuple[dict[str, Any], ...]
    llm_calls: tuple[Completion, ...]
    tool_calls: tuple[ToolCallRecord, ...]
    pending: PendingConfirmation | None = None
    output: Any = None  # the final answer as the agent's ``output_type``, when it has one

    @property
    def usage(self) -> Usage:
        return sum((c.usage for c in self.llm_calls), Usage())

    @property
    def cost(self) -> float | None:
        """Total cost of the LLM calls, or ``None`` when the proxy reported none."""
        costs = [c.cost for c in self.llm_calls if c.cost is not None]
        return sum(costs) if costs else None

    def to_json(self) -> str:
        """The result as JSON (``output`` as plain JSON data)."""
        return _RESULT_ADAPTER.dump_json(self).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> RunResult:
        return _RESULT_ADAPTER.validate_json(data)


_RESULT_ADAPTER = pydantic.TypeAdapter(RunResult)


@dataclass(frozen=True)
class LLMCallStarted:
    """An LLM request is about to be sent; ``request_id`` is its call id at the proxy."""

    run_id: str
    iteration: int
    request_id: str


@dataclass(frozen=True)
class LLMCallFinished:
    run_id: str
    iteration: int
    completion: Completion


@dataclass(frozen=True)
class ToolCalled:
    run_id: str
    record: ToolCallRecord


@dataclass(frozen=True)
class ConfirmationRequired:
    run_id: str
    pending: PendingConfirmation


@dataclass(frozen=True)
class TextDelta:
    run_id: str
    text: str


AgentEvent = (LLMCallStarted | LLMCallFinished | ToolCalled | ConfirmationRequired
              | TextDelta)
EventHandler = Callable[[AgentEvent], Awaitable[None] | None]


# ----------------------------------------------------------------- the loop (no I/O)


@dataclass(frozen=True)
class _AskModel:
    messages: list[dict[str, Any]]
    run_id: str
    user: str | None
    request_id: str


@dataclass(frozen=True)
class _RunTools:
    calls: tuple[ToolCall, ...]
    approved: bool | None
    run_id: str


_Loop = Generator[_AskModel | _RunTools, Any, RunResult]


@dataclass
class _Run:
    """The mutable state of one run or resume."""

    run_id: str
    messages: list[dict[str, Any]]
    iterations: int = 0
    user: str | None = None
    llm_calls: list[Completion] = field(default_factory=list)
    records: list[ToolCallRecord] = field(default_factory=list)
    events: list[AgentEvent] = field(default_factory=list)  # for the driver to dispatch
    approved_tools: set[str] = field(default_factory=set)  # need no confirmation this run

    def emit(self, event: AgentEvent) -> None:
        self.events.append(event)

    def take_events(self) -> list[AgentEvent]:
        events, self.events = self.events, []
        return events

    def result(self, outcome: Outcome, text: str,
               pending: PendingConfirmation | None = None, output: Any = None) -> RunResult:
        return RunResult(outcome, text, self.run_id, tuple(self.messages),
                         tuple(self.llm_calls), tuple(self.records), pending, output)


class Agent:
    """An LLM with tools, looping until it answers.

    ``gateway`` is a :class:`Gateway` for :meth:`run`/:meth:`resume` or an
    :class:`AsyncGateway` for :meth:`arun`/:meth:`aresume` (default: one built
    from the environment). ``tools`` is a list of :class:`~sdk.tools.Tool` or any
    :class:`~sdk.tool_calls.ToolRegistry`. ``params`` go to every completion request
    (e.g. ``temperature``). See the module docstring for ``run_id``,
    ``tool_result_cache`` and ``on_event``. ``mcp_servers``
    (:class:`sdk.mcp.MCPServer`): their allowed tools are added to ``tools`` (listed
    here, once: the servers are connected to now).
    """

    def __init__(self, *, name: str, alias: str, instructions: str = "",
                 tools: Iterable[Tool] | ToolRegistry = (),
                 gateway: Gateway | AsyncGateway | None = None,
                 max_iterations: int = DEFAULT_MAX_ITERATIONS, role: str | None = None,
                 persona: str | None = None, version: str = DEFAULT_AGENT_VERSION,
                 stream: bool = False, on_event: EventHandler | None = None,
                 tool_result_cache: ToolResultCache | None = None,
                 confirmation_ttl: float | None = None, tags: Sequence[str] = (),
                 params: Mapping[str, Any] | None = None,
                 max_tool_threads: int = DEFAULT_MAX_TOOL_THREADS,
                 mcp_servers: Sequence[MCPServer] = (),
                 tool_error_text: ErrorText = short_error,
                 output_type: type[pydantic.BaseModel] | None = None,
                 resume_store: ResumeStore | None = None) -> None:
        if max_iterations < 1:
            raise ValueError("max_iterations must be at least 1")
        if mcp_servers:
            if isinstance(tools, ToolRegistry):
                raise TypeError("mcp_servers= needs tools= as a list of tools")
            from sdk.mcp.server import mcp_tools
            tools = [*tools, *mcp_tools(mcp_servers)]
        self.name, self.alias, self.version = name, alias, version
        self.registry: ToolRegistry = (tools if isinstance(tools, ToolRegistry)
                                       else Toolbox(tools))
        self.system_prompt = build_system_prompt(name, role=role, persona=persona,
                                                 instructions=instructions)
        self.output_type = output_type
        self.resume_store = resume_store
        if output_type is not None:
            self.system_prompt += "\n\n" + str(schema_instruction(output_type)["content"])
        self.gateway = gateway
        self.max_iterations, self.stream = max_iterations, stream
        self.on_event, self.tool_result_cache = on_event, tool_result_cache
        self.confirmation_ttl, self.tags = confirmation_ttl, tuple(tags)
        self.params = dict(params or {})
        self.max_tool_threads = max_tool_threads
        self.tool_error_text = tool_error_text

    # -- public API

    def run(self, messages: Messages, *, run_id: str | None = None,
            user: str | None = None) -> RunResult:
        """Run the loop on a conversation (a user prompt or OpenAI-format messages)."""
        run = self._new_run(messages, run_id, user)
        return self._drive(run, self._loop(run))

    async def arun(self, messages: Messages, *, run_id: str | None = None,
                   user: str | None = None) -> RunResult:
        """The async twin of :meth:`run` (needs an :class:`AsyncGateway`)."""
        run = self._new_run(messages, run_id, user)
        return await self._adrive(run, self._loop(run))

    def resume(self, pending: PendingConfirmation, *, approved: bool | None = None,
               note: str | None = None,
               decisions: Mapping[str, Decision] | None = None) -> RunResult:
        """Go on after a human answered: ``approved=True``/``False`` for all the
        pending calls, or ``decisions={call_id: Approve() | Approve(arguments=...) |
        Decline(reason)}`` with one decision per pending call. ``note`` is passed
        to the model with the calls' results. Raises :class:`ConfirmationError`
        (nothing runs) when a decision names a call that is not pending, a call
        has no decision, or edited arguments are invalid."""
        plan = self.plan(pending, approved, decisions)
        earlier = self._claim(pending)
        if earlier is not None:
            return earlier
        run = self._resumed_run(pending)
        return self._finish_resume(pending,
                                   self._drive(run, self._resume_loop(run, pending, plan, note)))

    async def aresume(self, pending: PendingConfirmation, *, approved: bool | None = None,
                      note: str | None = None,
                      decisions: Mapping[str, Decision] | None = None) -> RunResult:
        """The async twin of :meth:`resume`."""
        plan = self.plan(pending, approved, decisions)
        store = self.resume_store
        if not isinstance(store, AsyncResumeStore):
            earlier = self._claim(pending)
            if earlier is not None:
                return earlier
            run = self._resumed_run(pending)
            return self._finish_resume(pending, await self._adrive(
                run, self._resume_loop(run, pending, plan, note)))
        if not await store.aclaim(pending.resume_key):
            return self._earlier(pending, await store.aresult(pending.resume_key))
        run = self._resumed_run(pending)
        result = await self._adrive(run, self._resume_loop(run, pending, plan, note))
        await store.afinish(pending.resume_key, result.to_json())
        return result

    def _claim(self, pending: PendingConfirmation) -> RunResult | None:
        """With a ``resume_store``: ``None`` when this resume is the first of
        ``pending``, else the first one's result (:class:`ConfirmationError` while it
        runs)."""
        if self.resume_store is None or self.resume_store.claim(pending.resume_key):
            return None
        return self._earlier(pending, self.resume_store.result(pending.resume_key))

    @staticmethod
    def _earlier(pending: PendingConfirmation, done: str | None) -> RunResult:
        """The result of the resume that claimed ``pending`` first (refused while it runs)."""
        if done is None:
            raise ConfirmationError(f"this confirmation (run {pending.run_id}) was resumed "
                                    "already; that resume has not finished")
        return RunResult.from_json(done)

    def _finish_resume(self, pending: PendingConfirmation, result: RunResult) -> RunResult:
        if self.resume_store is not None:
            self.resume_store.finish(pending.resume_key, result.to_json())
        return result

    def plan(self, pending: PendingConfirmation, approved: bool | None = None,
             decisions: Mapping[str, Decision] | None = None
             ) -> list[tuple[ToolCall, Decision]]:
        """Check the decisions against ``pending`` (see :meth:`resume`): each pending
        call, with edited arguments applied, and its decision. Runs nothing."""
        self._check(pending)
        if (approved is None) == (decisions is None):
            raise ConfirmationError("pass either approved= or decisions=")
        if decisions is None:
            every: Decision = Approve() if approved else Decline()
            return [(call, every) for call in pending.calls]
        ids = {call.id for call in pending.calls}
        unknown = sorted(set(decisions) - ids)
        if unknown:
            raise ConfirmationError(f"not pending: {', '.join(unknown)} "
                                    f"(pending: {', '.join(sorted(ids))})")
        missing = [call.id for call in pending.calls if call.id not in decisions]
        if missing:
            raise ConfirmationError(f"no decision for pending call(s): {', '.join(missing)}")
        return [(self._edited(call, decisions[call.id]), decisions[call.id])
                for call in pending.calls]

    def _edited(self, call: ToolCall, decision: Decision) -> ToolCall:
        if not isinstance(decision, Approve) or decision.arguments is None:
            return call
        found = self.registry.get(call.name)
        if found is None:
            raise InvalidDecisionError(f"there is no tool named {call.name!r}",
                                       call_id=call.id)
        try:
            found.validate(decision.arguments)
        except pydantic.ValidationError as exc:
            raise InvalidDecisionError(
                f"invalid arguments for {call.name} ({call.id}): {_errors(exc)}",
                call_id=call.id) from exc
        arguments = dict(decision.arguments)
        return dataclasses.replace(call, arguments=arguments,
                                   raw_arguments=json.dumps(arguments))

    # -- the loop

    def _new_run(self, messages: Messages, run_id: str | None, user: str | None) -> _Run:
        """The run's history: this agent's system prompt, then ``messages`` without a
        copy of that prompt (``result.messages`` carried into the next run has one)."""
        given = [m for m in as_messages(messages)
                 if not (m.get("role") == "system" and m.get("content") == self.system_prompt)]
        history = [{"role": "system", "content": self.system_prompt}, *given]
        return _Run(run_id or uuid.uuid4().hex, history, user=user)

    def _loop(self, run: _Run) -> _Loop:
        text = ""
        error: pydantic.ValidationError | None = None
        while run.iterations < self.max_iterations:
            request_id = uuid.uuid4().hex
            run.emit(LLMCallStarted(run.run_id, run.iterations + 1, request_id))
            completion = yield _AskModel(list(run.messages), run.run_id, run.user, request_id)
            completion = self._observe(run, completion)
            text, error = completion.text, None
            if not completion.tool_calls:
                if self.output_type is None:
                    return run.result(Outcome.COMPLETED, text)
                try:
                    return run.result(Outcome.COMPLETED, text,
                                      output=parse_output(text, self.output_type))
                except pydantic.ValidationError as exc:  # re-asked, within the budget
                    run.messages.append(correction_message(exc))
                    error = exc
                    continue
            gated, free = self._split(completion.tool_calls)
            allowed = tuple(c for c in gated if c.name in run.approved_tools)
            gated = tuple(c for c in gated if c not in allowed)
            if free:
                self._record(run, (yield _RunTools(free, None, run.run_id)))
            if allowed:  # approved for the rest of the run
                self._record(run, (yield _RunTools(allowed, True, run.run_id)))
            if gated:
                return self._pause(run, gated, text)
        if self.output_type is not None and error is not None and text:
            raise StructuredOutputError(
                f"no valid {self.output_type.__name__} within {self.max_iterations} LLM calls: "
                f"{error}", raw_text=text, attempts=run.iterations, errors=str(error))
        return run.result(Outcome.MAX_ITERATIONS, text)

    @staticmethod
    def _resumed_run(pending: PendingConfirmation) -> _Run:
        return _Run(pending.run_id, list(pending.messages), pending.iterations, pending.user,
                    list(pending.llm_calls), list(pending.tool_calls),
                    approved_tools=set(pending.approved_tools))

    def _resume_loop(self, run: _Run, pending: PendingConfirmation,
                     plan: list[tuple[ToolCall, Decision]], note: str | None) -> _Loop:
        approved = tuple(call for call, decision in plan if isinstance(decision, Approve))
        run.approved_tools |= {call.name for call, decision in plan
                               if isinstance(decision, Approve) and decision.for_run}
        ran: list[ToolCallRecord] = (yield _RunTools(approved, True, run.run_id)) \
            if approved else []
        by_id = {record.call_id: record for record in ran}
        records = []
        for original, (call, decision) in zip(pending.calls, plan, strict=True):
            if isinstance(decision, Decline):
                records.append(declined_record(call, decision.reason or note))
                continue
            edited = call.arguments if call is not original else None
            records.append(_with_note(by_id[call.id], note, edited))
        self._record(run, records)
        return (yield from self._loop(run))

    def _observe(self, run: _Run, completion: Completion) -> Completion:
        """Give the calls stable ids, append the turn, tell the observer."""
        run.iterations += 1
        calls = tuple(dataclasses.replace(call, id=stable_call_id(
            run.run_id, run.iterations, i, call.name, call.raw_arguments))
            for i, call in enumerate(completion.tool_calls))
        completion = dataclasses.replace(completion, tool_calls=calls)
        run.llm_calls.append(completion)
        run.messages.append(completion.to_message())
        run.emit(LLMCallFinished(run.run_id, run.iterations, completion))
        return completion

    def _split(self, calls: Sequence[ToolCall]
               ) -> tuple[tuple[ToolCall, ...], tuple[ToolCall, ...]]:
        """(calls to confirm, calls to run now). A gated call whose arguments are
        invalid is run now: it fails validation without running, and the model
        is told, instead of asking a human about a call that cannot happen."""
        gated = tuple(c for c in calls if self._needs_confirmation(c))
        return gated, tuple(c for c in calls if c not in gated)

    def _needs_confirmation(self, call: ToolCall) -> bool:
        found = self.registry.get(call.name)
        if found is None or not found.requires_confirmation or call.parse_error:
            return False
        try:
            kwargs = found.validate(call.arguments)
        except pydantic.ValidationError:
            return False
        return found.needs_confirmation(kwargs)

    def _record(self, run: _Run, records: Sequence[ToolCallRecord]) -> None:
        for record in records:
            run.records.append(record)
            run.messages.append(record.to_message())
            run.emit(ToolCalled(run.run_id, record))

    def _pause(self, run: _Run, calls: tuple[ToolCall, ...], text: str) -> RunResult:
        now = time.time()
        pending = PendingConfirmation(
            agent_name=self.name, agent_version=self.version, alias=self.alias,
            run_id=run.run_id, messages=tuple(run.messages), calls=calls,
            iterations=run.iterations, created_at=now, user=run.user,
            llm_calls=tuple(run.llm_calls), tool_calls=tuple(run.records),
            approved_tools=tuple(sorted(run.approved_tools)),
            expires_at=now + self.confirmation_ttl if self.confirmation_ttl else None)
        run.emit(ConfirmationRequired(run.run_id, pending))
        return run.result(Outcome.NEEDS_CONFIRMATION, text, pending)

    def _check(self, pending: PendingConfirmation) -> None:
        if pending.agent_name != self.name:
            raise ConfirmationError(f"this confirmation belongs to agent "
                                    f"{pending.agent_name!r}, not {self.name!r}")
        if pending.expires_at is not None and time.time() > pending.expires_at:
            raise ConfirmationExpiredError(f"confirmation for run {pending.run_id} expired")

    def _notify(self, event: AgentEvent) -> None:
        if self.on_event is None:
            return
        answer = self.on_event(event)
        if inspect.isawaitable(answer):
            if inspect.iscoroutine(answer):
                answer.close()
            raise TypeError("an async on_event handler needs arun()/aresume()")

    async def _anotify(self, event: AgentEvent) -> None:
        if self.on_event is None:
            return
        answer = self.on_event(event)
        if inspect.isawaitable(answer):
            await answer

    def _dispatch(self, run: _Run) -> None:
        for event in run.take_events():
            self._notify(event)

    async def _adispatch(self, run: _Run) -> None:
        for event in run.take_events():
            await self._anotify(event)

    # -- drivers (the I/O)

    def _request(self, ask: _AskModel) -> dict[str, Any]:
        headers = {**self.params.get("extra_headers", {}), CALL_ID_HEADER: ask.request_id}
        return {"alias": self.alias, "messages": ask.messages, "tools": self.registry.schemas(),
                "tags": self.tags, "user": ask.user, **self.params, "extra_headers": headers}

    def _sync_gateway(self) -> Gateway:
        if self.gateway is None:
            self.gateway = Gateway()
        if not isinstance(self.gateway, Gateway):
            raise TypeError("run()/resume() need a Gateway; use arun()/aresume() "
                            "with an AsyncGateway")
        return self.gateway

    def _async_gateway(self) -> AsyncGateway:
        if self.gateway is None:
            self.gateway = AsyncGateway()
        if not isinstance(self.gateway, AsyncGateway):
            raise TypeError("arun()/aresume() need an AsyncGateway; use run()/resume() "
                            "with a Gateway")
        return self.gateway

    def _complete(self, ask: _AskModel) -> Completion:
        gateway = self._sync_gateway()
        if not self.stream:
            return gateway.complete(**self._request(ask))
        with gateway.stream(**self._request(ask)) as stream:
            for delta in stream:
                self._notify(TextDelta(ask.run_id, delta))
            return stream.completion

    async def _acomplete(self, ask: _AskModel) -> Completion:
        gateway = self._async_gateway()
        if not self.stream:
            return await gateway.complete(**self._request(ask))
        async with gateway.stream(**self._request(ask)) as stream:
            async for delta in stream:
                await self._anotify(TextDelta(ask.run_id, delta))
            return await stream.result()

    def _drive(self, run: _Run, loop: _Loop) -> RunResult:
        try:
            action = next(loop)
            while True:
                self._dispatch(run)
                if isinstance(action, _AskModel):
                    reply: Any = self._complete(action)
                else:
                    reply = run_tool_calls(self.registry, action.calls, self.tool_result_cache,
                                           action.approved, action.run_id, self.max_tool_threads,
                                           self.tool_error_text)
                action = loop.send(reply)
        except StopIteration as done:
            self._dispatch(run)
            result: RunResult = done.value
            return result

    async def _adrive(self, run: _Run, loop: _Loop) -> RunResult:
        try:
            action = next(loop)
            while True:
                await self._adispatch(run)
                if isinstance(action, _AskModel):
                    reply: Any = await self._acomplete(action)
                else:
                    reply = await arun_tool_calls(self.registry, action.calls,
                                                  self.tool_result_cache, action.approved,
                                                  action.run_id, self.tool_error_text)
                action = loop.send(reply)
        except StopIteration as done:
            await self._adispatch(run)
            result: RunResult = done.value
            return result


def _with_note(record: ToolCallRecord, note: str | None,
               edited: Mapping[str, Any] | None = None) -> ToolCallRecord:
    """The result the model reads: edited arguments and the user's note appended."""
    text = record.result
    if edited is not None:
        text += f"\n(Run with arguments edited by the user: {json.dumps(dict(edited))})"
    if note:
        text += f"\n(Note from the user: {note})"
    return dataclasses.replace(record, result=text) if text != record.result else record


def _errors(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                     for e in exc.errors(include_url=False))
