"""MCP tools in real ``dramatiq worker.actors`` processes (real proxy, Redis, PostgreSQL):
declared in an agents file, gated like ``@tool`` functions, audited, and once across a
worker killed with SIGKILL during an approved call (our FastMCP server honours the
idempotency key the worker sends in the request's ``_meta``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.integration.worker_harness import (
    SHORT_HEARTBEAT_MS,
    WorkerCluster,
    new_conversation,
    result,
    rows,
    script,
    tool_call,
)
from tests.mcp.conftest import Billing, wait_until

pytestmark = pytest.mark.integration

TOKEN = "billing-token-5up3r"


def agents_file(tmp_path: Path, billing: Billing) -> Path:
    path = tmp_path / "agents.yaml"
    path.write_text(yaml.safe_dump({"agents": {"biller": {
        "name": "Bill", "alias": "fast", "max_iterations": 4,
        "mcp_servers": [{"name": "billing", "url": billing.url,
                         "bearer_token_env": "BILLING_MCP_TOKEN",
                         "allowed_tools": ["create_invoice", "refund"],
                         "prefix": "billing_", "confirm": ["create_invoice"]}]}}}))
    return path


def test_an_approved_mcp_call_survives_a_worker_killed_mid_call_with_one_effect(
        cluster: WorkerCluster, billing: Billing, tmp_path: Path, pg_url: str) -> None:
    env = {"POOL_AGENTS_FILE": str(agents_file(tmp_path, billing)),
           "BILLING_MCP_TOKEN": TOKEN, "POOL_WORKER_HEARTBEAT_MS": str(SHORT_HEARTBEAT_MS)}
    victim = cluster.start(**env)
    conv = new_conversation()
    asked = cluster.send("invoice them " + script(
        tool_call("billing_create_invoice", customer=conv, amount=99.5, hold_seconds=4),
        {"text": "Invoiced."}), conv, agent="biller")
    paused = result(asked)
    assert paused["status"] == "needs_confirmation", paused
    assert [c["name"] for c in paused["pending_calls"]] == ["billing_create_invoice"]
    assert billing.rows("call") == []  # nothing ran before the human said yes

    answer = cluster.confirm(conv, approved=True)
    wait_until(lambda: billing.rows("call"), "the approved call to reach the server")
    victim.kill()  # SIGKILL to the worker's process group, the call in flight
    cluster.start(**env)
    done = result(answer, timeout_ms=120_000)

    assert done["status"] == "completed" and done["text"] == "Invoiced.", done
    calls = billing.rows("call")
    assert len({c["key"] for c in calls}) == 1 and calls[0]["key"]  # one idempotency key
    (effect,) = billing.rows("effect")  # the re-sent call made no second invoice
    assert effect["customer"] == conv
    assert rows(pg_url, "SELECT tool_name, outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [
        ("billing_create_invoice", "ok", "approved")]


def test_an_mcp_tool_error_and_a_declined_mcp_call_are_audited(
        cluster: WorkerCluster, billing: Billing, tmp_path: Path, pg_url: str) -> None:
    cluster.start(POOL_AGENTS_FILE=str(agents_file(tmp_path, billing)),
                  BILLING_MCP_TOKEN=TOKEN)
    conv = new_conversation()
    failed = result(cluster.send("refund " + script(
        tool_call("billing_refund", invoice="INV-1"), {"text": "Refunds are closed."}),
        conv, agent="biller"))
    assert failed["status"] == "completed" and failed["text"] == "Refunds are closed."
    (row,) = rows(pg_url, "SELECT tool_name, outcome, result FROM audit_tool_calls"
                  " WHERE conversation_id = %s", conv)
    assert row[:2] == ("billing_refund", "error")
    assert "MCPToolError" in row[2] and "hunter2" not in row[2]

    declined_conv = new_conversation()
    paused = result(cluster.send("invoice " + script(
        tool_call("billing_create_invoice", customer="X", amount=5.0),
        {"text": "Not invoiced."}), declined_conv, agent="biller"))
    assert paused["status"] == "needs_confirmation"
    declined = result(cluster.confirm(declined_conv, approved=False, note="wrong customer"))
    assert declined["status"] == "declined", declined
    assert rows(pg_url, "SELECT outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", declined_conv) == [("declined", "declined")]
    assert [c["tool"] for c in billing.rows("call")] == ["refund"]  # never create_invoice


def test_a_missing_token_variable_stops_the_worker_with_a_clear_error(
        cluster: WorkerCluster, billing: Billing, tmp_path: Path) -> None:
    path = agents_file(tmp_path, billing)
    worker = cluster.start(POOL_AGENTS_FILE=str(path))  # BILLING_MCP_TOKEN not set
    conv = new_conversation()
    cluster.send("hi", conv, agent="biller")
    deadline = time.monotonic() + 60
    wanted = "the environment variable BILLING_MCP_TOKEN (for the Authorization header)"
    while wanted not in worker.text():
        assert time.monotonic() < deadline, worker.text()[-3000:]
        time.sleep(0.2)
