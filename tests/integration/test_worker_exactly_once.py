"""Exactly once under overlapping deliveries (#19), with two real ``pool worker``
processes, the real proxy, Redis and PostgreSQL.

The tools here have effects *without* an idempotency key (``slow_refund``,
``effect_then_wait``): only the run lease and the tool call claims keep them from
running twice when a second delivery arrives while the first still runs. The kill
test uses ``send_slowly``, which keys its effect by the idempotency key, as a tool
must for a dead worker's call that is taken over (see docs/workers.md).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from llm_pool.offline.provider import ScriptedProvider
from tests.integration.worker_harness import (
    SHORT_HEARTBEAT_MS,
    WorkerCluster,
    effects,
    new_conversation,
    replies,
    result,
    rows,
    script,
    tool_call,
    wait_until,
)

pytestmark = pytest.mark.integration

QUICK = {"POOL_WORKER_HEARTBEAT_MS": str(SHORT_HEARTBEAT_MS)}
TOOL_SECONDS = 12  # longer than starting the second worker takes on a loaded machine


def _llm_calls(scripted: ScriptedProvider, conversation: str) -> int:
    return sum(1 for request in scripted.requests()
               if any(conversation in str(m.get("content") or "")
                      for m in request.get("messages", [])))


def _two_workers(cluster: WorkerCluster, **env: str) -> None:
    cluster.start_pool_worker(**env)
    cluster.start_pool_worker(**env)


def test_same_answer_resent_while_the_approved_tool_runs(
        cluster: WorkerCluster, pg_url: str, scripted: ScriptedProvider) -> None:
    _two_workers(cluster)
    conv = new_conversation()
    label = f"{abs(hash(conv)) % 10**6}:5.0"
    order = int(label.split(":")[0])
    paused = result(cluster.send(f"refund for {conv} " + script(
        tool_call("slow_refund", order_id=order, amount=5.0, seconds=4), {"text": "Refunded."}),
        conv))
    assert paused["status"] == "needs_confirmation"
    decision = uuid.uuid4().hex
    first = cluster.confirm(conv, approved=True, decision_id=decision)
    wait_until(lambda: effects(pg_url, label) == 1, "the approved refund to start")
    second = cluster.confirm(conv, approved=True, decision_id=decision)  # a retried send

    one, two = result(first), result(second)
    assert one == two
    assert one["status"] == "completed" and one["text"] == "Refunded."
    assert effects(pg_url, label) == 1
    assert _llm_calls(scripted, conv) == 2  # the pause, then the resumed run: no re-run
    assert [r["status"] for r in replies(cluster, conv, paused["message_id"])] == [
        "needs_confirmation", "completed"]
    assert rows(pg_url, "SELECT outcome, attempts FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("ok", 1)]


def test_same_message_resent_while_it_runs(
        cluster: WorkerCluster, pg_url: str, scripted: ScriptedProvider) -> None:
    _two_workers(cluster)
    conv = new_conversation()
    message_id = uuid.uuid4().hex
    text = f"do it for {conv} " + script(
        tool_call("effect_then_wait", label=conv, seconds=4), {"text": "Done."})
    first = cluster.send(text, conv, message_id=message_id)
    wait_until(lambda: effects(pg_url, conv) == 1, "the tool to start")
    second = cluster.send(text, conv, message_id=message_id)  # a retried send

    one, two = result(first), result(second)
    assert one == two and one["status"] == "completed" and one["text"] == "Done."
    assert effects(pg_url, conv) == 1
    assert _llm_calls(scripted, conv) == 2
    assert [r["status"] for r in replies(cluster, conv, message_id)] == ["completed"]
    memory = rows(pg_url, "SELECT role FROM conversation_messages WHERE conversation_id = %s"
                  " ORDER BY id", conv)
    assert [r[0] for r in memory] == ["user", "assistant", "tool", "assistant"]


def test_kill_9_during_a_claimed_tool_the_other_worker_takes_over(
        cluster: WorkerCluster, pg_url: str) -> None:
    victim = cluster.start_pool_worker(**QUICK)
    conv = new_conversation()
    paused = result(cluster.send(f"send for {conv} " + script(
        tool_call("send_slowly", to=conv, seconds=TOOL_SECONDS), {"text": "Sent."}), conv))
    answer = cluster.confirm(conv, approved=True)

    def claimed() -> bool:
        found = rows(pg_url, "SELECT outcome FROM audit_tool_calls WHERE conversation_id = %s",
                     conv)
        return found == [("running",)] and bool(rows(
            pg_url, "SELECT 1 FROM test_outbox WHERE recipient = %s", conv))

    wait_until(lambda: rows(pg_url, "SELECT to_regclass('test_outbox') IS NOT NULL")[0][0]
               and claimed(), "the claimed tool to run")
    heir = cluster.start_pool_worker(**QUICK)
    assert claimed(), "the tool finished before the kill: raise TOOL_SECONDS"
    victim.kill()  # mid-tool: claimed, its effect out, its result not recorded

    done: dict[str, Any] = result(answer, timeout_ms=90_000)
    assert done["status"] == "completed" and done["text"] == "Sent."
    assert rows(pg_url, "SELECT count(*) FROM test_outbox WHERE recipient = %s", conv) == [(1,)]
    assert rows(pg_url, "SELECT outcome, confirmation, attempts FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("ok", "approved", 2)]
    assert [r["status"] for r in replies(cluster, conv, paused["message_id"])] == [
        "needs_confirmation", "completed"]
    assert "was claimed before by a delivery that stopped" in heir.text()
