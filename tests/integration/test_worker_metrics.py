"""``pool worker --metrics-port``: Dramatiq's Prometheus middleware and ours (replies,
pending confirmations, turns, tool calls, expire runs), scraped after real messages
through a real worker and the real proxy."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_pool.runtime import free_port
from tests.integration.worker_harness import (
    WorkerCluster,
    new_conversation,
    refund_message,
    result,
    script,
)
from worker.counters import UNKNOWN
from worker.models import ExpireMessage

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _turns(found: Samples, outcome: str, agent: str = "tester") -> float:
    return found.get(("pool_worker_turns_total", (("agent", agent), ("outcome", outcome))), 0)


def _tools(found: Samples, tool: str, outcome: str) -> float:
    key = (("agent", "tester"), ("outcome", outcome), ("tool", tool))
    return found.get(("pool_worker_tool_calls_total", key), 0)


def _replies(found: Samples, actor: str, status: str) -> float:
    return found.get(("pool_worker_replies_total", (("actor", actor), ("status", status))), 0)


def _expire_runs(found: Samples, outcome: str) -> float:
    return found.get(("pool_worker_expire_runs_total", (("result", outcome),)), 0)


def _until(port: int, check: Any, timeout: float = 30.0) -> Samples:
    """The first scrape that passes ``check`` (counters are written as things happen)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _scrape(port)
        if check(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _expire(cluster: WorkerCluster, conversation: str, message_id: str) -> None:
    due = ExpireMessage(conversation_id=conversation, message_id=message_id)
    cluster.actors.expire.send(due.model_dump())


def test_worker_metrics_after_real_messages(cluster: WorkerCluster, tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("wrongkey: sk-not-a-key\n")
    port = free_port()
    cluster.start_with_metrics(port, POOL_TENANT_KEYS_FILE=str(keys))

    hello, again = new_conversation(), uuid.uuid4().hex
    assert result(cluster.send("hello there", hello, message_id=again))["status"] == "completed"
    assert result(cluster.send("hello there", hello, message_id=again))["status"] == "completed"
    assert result(cluster.confirm(hello, True))["status"] == "nothing_pending"

    tools, once = new_conversation(), uuid.uuid4().hex  # ok, invalid arguments, unknown tool
    text = "tools " + script({"tool_calls": [
        {"name": "add", "arguments": {"a": 2, "b": 3}},
        {"name": "add", "arguments": {"a": "two", "b": 3}},
        {"name": "no_such_tool", "arguments": {}}]}, {"text": "Some worked."})
    for _ in range(2):  # the second delivery is answered from storage: nothing counted
        assert result(cluster.send(text, tools, message_id=once))["status"] == "completed"

    refund, paused = cluster.pause(refund_message(7, 1.5, "Done."))
    _expire(cluster, refund, paused["message_id"])  # before the TTL: nothing done
    found = _until(port, lambda f: _expire_runs(f, "early") == 1)
    assert found[("pool_worker_pending_confirmations", ())] == 1
    assert _replies(found, "handle_message", "needs_confirmation") == 1
    assert _expire_runs(found, "early") == 1
    assert result(cluster.confirm(refund, True))["status"] == "completed"

    declined, _ = cluster.pause(refund_message(8, 1.5, "Done."))
    assert result(cluster.confirm(declined, False))["status"] == "declined"

    refused = new_conversation()  # the gateway refuses the worker's key: dead-lettered
    cluster.send("hello?", refused, tenant="wrongkey")
    cluster.wait_event(refused, "error")

    queue = ("queue_name", "conversations")
    handled = ("dramatiq_messages_total", (("actor_name", "handle_message"), queue))
    errored = ("dramatiq_message_errors_total", (("actor_name", "handle_message"), queue))
    # Dramatiq counts a message (then its error) after the actor returns, our turn inside it
    found = _until(port, lambda f: _turns(f, "error") == 1 and f.get(errored, 0) >= 1)
    assert found[("pool_worker_pending_confirmations", ())] == 0
    assert {o: _turns(found, o) for o in ("completed", "declined", "error", "failed")} == {
        "completed": 3, "declined": 1, "error": 1, "failed": 0}  # hello, tools, refund
    assert _tools(found, "add", "ok") == 1
    assert _tools(found, "add", "error") == 1  # invalid arguments
    assert _tools(found, UNKNOWN, "error") == 1  # a tool the agents file does not have
    assert _tools(found, "refund", "ok") == 1
    assert _tools(found, "refund", "declined") == 1
    # replies count each answer, a repeated one too
    assert _replies(found, "handle_message", "completed") == 4
    assert _replies(found, "confirm", "completed") == 1
    assert _replies(found, "confirm", "declined") == 1
    assert _replies(found, "confirm", "nothing_pending") == 1
    assert found[handled] == 7
    assert found[("dramatiq_messages_total", (("actor_name", "confirm"), queue))] == 3
    assert found[errored] == 1  # the refused key


def test_worker_metrics_count_expiries(cluster: WorkerCluster) -> None:
    port = free_port()
    cluster.start_with_metrics(port, POOL_CONFIRM_TTL="2")
    conv, paused = cluster.pause(refund_message(9, 1.5, "Done."))
    found = _until(port, lambda f: _turns(f, "expired") == 1)  # the scheduled expire run
    assert _turns(found, "expired") == 1 and _expire_runs(found, "expired") == 1
    assert _replies(found, "expire", "expired") == 1
    assert result(cluster.confirm(conv, True))["status"] == "expired"  # a late answer
    _expire(cluster, conv, paused["message_id"])  # a second expire finds it ended
    found = _until(port, lambda f: _expire_runs(f, "gone") == 1)
    assert _expire_runs(found, "gone") == 1
    assert _turns(found, "expired") == 1  # one confirmation, expired once
    assert _replies(found, "confirm", "expired") == 1
    assert found[("pool_worker_pending_confirmations", ())] == 0
