"""Per-call decisions, durable decisions and scheduled expiry, with real worker processes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from llm_pool.offline.provider import ScriptedProvider
from tests.integration.worker_harness import (
    SHORT_HEARTBEAT_MS,
    WorkerCluster,
    effects,
    new_conversation,
    refund_message,
    result,
    rows,
    script,
    tool_call,
)

pytestmark = pytest.mark.integration


def _two_refunds() -> dict[str, Any]:
    return {"tool_calls": [{"name": "refund", "arguments": {"order_id": 1, "amount": 10.0}},
                           {"name": "refund", "arguments": {"order_id": 2, "amount": 20.0}}]}


def test_two_gated_calls_one_approved_edited_one_declined(
        cluster: WorkerCluster, pg_url: str, scripted: ScriptedProvider) -> None:
    cluster.start()
    conv = new_conversation()
    text = "refund 1 and 2 " + script(_two_refunds(), {"text": "One refund done."})
    paused = result(cluster.send(text, conv))
    assert paused["status"] == "needs_confirmation"
    first, second = paused["pending_calls"]
    assert (first["name"], first["arguments"]) == ("refund", {"order_id": 1, "amount": 10.0})
    assert second["arguments"] == {"order_id": 2, "amount": 20.0}
    asked = cluster.wait_event(conv, "confirmation_required")["data"]["calls"]
    assert [c["id"] for c in asked] == [first["id"], second["id"]]  # every call, with its id

    # refused, nothing changes: a call that is not pending, edited arguments that are invalid
    stale = result(cluster.confirm(conv, decisions={"call_nope": {"approve": True}}))
    assert stale["status"] == "refused" and "not pending: call_nope" in stale["text"]
    invalid = result(cluster.confirm(conv, decisions={
        first["id"]: {"approve": True, "arguments": {"order_id": "one"}}}))
    assert invalid["status"] == "refused" and "invalid arguments" in invalid["text"]

    # one decision per answer: the run goes on once both calls are decided
    part = result(cluster.confirm(conv, decisions={
        first["id"]: {"approve": True, "arguments": {"order_id": 1, "amount": 5.0}}}))
    assert part["status"] == "needs_confirmation"
    assert [c["id"] for c in part["pending_calls"]] == [second["id"]]
    again = result(cluster.confirm(conv, decisions={first["id"]: {"approve": False}}))
    assert again["status"] == "refused" and "already decided" in again["text"]
    done = result(cluster.confirm(conv, decisions={
        second["id"]: {"approve": False, "note": "wrong order"}}))
    assert done["status"] == "completed" and done["text"] == "One refund done."

    assert effects(pg_url, "1:5.0") == 1  # ran once, with the edited arguments
    assert effects(pg_url, "1:10.0") == 0 and effects(pg_url, "2:20.0") == 0
    told = [m["content"] for m in scripted.requests()[-1]["messages"] if m["role"] == "tool"]
    assert told[0].startswith("refunded 5.0 on order 1")
    assert "declined" in told[1] and "wrong order" in told[1]
    audit = rows(pg_url, "SELECT arguments, outcome, confirmation FROM audit_tool_calls"
                 " WHERE conversation_id = %s ORDER BY id", conv)
    assert audit == [({"order_id": 1, "amount": 5.0}, "ok", "approved"),
                     ({"order_id": 2, "amount": 20.0}, "declined", "declined")]
    late = result(cluster.confirm(conv, decisions={second["id"]: {"approve": True}}))
    assert late["status"] == "refused"  # decided and finished: refused, nothing runs
    assert effects(pg_url, "2:20.0") == 0


def test_unanswered_confirmation_expires_by_itself(cluster: WorkerCluster, pg_url: str) -> None:
    cluster.start(POOL_CONFIRM_TTL="2")
    conv, _ = cluster.pause(refund_message(3, 1.0, "never"))
    asked = time.monotonic()
    expired = cluster.wait_event(conv, "expired", timeout=30)
    assert time.monotonic() - asked >= 1.5  # not before the TTL
    assert expired["data"]["tool"] == "refund"
    deadline = time.monotonic() + 10
    while cluster.events(conv)[-1]["type"] != "reply" or cluster.events(conv)[-2]["type"] != \
            "expired":
        assert time.monotonic() < deadline, cluster.events(conv)
        time.sleep(0.1)
    assert cluster.events(conv)[-1]["data"]["status"] == "expired"
    assert rows(pg_url, "SELECT outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("expired", "expired")]
    assert rows(pg_url, "SELECT status FROM message_outcomes WHERE conversation_id = %s",
                conv) == [("expired",)]
    assert effects(pg_url, "3:1.0") == 0


def test_confirmed_tool_crash_after_the_ttl_reports_completed(
        cluster: WorkerCluster, pg_url: str) -> None:
    quick = {"POOL_CONFIRM_TTL": "3", "POOL_WORKER_HEARTBEAT_MS": str(SHORT_HEARTBEAT_MS)}
    victim = cluster.start(**quick)
    conv = new_conversation()
    cluster.pause("send it " + script(tool_call("send_slowly", to=conv, seconds=6),
                                       {"text": "Sent."}), conv)
    answer = cluster.confirm(conv, approved=True)
    deadline = time.monotonic() + 30
    while not rows(pg_url, "SELECT to_regclass('test_outbox') IS NOT NULL")[0][0] or not rows(
            pg_url, "SELECT 1 FROM test_outbox WHERE recipient = %s", conv):
        assert time.monotonic() < deadline, victim.text()[-2000:]
        time.sleep(0.1)
    victim.kill()  # the email is out, its result not recorded yet
    killed = time.monotonic()
    time.sleep(3)  # now past the confirmation's TTL
    cluster.start(**quick)
    done = result(answer, timeout_ms=90_000)
    assert time.monotonic() - killed < SHORT_HEARTBEAT_MS / 1000 + 10 + 6  # + the tool's time
    assert done["status"] == "completed" and done["text"] == "Sent."
    assert rows(pg_url, "SELECT count(*) FROM test_outbox WHERE recipient = %s", conv) == [(1,)]
    assert rows(pg_url, "SELECT outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("ok", "approved")]
    assert "expired" not in [e["type"] for e in cluster.events(conv)]


def _refunds_in_turn(*orders: int) -> str:
    """A message whose model asks for one gated ``refund`` per step, then answers."""
    return "refunds " + script(*(tool_call("refund", order_id=o, amount=float(o))
                                 for o in orders), {"text": "All refunded."})


def test_approve_for_the_run_with_pool_confirm(cluster: WorkerCluster, pg_url: str) -> None:
    import subprocess
    import sys

    from llm_pool.runtime import proxy_env

    cluster.start()
    conv, paused = cluster.pause(_refunds_in_turn(31, 32, 33))
    (call,) = paused["pending_calls"]
    env = proxy_env(cluster.env)
    confirmed = subprocess.run(
        [sys.executable, "-m", "llm_pool.cli", "confirm", conv, "--approve", call["id"],
         "--for-run", "--by", "ops"], env=env, capture_output=True, text=True, timeout=90)
    assert confirmed.returncode == 0, confirmed.stderr
    assert f"approve {call['id']} for the run" in confirmed.stdout
    assert "[reply:completed] All refunded." in confirmed.stdout
    # the later refunds of the same run ran without asking again, each once
    assert [effects(pg_url, f"{o}:{float(o)}") for o in (31, 32, 33)] == [1, 1, 1]
    kinds = [e["type"] for e in cluster.events(conv)]
    assert kinds.count("confirmation_required") == 1
    resolved = cluster.wait_event(conv, "confirmation_resolved")["data"]
    assert resolved["decisions"][0]["for_run"] is True
    audit = rows(pg_url, "SELECT arguments->>'order_id', outcome, confirmation, decided_by"
                 " FROM audit_tool_calls WHERE conversation_id = %s ORDER BY id", conv)
    assert audit == [(str(o), "ok", "approved", "ops") for o in (31, 32, 33)]
    # for the run, not for the conversation: the next message asks again
    again = result(cluster.send(_refunds_in_turn(34), conv))
    assert again["status"] == "needs_confirmation"


def test_a_late_redelivered_decision_after_a_second_pause_adds_no_reply(
        cluster: WorkerCluster, pg_url: str) -> None:
    cluster.start()
    conv, paused = cluster.pause(_refunds_in_turn(41, 42))
    message_id = paused["message_id"]
    first = result(cluster.confirm(conv, approved=True, decision_id="d-first"))
    assert first["status"] == "needs_confirmation"  # the resumed run paused again
    assert first["pending_calls"][0]["arguments"]["order_id"] == 42

    def replies() -> list[dict[str, Any]]:
        return [e["data"] for e in cluster.events(conv)
                if e["type"] == "reply" and e["message_id"] == message_id]

    assert len(replies()) == 2
    late = result(cluster.confirm(conv, approved=True, decision_id="d-first"))
    assert late["status"] == "needs_confirmation"  # what that decision led to
    assert len(replies()) == 2
    done = result(cluster.confirm(conv, approved=True, decision_id="d-second"))
    assert done["status"] == "completed"
    assert len(replies()) == 3
    for decision in ("d-first", "d-second"):  # redelivered after the run ended
        result(cluster.confirm(conv, approved=True, decision_id=decision))
        assert len(replies()) == 3, replies()
    assert effects(pg_url, "41:41.0") == 1 and effects(pg_url, "42:42.0") == 1
