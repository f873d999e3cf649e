"""Agents with MCP tools, end to end: the real proxy (config/offline.yaml), the scripted
provider asking for the MCP tool calls, and MCP servers nobody here wrote
(``@modelcontextprotocol/server-everything`` over stdio and streamable HTTP) plus our
FastMCP server over streamable HTTP (``fastmcp_server.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from sdk import (
    Agent,
    Approve,
    AsyncGateway,
    Decline,
    Gateway,
    Outcome,
    PendingConfirmation,
)
from sdk.errors import InvalidDecisionError
from sdk.mcp import MCPServer
from tests.conftest import MASTER_KEY
from tests.mcp.conftest import Billing, HttpServer, wait_until

pytestmark = pytest.mark.integration


def script(*steps: dict[str, Any]) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


def calls(*pairs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": args} for name, args in pairs]}


@pytest.fixture
def gateway(offline_proxy: ProxyProcess) -> Gateway:
    return Gateway(offline_proxy.url, MASTER_KEY)


@pytest.fixture
def servers() -> Iterator[list[MCPServer]]:
    """MCP servers a test opened: closed after it (their connections and threads)."""
    opened: list[MCPServer] = []
    yield opened
    for server in opened:
        server.close()


def everything_stdio(js: Path, servers: list[MCPServer], **options: Any) -> MCPServer:
    server = MCPServer("everything", command=["node", str(js), "stdio"], **options)
    servers.append(server)
    return server


def _big_sum(tool: str, arguments: Any) -> bool:
    return tool == "get-sum" and arguments["a"] + arguments["b"] > 100


def test_stdio_listing_allowlist_prefix_and_a_gated_call_approved_with_edited_arguments(
        gateway: Gateway, scripted: ScriptedProvider, everything_js: Path,
        servers: list[MCPServer]) -> None:
    def agent() -> Agent:  # each resume may be another process: a fresh server connection
        server = everything_stdio(everything_js, servers, prefix="ev_",
                                  allowed_tools=["echo", "get-sum"],
                                  requires_confirmation=_big_sum)
        return Agent(name="calc", alias="fast", gateway=gateway, mcp_servers=[server])

    steps = script(calls(("ev_echo", {"message": "hi"}), ("ev_get-sum", {"a": 1, "b": 2}),
                         ("ev_get-sum", {"a": 500, "b": 1})),
                   {"text": "done"})
    first = agent()
    assert sorted(s["function"]["name"] for s in first.registry.schemas()) == [
        "ev_echo", "ev_get-sum"]
    result = first.run(f"add things {steps}")
    sent = {t["function"]["name"]: t["function"] for t in scripted.requests()[0]["tools"]}
    assert set(sent) == {"ev_echo", "ev_get-sum"}  # the allowlist: 11 more tools not sent
    assert sent["ev_get-sum"]["parameters"]["required"] == ["a", "b"]
    assert result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None
    assert [r.result for r in result.tool_calls] == ["Echo: hi", "The sum of 1 and 2 is 3."]
    (gated,) = result.pending.calls
    assert (gated.name, dict(gated.arguments)) == ("ev_get-sum", {"a": 500, "b": 1})

    saved = PendingConfirmation.from_json(result.pending.to_json())
    with pytest.raises(InvalidDecisionError, match="'x' is not of type 'number'"):
        agent().resume(saved, decisions={gated.id: Approve(arguments={"a": "x", "b": 1})})
    resumed = agent().resume(saved, decisions={gated.id: Approve(arguments={"a": 40, "b": 2})})
    assert resumed.outcome is Outcome.COMPLETED and resumed.text == "done"
    (record,) = resumed.tool_calls
    assert record.approved is True and record.ok
    assert record.result.startswith("The sum of 40 and 2 is 42.")
    assert '(Run with arguments edited by the user: {"a": 40, "b": 2})' in record.result


def test_streamable_http_bearer_header_and_a_declined_call(
        gateway: Gateway, scripted: ScriptedProvider, everything_http: HttpServer,
        servers: list[MCPServer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVERYTHING_TOKEN", "tok-0123456789")
    server = MCPServer("everything", url=everything_http.url,
                       headers={"Authorization": f"Bearer {os.environ['EVERYTHING_TOKEN']}"},
                       requires_confirmation=["echo"])
    servers.append(server)
    agent = Agent(name="echoer", alias="fast", gateway=gateway, mcp_servers=[server])
    listed = {s["function"]["name"] for s in agent.registry.schemas()}
    assert {"echo", "get-sum", "get-env", "trigger-long-running-operation"} <= listed
    result = agent.run("say it " + script(calls(("echo", {"message": "launch"})),
                                           {"text": "ok, not sent"}))
    assert result.outcome is Outcome.NEEDS_CONFIRMATION and result.pending is not None
    (call,) = result.pending.calls
    resumed = agent.resume(result.pending, decisions={call.id: Decline("not today")})
    (record,) = resumed.tool_calls
    assert record.approved is False and not record.ok
    assert "declined" in record.result and "not today" in record.result
    tool_messages = [m for m in scripted.requests()[-1]["messages"] if m["role"] == "tool"]
    assert "Echo: launch" not in json.dumps(tool_messages)
    assert "declined" in tool_messages[-1]["content"]


def test_idempotency_key_in_meta_makes_a_resent_approved_call_take_effect_once(
        gateway: Gateway, scripted: ScriptedProvider, billing: Billing,
        servers: list[MCPServer]) -> None:
    def agent() -> Agent:
        server = MCPServer("billing", url=billing.url, requires_confirmation=["create_invoice"])
        servers.append(server)
        return Agent(name="billing", alias="fast", gateway=gateway, mcp_servers=[server])

    steps = script(calls(("create_invoice", {"customer": "ACME", "amount": 120.0})),
                   {"text": "invoiced"})
    result = agent().run(f"invoice ACME {steps}", run_id="run-7")
    assert result.pending is not None and billing.rows("call") == []
    saved = result.pending.to_json()
    first = agent().resume(PendingConfirmation.from_json(saved), approved=True)
    # the same decision carried out again (a redelivered resume: the process died before
    # it recorded the result): the server sees the same key and makes no second invoice
    again = agent().resume(PendingConfirmation.from_json(saved), approved=True)
    call_id = result.pending.calls[0].id
    assert [row["key"] for row in billing.rows("call")] == [f"run-7:{call_id}"] * 2
    (effect,) = billing.rows("effect")
    assert effect["key"] == f"run-7:{call_id}" and effect["customer"] == "ACME"
    assert first.tool_calls[0].result == "invoice INV-0001 created for ACME: 120.00 EUR"
    assert again.tool_calls[0].result == "invoice INV-0001 (already created for this key)"


def test_a_tool_error_reaches_the_model_typed_and_redacted(
        gateway: Gateway, scripted: ScriptedProvider, billing: Billing,
        servers: list[MCPServer]) -> None:
    server = MCPServer("billing", url=billing.url)
    servers.append(server)
    agent = Agent(name="billing", alias="fast", gateway=gateway, mcp_servers=[server])
    result = agent.run("refund " + script(calls(("refund", {"invoice": "INV-9"})),
                                          {"text": "could not"}))
    (record,) = result.tool_calls
    assert not record.ok and record.result.startswith("Error: refund failed: MCPToolError: ")
    assert "refunds are closed today" in record.result
    sent = json.dumps(scripted.requests()[-1]["messages"])
    assert "refunds are closed today" in sent
    for secret in ("hunter2", "sk-live-INV-9", "billing:"):
        assert secret not in sent and secret not in record.result


def test_results_are_size_capped_and_secrets_in_them_redacted(
        everything_js: Path, billing: Billing, servers: list[MCPServer]) -> None:
    capped = MCPServer("billing", url=billing.url, max_result_chars=1000)
    env = everything_stdio(everything_js, servers, env={"SHOP_API_TOKEN": "s3cr3t-value-42"})
    servers.append(capped)
    big = {t.name: t for t in capped.tools()}["big"]
    text = big.run(big.validate({"chars": 50_000}))
    assert text.startswith("x" * 1000) and text.endswith("[... 49000 more characters cut]")
    get_env = {t.name: t for t in env.tools()}["get-env"]
    dumped = get_env.run({})
    assert "SHOP_API_TOKEN" in dumped and "s3cr3t-value-42" not in dumped


def test_a_server_dying_mid_call_is_an_unreachable_error_then_a_reconnect(
        gateway: Gateway, scripted: ScriptedProvider, billing: Billing,
        servers: list[MCPServer]) -> None:
    server = MCPServer("billing", url=billing.url, timeout=60)
    servers.append(server)
    agent = Agent(name="billing", alias="fast", gateway=gateway, mcp_servers=[server])
    killer = threading.Thread(target=lambda: (
        wait_until(lambda: billing.rows("call"), "the call to reach the server"),
        billing.kill()))
    killer.start()
    started = time.monotonic()
    result = agent.run("wait " + script(calls(("slow", {"seconds": 50})), {"text": "hm"}))
    killer.join()
    assert time.monotonic() - started < 40  # the broken connection, not the timeout
    (record,) = result.tool_calls
    assert not record.ok
    assert "MCPUnreachableError" in record.result and "may or may not have run" in record.result
    assert billing.url not in record.result
    billing.start()  # the server is back: the next call reconnects
    again = agent.run("invoice " + script(calls(("create_invoice", {"customer": "B",
                                                                     "amount": 1.5})),
                                          {"text": "ok"}))
    assert again.tool_calls[0].ok and "INV-0001" in again.tool_calls[0].result
    assert server.session.connects == 2


def test_a_stdio_server_killed_mid_call(gateway: Gateway, scripted: ScriptedProvider,
                                        everything_js: Path, tmp_path: Path,
                                        servers: list[MCPServer]) -> None:
    pids, requests = tmp_path / "pids", tmp_path / "requests.jsonl"
    # what the client writes is copied to a file (to see the call arrive); the wrapper
    # shell and node (exec'd by the inner shell) write their pids: killing both closes
    # the server's stdout as a crash would
    inner = f'echo $$ >> {pids}; exec node "{everything_js}" stdio'
    server = MCPServer("everything", command=[
        "sh", "-c", f"echo $$ >> {pids}; tee {requests} | sh -c '{inner}'"])
    servers.append(server)
    agent = Agent(name="ops", alias="fast", gateway=gateway, mcp_servers=[server])

    def kill_when_running() -> None:
        wait_until(lambda: "trigger-long-running-operation" in requests.read_text(),
                   "the call to reach the server")
        for pid in pids.read_text().split():
            os.kill(int(pid), signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    result = agent.run("run " + script(calls(("trigger-long-running-operation",
                                              {"duration": 10, "steps": 2})),
                                       {"text": "hm"}))
    killer.join()
    (record,) = result.tool_calls
    assert not record.ok and "MCPUnreachableError" in record.result
    assert agent.registry.get("echo") is not None
    echo = agent.registry.get("echo")
    assert echo is not None and echo.run({"message": "back"}) == "Echo: back"  # respawned


def test_a_call_that_outlives_its_timeout(billing: Billing, servers: list[MCPServer]) -> None:
    server = MCPServer("billing", url=billing.url, timeout=1.0)
    servers.append(server)
    slow = {t.name: t for t in server.tools()}["slow"]
    started = time.monotonic()
    with pytest.raises(Exception, match="did not answer within 1 s") as caught:
        slow.run({"seconds": 20})
    assert type(caught.value).__name__ == "MCPTimeoutError"
    assert time.monotonic() - started < 15


def test_a_tool_whose_schema_changed_after_a_reconnect_is_not_run(
        billing: Billing, servers: list[MCPServer]) -> None:
    server = MCPServer("billing", url=billing.url)
    servers.append(server)
    invoice = {t.name: t for t in server.tools()}["create_invoice"]
    billing.kill()
    billing.start([*billing.argv, "--strict-amount"])  # same name, new input schema
    with pytest.raises(Exception, match="changed or disappeared since it was listed") as caught:
        invoice.run(invoice.validate({"customer": "C", "amount": 5.0}))
    assert type(caught.value).__name__ == "MCPSchemaError"
    assert billing.rows("call") == []


def test_async_agent_runs_parallel_mcp_calls_on_one_connection_and_resumes(
        offline_proxy: ProxyProcess, scripted: ScriptedProvider, everything_js: Path,
        servers: list[MCPServer]) -> None:
    server = everything_stdio(everything_js, servers, requires_confirmation=_big_sum)

    async def scenario() -> tuple[Any, Any]:
        agent = Agent(name="calc", alias="fast", gateway=AsyncGateway(offline_proxy.url,
                                                                      MASTER_KEY),
                      mcp_servers=[server])
        steps = script(calls(("echo", {"message": "one"}), ("echo", {"message": "two"}),
                             ("get-sum", {"a": 2, "b": 3}), ("get-sum", {"a": 200, "b": 3})),
                       {"text": "all done"})
        first = await agent.arun(f"go {steps}")
        assert first.pending is not None
        return first, await agent.aresume(first.pending, approved=True)

    first, resumed = asyncio.run(scenario())
    assert [r.result for r in first.tool_calls] == ["Echo: one", "Echo: two",
                                                    "The sum of 2 and 3 is 5."]
    assert resumed.outcome is Outcome.COMPLETED and resumed.text == "all done"
    assert resumed.tool_calls[0].result == "The sum of 200 and 3 is 203."
    assert server.session.connects == 1
