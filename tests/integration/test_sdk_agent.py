"""sdk.Agent through the real proxy (config/offline.yaml) and the scripted provider."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from sdk import (
    Agent,
    AgentEvent,
    AsyncGateway,
    Gateway,
    Outcome,
    PendingConfirmation,
    TextDelta,
    Tool,
    tool,
)
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.integration

TOOL_SLEEP = 0.3


def script(*steps: dict[str, Any]) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


def calls(*pairs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": args} for name, args in pairs]}


class Log:
    """What the tools did, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, Any]] = []
        self.spans: list[tuple[float, float]] = []

    def add(self, name: str, value: Any) -> None:
        with self.lock:
            self.entries.append((name, value))


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def gateway(offline_proxy: ProxyProcess) -> Gateway:
    return Gateway(offline_proxy.url, MASTER_KEY)


def order_tools(log: Log) -> list[Tool]:
    @tool
    def find_customer(email: str) -> dict[str, Any]:
        """Find a customer by email.

        Args:
            email: The customer's email address.
        """
        log.add("find_customer", email)
        return {"customer_id": 17, "email": email}

    @tool
    def list_orders(customer_id: int) -> list[int]:
        """The customer's order numbers."""
        log.add("list_orders", customer_id)
        return [1041, 1042]

    @tool
    def get_order_status(order_id: int) -> str:
        """An order's delivery status."""
        log.add("get_order_status", order_id)
        return f"order {order_id} is shipped"

    return [find_customer, list_orders, get_order_status]


def test_three_step_tool_loop(gateway: Gateway, scripted: ScriptedProvider, log: Log) -> None:
    steps = script(calls(("find_customer", {"email": "ann@example.com"})),
                   calls(("list_orders", {"customer_id": 17})),
                   calls(("get_order_status", {"order_id": 1042})),
                   {"text": "Your latest order, 1042, has shipped."})
    agent = Agent(name="helpdesk", alias="fast", tools=order_tools(log), gateway=gateway)
    result = agent.run(f"Where is my latest order? I am ann@example.com {steps}")
    assert result.outcome is Outcome.COMPLETED
    assert result.text == "Your latest order, 1042, has shipped."
    assert log.entries == [("find_customer", "ann@example.com"), ("list_orders", 17),
                           ("get_order_status", 1042)]
    assert [r.result for r in result.tool_calls] == [
        '{"customer_id":17,"email":"ann@example.com"}', "[1041,1042]", "order 1042 is shipped"]
    assert len(result.llm_calls) == len(scripted.requests()) == 4
    assert all(c.deployment == "fast-1" and c.cost and c.usage.total_tokens > 0
               for c in result.llm_calls)
    roles = [m["role"] for m in result.messages]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 3 + ["assistant"]


def slow_tools(log: Log) -> list[Tool]:
    def work(name: str) -> str:
        started = time.monotonic()
        time.sleep(TOOL_SLEEP)
        with log.lock:
            log.spans.append((started, time.monotonic()))
        return f"{name} done"

    @tool
    def check_stock(sku: str) -> str:
        """Stock level of a product."""
        return work(f"stock {sku}")

    @tool
    async def check_price(sku: str) -> str:
        """Price of a product."""
        started = time.monotonic()
        await asyncio.sleep(TOOL_SLEEP)
        with log.lock:
            log.spans.append((started, time.monotonic()))
        return f"price {sku} done"

    return [check_stock, check_price]


PARALLEL = script(calls(("check_stock", {"sku": "A1"}), ("check_price", {"sku": "A1"}),
                        ("check_stock", {"sku": "B2"})),
                  {"text": "All checked."})


def _assert_concurrent(log: Log) -> None:
    assert len(log.spans) == 3
    starts, ends = [s for s, _ in log.spans], [e for _, e in log.spans]
    assert max(starts) < min(ends), "the calls did not overlap"
    assert max(ends) - min(starts) < TOOL_SLEEP + 0.2


def test_parallel_tool_calls_run_concurrently(gateway: Gateway, scripted: ScriptedProvider,
                                              log: Log) -> None:
    agent = Agent(name="shop", alias="fast", tools=slow_tools(log), gateway=gateway)
    result = agent.run(f"Check A1 and B2 {PARALLEL}")
    assert result.outcome is Outcome.COMPLETED and result.text == "All checked."
    assert [r.result for r in result.tool_calls] == ["stock A1 done", "price A1 done",
                                                     "stock B2 done"]
    _assert_concurrent(log)


def test_parallel_tool_calls_run_concurrently_async(offline_proxy: ProxyProcess,
                                                    scripted: ScriptedProvider,
                                                    log: Log) -> None:
    async def scenario() -> Outcome:
        async with AsyncGateway(offline_proxy.url, MASTER_KEY) as gateway:
            agent = Agent(name="shop", alias="fast", tools=slow_tools(log), gateway=gateway)
            return (await agent.arun(f"Check A1 and B2 {PARALLEL}")).outcome
    assert asyncio.run(scenario()) is Outcome.COMPLETED
    _assert_concurrent(log)


def test_iteration_guard(gateway: Gateway, scripted: ScriptedProvider, log: Log) -> None:
    forever = script(calls(("list_orders", {"customer_id": 1})))
    agent = Agent(name="helpdesk", alias="fast", tools=order_tools(log), gateway=gateway,
                  max_iterations=3)
    result = agent.run(f"keep going {forever}")
    assert result.outcome is Outcome.MAX_ITERATIONS
    assert len(result.llm_calls) == len(scripted.requests()) == 3
    assert log.entries == [("list_orders", 1)] * 3


def refund_tools(log: Log) -> list[Tool]:
    @tool
    def lookup_order(order_id: int) -> str:
        """Look an order up."""
        log.add("lookup_order", order_id)
        return f"order {order_id}: 2 items, paid"

    @tool(requires_confirmation=True)
    def refund_order(order_id: int, amount: float) -> str:
        """Refund an order; a human must approve.

        Args:
            order_id: The order number.
            amount: How much to refund, in EUR.
        """
        log.add("refund_order", (order_id, amount))
        return f"refunded {amount:.2f} EUR on order {order_id}"

    return [lookup_order, refund_order]


def _stop_for_confirmation(offline_proxy: ProxyProcess, log: Log) -> str:
    """Run until the confirmation stop; return the pending confirmation as JSON."""
    agent = Agent(name="refunds", alias="fast", tools=refund_tools(log),
                  gateway=Gateway(offline_proxy.url, MASTER_KEY))
    # no script: the provider's demo heuristic calls the tool the user names
    result = agent.run("Please refund order 42")
    assert result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None
    assert [(c.name, dict(c.arguments)) for c in result.pending.calls] == [
        ("refund_order", {"order_id": 42, "amount": 42.0})]
    assert log.entries == []
    return result.pending.to_json()


def _new_agent(offline_proxy: ProxyProcess, log: Log) -> Agent:
    return Agent(name="refunds", alias="fast", tools=refund_tools(log),
                 gateway=Gateway(offline_proxy.url, MASTER_KEY))


def test_confirmation_approved_in_a_new_agent(offline_proxy: ProxyProcess,
                                              scripted: ScriptedProvider, log: Log) -> None:
    saved = _stop_for_confirmation(offline_proxy, log)
    result = _new_agent(offline_proxy, log).resume(PendingConfirmation.from_json(saved),
                                                   approved=True)
    assert log.entries == [("refund_order", (42, 42.0))]
    assert result.outcome is Outcome.COMPLETED
    # the demo model summarises the tool results it was sent: the proxy passed them on
    assert result.text == "Done. refunded 42.00 EUR on order 42"
    assert result.tool_calls[0].approved is True
    assert len(scripted.requests()) == 2


def test_confirmation_declined_in_a_new_agent(offline_proxy: ProxyProcess,
                                              scripted: ScriptedProvider, log: Log) -> None:
    saved = _stop_for_confirmation(offline_proxy, log)
    result = _new_agent(offline_proxy, log).resume(PendingConfirmation.from_json(saved),
                                                   approved=False, note="too much")
    assert log.entries == []
    assert result.outcome is Outcome.COMPLETED
    assert "declined" in result.text and "too much" in result.text
    assert result.tool_calls[0].approved is False


def test_streaming_agent_with_a_streamed_tool_call(gateway: Gateway, scripted: ScriptedProvider,
                                                   log: Log) -> None:
    events: list[AgentEvent] = []
    agent = Agent(name="refunds", alias="fast", tools=refund_tools(log), gateway=gateway,
                  stream=True, on_event=events.append)
    result = agent.run("lookup order 7")
    assert log.entries == [("lookup_order", 7)]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == result.text == "Done. order 7: 2 items, paid"
    assert all(r["stream"] for r in scripted.requests())


def test_fallback_is_visible_in_the_agent_audit(gateway: Gateway,
                                                scripted: ScriptedProvider) -> None:
    scripted.add_rule("quality-*", {"status": 500, "error_message": "quality is down"})
    result = Agent(name="a", alias="quality", gateway=gateway).run("hello")
    assert result.outcome is Outcome.COMPLETED
    assert [(c.alias, c.deployment) for c in result.llm_calls] == [("quality", "fast-1")]


# quality (2 deployments) -> fast (1), num_retries: 1 in config/offline.yaml
OUTAGE_UPSTREAM_ATTEMPTS = 4  # measured below; documented in sdk/retries.py and docs/sdk.md


def test_retries_do_not_stack_one_sdk_call_in_an_outage(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider) -> None:
    from sdk import ProviderUnavailableError

    scripted.add_rule("*", {"status": 503, "error_message": "everything is down"})
    gateway = Gateway(offline_proxy.url, MASTER_KEY)  # the default RetryPolicy
    with pytest.raises(ProviderUnavailableError):
        gateway.complete("quality", "anyone there?")
    tried = [r["model"] for r in scripted.requests()]
    print("upstream attempts for one SDK call:", tried)
    assert len(tried) <= OUTAGE_UPSTREAM_ATTEMPTS, tried
    assert "fast-1" in tried and {"quality-a", "quality-b"} & set(tried)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
DOC_BLOCK = re.compile(r"<!-- provider: (.*?) -->\s*```python\n(.*?)```", re.DOTALL)


def _doc_blocks() -> list[tuple[list[dict[str, Any]], str]]:
    return [(json.loads(answers), code) for answers, code in DOC_BLOCK.findall(DOCS.read_text())]


def test_every_python_block_of_docs_sdk_is_tested() -> None:
    assert len(_doc_blocks()) == DOCS.read_text().count("```python") >= 5


@pytest.mark.parametrize("index", range(len(_doc_blocks())))
def test_docs_sdk_examples_run_as_written(index: int, offline_proxy: ProxyProcess,
                                          scripted: ScriptedProvider,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    answers, code = _doc_blocks()[index]
    for step in answers:
        scripted.add_rule("*", step, times=1)
    monkeypatch.setenv("POOL_PROXY_URL", offline_proxy.url)
    monkeypatch.setenv("POOL_API_KEY", MASTER_KEY)
    exec(compile(code, f"docs/sdk.md block {index}", "exec"), {"__name__": "docs_sdk"})
    assert len(scripted.requests()) >= max(1, len(answers))  # every scripted answer was used
