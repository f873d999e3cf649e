"""The agent loop on httpx.MockTransport: tools, feedback, confirmation, events, ids."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pydantic import BaseModel

from sdk import (
    AI_TRANSPARENCY_CLAUSE,
    Agent,
    AgentEvent,
    Approve,
    ConfirmationError,
    ConfirmationExpiredError,
    ConfirmationRequired,
    Decline,
    InMemoryResumeStore,
    InMemoryToolResultCache,
    InvalidDecisionError,
    LLMCallFinished,
    LLMCallStarted,
    Outcome,
    PendingConfirmation,
    StructuredOutputError,
    TextDelta,
    ToolCalled,
    ToolContext,
    ToolError,
    current_tool_call,
    tool,
)
from sdk.tool_calls import error_type_only
from tests.sdk.fakes import FakeProxy, chat, chunk, sse

ran: list[str] = []


@tool
def lookup_order(order_id: int) -> dict[str, Any]:
    """Look an order up.

    Args:
        order_id: The order number.
    """
    ran.append(f"lookup {order_id}")
    return {"order_id": order_id, "status": "shipped", "total": 30.0}


@tool(requires_confirmation=True)
def refund_order(order_id: int, amount: float) -> str:
    """Refund an order (needs a human yes)."""
    ran.append(f"refund {order_id} {amount}")
    return f"refunded {amount:.2f} on order {order_id}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def agent_for(proxy: FakeProxy, **options: Any) -> Agent:
    return Agent(name="support", alias="fast", instructions="Help with orders.",
                 tools=[lookup_order, refund_order], gateway=proxy.gateway(), **options)


def _tool_messages(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


def test_tool_loop_feeds_results_back_and_reports_every_call() -> None:
    proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": 7}, "x1")], usage=(10, 2)),
                      chat("Order 7 has shipped.", usage=(20, 5), cost=0.5))
    result = agent_for(proxy).run("Where is order 7?")
    assert result.outcome is Outcome.COMPLETED
    assert result.text == "Order 7 has shipped."
    assert ran == ["lookup 7"]
    second = proxy.messages(1)
    assert second[0]["role"] == "system" and AI_TRANSPARENCY_CLAUSE in second[0]["content"]
    assert "Help with orders." in second[0]["content"]
    assert second[2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert json.loads(second[3]["content"]) == {"order_id": 7, "status": "shipped",
                                                "total": 30.0}
    assert second[3]["tool_call_id"] == second[2]["tool_calls"][0]["id"]
    assert [c.usage.total_tokens for c in result.llm_calls] == [12, 25]
    assert result.usage.total_tokens == 37
    assert result.cost == pytest.approx(0.00012 + 0.5)
    assert [(r.name, r.ok) for r in result.tool_calls] == [("lookup_order", True)]
    assert {t["function"]["name"] for t in proxy.requests[0]["tools"]} == {
        "lookup_order", "refund_order"}


def test_invalid_arguments_go_back_to_the_model() -> None:
    proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": "seven"}, "x1")]),
                      chat(None, [("lookup_order", {"order_id": 7}, "x2")]),
                      chat("Found it."))
    result = agent_for(proxy).run("Where is order seven?")
    assert result.outcome is Outcome.COMPLETED and ran == ["lookup 7"]
    feedback = _tool_messages(proxy.messages(1))[0]
    assert feedback.startswith("Error: invalid arguments for lookup_order")
    assert "order_id" in feedback
    assert [r.ok for r in result.tool_calls] == [False, True]


def test_iteration_guard() -> None:
    proxy = FakeProxy(chat("thinking...", [("lookup_order", {"order_id": 1}, "x")]))
    result = agent_for(proxy, max_iterations=3).run("loop forever")
    assert result.outcome is Outcome.MAX_ITERATIONS
    assert len(proxy.requests) == 3 and len(result.llm_calls) == 3
    assert ran == ["lookup 1"] * 3
    assert result.text == "thinking..."


def test_tool_call_ids_are_stable_per_run_and_unique_per_iteration() -> None:
    def run(run_id: str) -> list[str]:
        proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": 1}, "same")]),
                          chat(None, [("lookup_order", {"order_id": 1}, "same")]), chat("done"))
        return [r.call_id for r in agent_for(proxy).run("x", run_id=run_id).tool_calls]
    first, again, other = run("run-1"), run("run-1"), run("run-2")
    assert first == again
    assert len(set(first)) == 2
    assert not set(first) & set(other)


def test_tool_result_cache_prevents_running_twice() -> None:
    cache = InMemoryToolResultCache()
    for _ in range(2):
        proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": 3}, "x")]), chat("ok"))
        result = agent_for(proxy, tool_result_cache=cache).run("x", run_id="redelivered")
    assert ran == ["lookup 3"]
    assert result.tool_calls[0].cached


def test_events_are_emitted_in_order() -> None:
    events: list[AgentEvent] = []
    proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": 1}, "a"),
                                  ("refund_order", {"order_id": 1, "amount": 5}, "b")]))
    result = agent_for(proxy, on_event=events.append).run("refund 1", run_id="r")
    assert [type(e) for e in events] == [LLMCallStarted, LLMCallFinished, ToolCalled,
                                         ConfirmationRequired]
    assert all(e.run_id == "r" for e in events)
    assert isinstance(events[3], ConfirmationRequired) and events[3].pending == result.pending
    started = events[0]
    assert isinstance(started, LLMCallStarted) and started.iteration == 1
    # the request carries the id, for the proxy's call id and spend row
    assert proxy.headers[0]["x-litellm-call-id"] == started.request_id


def test_streaming_agent_emits_text_deltas() -> None:
    events: list[AgentEvent] = []
    proxy = FakeProxy(sse([chunk({"content": "Hi "}), chunk({"content": "there"}),
                           chunk({}, "stop")]))
    result = agent_for(proxy, stream=True, on_event=events.append).run("hello")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi ", "there"]
    assert result.text == "Hi there" and proxy.requests[0]["stream"] is True


# ----------------------------------------------------------------- confirmation


def _stopped() -> tuple[FakeProxy, PendingConfirmation]:
    proxy = FakeProxy(chat("Let me check and refund.",
                           [("lookup_order", {"order_id": 9}, "a"),
                            ("refund_order", {"order_id": 9, "amount": 30}, "b")]))
    result = agent_for(proxy).run("Refund order 9", run_id="run-9", user="cust-1")
    assert result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None
    return proxy, result.pending


def test_a_confirmation_tool_stops_the_run_after_the_others_ran() -> None:
    _, pending = _stopped()
    assert ran == ["lookup 9"]
    assert [(c.name, dict(c.arguments)) for c in pending.calls] == [
        ("refund_order", {"order_id": 9, "amount": 30})]
    assert (pending.agent_name, pending.alias, pending.run_id, pending.user) == (
        "support", "fast", "run-9", "cust-1")
    assert pending.messages[-1]["role"] == "tool"
    assert pending.iterations == 1


def test_pending_confirmation_json_round_trip() -> None:
    _, pending = _stopped()
    text = pending.to_json()
    assert json.loads(text)["calls"][0]["name"] == "refund_order"
    assert PendingConfirmation.from_json(text) == pending
    assert PendingConfirmation.from_json(text.encode()) == pending


def test_resume_approved_in_a_new_agent_runs_the_call() -> None:
    _, pending = _stopped()
    proxy = FakeProxy(chat("Refunded 30.00."))
    result = agent_for(proxy).resume(PendingConfirmation.from_json(pending.to_json()),
                                     approved=True, note="ok by Sam")
    assert result.outcome is Outcome.COMPLETED and result.text == "Refunded 30.00."
    assert ran == ["lookup 9", "refund 9 30.0"]
    assert [(r.name, r.approved) for r in result.tool_calls] == [  # the whole turn's calls
        ("lookup_order", None), ("refund_order", True)]
    told = _tool_messages(proxy.messages(0))[-1]
    assert told.startswith("refunded 30.00 on order 9") and "ok by Sam" in told
    assert proxy.requests[0]["user"] == "cust-1"


def test_resume_declined_never_runs_the_call_and_tells_the_model() -> None:
    _, pending = _stopped()
    proxy = FakeProxy(chat("Okay, no refund."))
    result = agent_for(proxy).resume(pending, approved=False, note="amount too high")
    assert ran == ["lookup 9"]
    told = _tool_messages(proxy.messages(0))[-1]
    assert "declined" in told and "amount too high" in told
    assert result.tool_calls[-1].approved is False and not result.tool_calls[-1].ok


def test_a_gated_call_with_invalid_arguments_is_rejected_without_asking() -> None:
    proxy = FakeProxy(chat(None, [("refund_order", {"order_id": 9}, "a")]), chat("Sorry."))
    result = agent_for(proxy).run("refund 9")
    assert result.outcome is Outcome.COMPLETED and ran == []
    assert "amount" in _tool_messages(proxy.messages(1))[0]


def test_resume_checks_owner_expiry_and_format() -> None:
    _, pending = _stopped()
    with pytest.raises(ConfirmationError, match="support"):
        Agent(name="other", alias="fast", gateway=FakeProxy(chat("x")).gateway()).resume(
            pending, approved=True)
    proxy = FakeProxy(chat(None, [("refund_order", {"order_id": 1, "amount": 1}, "a")]))
    expiring = agent_for(proxy, confirmation_ttl=0.01).run("refund").pending
    assert expiring is not None and expiring.expires_at is not None
    time.sleep(0.02)
    with pytest.raises(ConfirmationExpiredError):
        agent_for(proxy).resume(expiring, approved=True)
    assert ran == ["lookup 9"]
    with pytest.raises(ConfirmationError):
        PendingConfirmation.from_json('{"agent_name": "support"}')


# ----------------------------------------------------------------- async


def test_arun_runs_parallel_calls_concurrently() -> None:
    """The four calls of one answer run at once: each waits until all four have started
    (counted, not timed: a timed bound failed on a loaded machine)."""
    started: list[int] = []
    all_in = asyncio.Event()

    @tool
    async def slow(n: int) -> int:
        started.append(n)
        if len(started) == 4:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), timeout=5)  # sequential calls never get here
        return n * 2

    proxy = FakeProxy(chat(None, [("slow", {"n": i}, f"c{i}") for i in range(4)]), chat("8"))
    agent = Agent(name="a", alias="fast", tools=[slow], gateway=proxy.async_gateway())
    result = asyncio.run(agent.arun("go"))
    assert sorted(started) == [0, 1, 2, 3]
    assert [r.result for r in result.tool_calls] == ["0", "2", "4", "6"]


def test_run_needs_a_sync_gateway() -> None:
    agent = Agent(name="a", alias="fast", gateway=FakeProxy(chat("x")).async_gateway())
    with pytest.raises(TypeError, match="arun"):
        agent.run("hi")


def test_tools_see_their_call_and_a_stable_idempotency_key() -> None:
    seen: list[ToolContext] = []

    @tool
    def remember() -> str:
        seen.append(current_tool_call())
        return "ok"

    @tool
    async def aremember() -> str:
        seen.append(current_tool_call())
        return "ok"

    def answers() -> FakeProxy:
        return FakeProxy(chat(None, [("remember", {}, "a"), ("aremember", {}, "b")]),
                         chat("done"))

    Agent(name="a", alias="fast", tools=[remember, aremember],
          gateway=answers().gateway()).run("x", run_id="m-1")
    asyncio.run(Agent(name="a", alias="fast", tools=[remember, aremember],
                      gateway=answers().async_gateway()).arun("x", run_id="m-1"))
    first, second = (sorted(seen[:2], key=lambda c: c.tool_name),
                     sorted(seen[2:], key=lambda c: c.tool_name))
    assert [c.tool_name for c in first] == [c.tool_name for c in second] == [
        "aremember", "remember"]
    assert {c.run_id for c in seen} == {"m-1"}
    assert [c.idempotency_key for c in first] == [c.idempotency_key for c in second]
    assert first[0].idempotency_key != first[1].idempotency_key
    with pytest.raises(LookupError):
        current_tool_call()


# ----------------------------------------------------------------- per-call decisions


def _two_gated() -> tuple[PendingConfirmation, str, str]:
    proxy = FakeProxy(chat(None, [("refund_order", {"order_id": 1, "amount": 10}, "a"),
                                  ("refund_order", {"order_id": 2, "amount": 20}, "b")]))
    pending = agent_for(proxy).run("refund 1 and 2", run_id="run-2").pending
    assert pending is not None and len(pending.calls) == 2
    return pending, pending.calls[0].id, pending.calls[1].id


def test_per_call_decisions_run_only_the_approved_call_with_edited_arguments() -> None:
    pending, first, second = _two_gated()
    proxy = FakeProxy(chat("One refund done."))
    result = agent_for(proxy).resume(pending, decisions={
        first: Approve(arguments={"order_id": 1, "amount": 5}), second: Decline("wrong order")})
    assert ran == ["refund 1 5.0"]
    assert result.outcome is Outcome.COMPLETED
    done, declined = result.tool_calls
    assert (done.approved, dict(done.arguments)) == (True, {"order_id": 1, "amount": 5})
    assert (declined.approved, declined.ok) == (False, False)
    told = _tool_messages(proxy.messages(0))
    assert told[0].startswith("refunded 5.00 on order 1") and '"amount": 5' in told[0]
    assert "declined" in told[1] and "wrong order" in told[1]


async def _aresume(pending: PendingConfirmation, **kwargs: Any) -> Any:
    proxy = FakeProxy(chat("ok"))
    agent = Agent(name="support", alias="fast", tools=[lookup_order, refund_order],
                  gateway=proxy.async_gateway())
    return await agent.aresume(pending, **kwargs)


def test_aresume_takes_decisions_too() -> None:
    pending, first, second = _two_gated()
    asyncio.run(_aresume(pending, decisions={first: Decline(), second: Approve()}))
    assert ran == ["refund 2 20.0"]


@pytest.mark.parametrize("decisions, error, match", [
    ({"call_nope": Approve()}, ConfirmationError, "not pending: call_nope"),
    ("first-only", ConfirmationError, "no decision for pending call"),
    ("bad-args", InvalidDecisionError, "amount"),
])
def test_bad_decisions_are_refused_before_anything_runs(decisions: Any, error: type[Exception],
                                                        match: str) -> None:
    pending, first, second = _two_gated()
    if decisions == "first-only":
        decisions = {first: Approve()}
    elif decisions == "bad-args":
        decisions = {first: Approve(arguments={"order_id": 1}), second: Approve()}
    proxy = FakeProxy(chat("never"))
    with pytest.raises(error, match=match):
        agent_for(proxy).resume(pending, decisions=decisions)
    assert ran == [] and proxy.requests == []
    with pytest.raises(ConfirmationError, match="either"):
        agent_for(proxy).resume(pending)


def test_a_turn_is_bounded_across_resumes_and_keeps_its_usage() -> None:
    asks = [chat(f"step {i}", [("refund_order", {"order_id": i, "amount": 1.0}, f"r{i}")],
                 usage=(10, 1), cost=0.25) for i in range(1, 4)]
    proxy = FakeProxy(*asks, chat("never asked"))
    agent = agent_for(proxy, max_iterations=3)
    result = agent.run("refund everything")
    resumes = 0
    while result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None:
        pending = PendingConfirmation.from_json(result.pending.to_json())
        result = agent.resume(pending, approved=True)
        resumes += 1
    assert resumes == 3 and result.outcome is Outcome.MAX_ITERATIONS
    assert len(proxy.requests) == 3  # 3 LLM calls for the user message, not 3 per resume
    assert ran == ["refund 1 1.0", "refund 2 1.0", "refund 3 1.0"]
    assert len(result.llm_calls) == 3 and result.usage.total_tokens == 33
    assert result.cost == pytest.approx(0.75)
    assert [r.approved for r in result.tool_calls] == [True, True, True]


def test_an_async_event_handler_is_awaited_in_order_before_each_request() -> None:
    seen: list[str] = []

    async def handler(event: AgentEvent) -> None:
        await asyncio.sleep(0)
        seen.append(f"{type(event).__name__}@{len(proxy.requests)}")

    proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": 1}, "a")]), chat("done"))
    agent = Agent(name="support", alias="fast", tools=[lookup_order],
                  gateway=proxy.async_gateway(), on_event=handler)
    asyncio.run(agent.arun("go"))
    # each LLMCallStarted is handled before its request is sent (journal first)
    assert seen == ["LLMCallStarted@0", "LLMCallFinished@1", "ToolCalled@1",
                    "LLMCallStarted@1", "LLMCallFinished@2"]
    with pytest.raises(TypeError, match="async on_event"):
        agent_for(FakeProxy(chat("x")), on_event=handler).run("go")


def test_a_conversation_carried_forward_has_one_system_prompt() -> None:
    proxy = FakeProxy(chat("Hi Ada."), chat("You are Ada."))
    agent = agent_for(proxy)
    first = agent.run("I am Ada")
    agent.run([*first.messages, {"role": "user", "content": "Who am I?"}])
    sent = proxy.messages(1)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == agent.system_prompt


SECRET = "postgresql://app:hunter2@db.internal/orders"


@tool
def leaky(order_id: int) -> str:
    """A tool whose exception holds a secret on its second line."""
    raise ConnectionError(f"cannot connect\n{SECRET}")


@tool
def wordy(order_id: int) -> str:
    """A tool that tells the model why it failed."""
    raise ToolError(f"order {order_id} is archived; ask for a newer one")


def test_tool_exception_text_reaching_the_model_is_redacted() -> None:
    proxy = FakeProxy(chat(None, [("leaky", {"order_id": 1}, "a"), ("wordy", {"order_id": 2},
                                                                     "b")]), chat("sorry"))
    result = Agent(name="support", alias="fast", tools=[leaky, wordy],
                   gateway=proxy.gateway()).run("x")
    told = _tool_messages(proxy.messages(1))
    assert told[0] == "Error: leaky failed: ConnectionError: cannot connect"
    assert told[1] == "Error: wordy failed: order 2 is archived; ask for a newer one"
    assert SECRET not in json.dumps(proxy.requests)
    assert SECRET in (result.tool_calls[0].error or "")  # the caller keeps the whole text

    proxy = FakeProxy(chat(None, [("leaky", {"order_id": 1}, "a")]), chat("sorry"))
    Agent(name="support", alias="fast", tools=[leaky], gateway=proxy.gateway(),
          tool_error_text=error_type_only).run("x")
    assert _tool_messages(proxy.messages(1)) == ["Error: leaky failed: ConnectionError"]


@tool(requires_confirmation=lambda args: args["amount"] > 100)
def capped_refund(order_id: int, amount: float) -> str:
    """Refund an order: a human approves refunds over 100."""
    ran.append(f"capped {order_id} {amount}")
    return f"refunded {amount}"


def test_conditional_approval_asks_only_when_the_predicate_holds() -> None:
    proxy = FakeProxy(chat(None, [("capped_refund", {"order_id": 1, "amount": 20}, "a"),
                                  ("capped_refund", {"order_id": 2, "amount": 500}, "b")]),
                      chat("done"))
    agent = Agent(name="support", alias="fast", tools=[capped_refund], gateway=proxy.gateway())
    result = agent.run("refund both")
    assert result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None
    assert ran == ["capped 1 20.0"]  # under the cap: ran without asking
    assert [dict(c.arguments) for c in result.pending.calls] == [{"order_id": 2, "amount": 500}]


def test_approve_for_run_lets_the_same_tool_run_without_asking_again() -> None:
    proxy = FakeProxy(chat(None, [("refund_order", {"order_id": 1, "amount": 1.0}, "a")]),
                      chat(None, [("refund_order", {"order_id": 2, "amount": 2.0}, "b")]),
                      chat("both refunded"))
    agent = agent_for(proxy)
    paused = agent.run("refund 1 and 2")
    assert paused.pending is not None
    pending = PendingConfirmation.from_json(paused.pending.to_json())
    result = agent.resume(pending, decisions={pending.calls[0].id: Approve(for_run=True)})
    assert result.outcome is Outcome.COMPLETED and result.text == "both refunded"
    assert ran == ["refund 1 1.0", "refund 2 2.0"]
    assert [r.approved for r in result.tool_calls] == [True, True]
    agent.gateway = FakeProxy(chat(None, [("refund_order", {"order_id": 3, "amount": 3.0},
                                           "c")])).gateway()
    assert agent.run("refund 3").outcome is Outcome.NEEDS_CONFIRMATION  # a new run asks again


class Verdict(BaseModel):
    order_id: int
    refundable: bool


def test_output_type_gives_a_typed_answer_re_asking_within_the_budget() -> None:
    proxy = FakeProxy(chat(None, [("lookup_order", {"order_id": 7}, "a")]),
                      chat("```json\n{\"order_id\": \"seven\"}\n```"),
                      chat("{\"order_id\": 7, \"refundable\": true}"))
    agent = agent_for(proxy, output_type=Verdict)
    result = agent.run("can order 7 be refunded?")
    assert result.outcome is Outcome.COMPLETED
    assert result.output == Verdict(order_id=7, refundable=True)
    assert "JSON Schema" in proxy.messages(0)[0]["content"]  # in the one system prompt
    assert [m["role"] for m in proxy.messages(0)].count("system") == 1
    assert "did not validate" in proxy.messages(2)[-1]["content"]  # the correction
    with pytest.raises(StructuredOutputError) as caught:
        agent_for(FakeProxy(chat("not json")), output_type=Verdict, max_iterations=2).run("x")
    assert caught.value.raw_text == "not json"


def test_a_saved_confirmation_is_resumed_once_with_a_resume_store() -> None:
    _, pending = _stopped()
    saved = pending.to_json()
    store = InMemoryResumeStore()
    proxy = FakeProxy(chat("Refunded 30.00."))
    first = agent_for(proxy, resume_store=store).resume(PendingConfirmation.from_json(saved),
                                                        approved=True)
    again = agent_for(proxy, resume_store=store).resume(PendingConfirmation.from_json(saved),
                                                        approved=True)
    assert ran == ["lookup 9", "refund 9 30.0"]  # the refund ran once
    assert len(proxy.requests) == 1
    assert again.text == first.text == "Refunded 30.00." and again.outcome is first.outcome
    assert [c.usage for c in again.llm_calls] == [c.usage for c in first.llm_calls]
    store.results.clear()  # as if the first resume were still running
    with pytest.raises(ConfirmationError, match="resumed already"):
        agent_for(proxy, resume_store=store).resume(PendingConfirmation.from_json(saved),
                                                    approved=True)
