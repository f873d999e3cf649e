"""Dramatiq workers end to end: real Redis, PostgreSQL, worker processes and proxy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from llm_pool.offline.provider import ScriptedProvider
from tests.integration.worker_harness import (
    HEARTBEAT_MS,
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

IN_FLIGHT = 5  # messages a worker holds when it is killed

def test_multi_step_tool_loop(cluster: WorkerCluster, pg_url: str) -> None:
    cluster.start()
    conv = new_conversation()
    text = "compute please " + script(tool_call("add", a=2, b=3), tool_call("lookup", key="k5"),
                                       {"text": "The answer is 5 (value-of-k5)."})
    reply = result(cluster.send(text, conv))
    assert reply["status"] == "completed"
    assert reply["text"] == "The answer is 5 (value-of-k5)."

    events = cluster.events(conv)
    kinds = [e["type"] for e in events]
    assert kinds == ["received", "llm_call", "tool_called", "llm_call", "tool_called",
                     "llm_call", "reply"]
    assert events[-1]["data"]["text"] == reply["text"]

    llm = rows(pg_url, "SELECT alias, deployment, outcome, prompt_tokens > 0, cost_usd > 0"
               " FROM audit_llm_calls WHERE conversation_id = %s ORDER BY id", conv)
    assert llm == [("fast", "fast-1", "ok", True, True)] * 3
    tools = rows(pg_url, "SELECT tool_name, arguments, outcome, result, confirmation"
                 " FROM audit_tool_calls WHERE conversation_id = %s ORDER BY id", conv)
    assert tools == [("add", {"a": 2, "b": 3}, "ok", "5", "not_required"),
                     ("lookup", {"key": "k5"}, "ok", "value-of-k5", "not_required")]
    memory = rows(pg_url, "SELECT role FROM conversation_messages WHERE conversation_id = %s"
                  " ORDER BY id", conv)
    assert [r[0] for r in memory] == ["user", "assistant", "tool", "assistant", "tool",
                                      "assistant"]


def test_memory_carries_over_turns(cluster: WorkerCluster, scripted: ScriptedProvider) -> None:
    cluster.start()
    conv = new_conversation()
    assert result(cluster.send("my name is Ada", conv))["status"] == "completed"
    assert result(cluster.send("what is my name?", conv))["status"] == "completed"
    seen = [(m["role"], m["content"]) for m in scripted.requests()[-1]["messages"]]
    assert seen[1:] == [("user", "my name is Ada"),
                        ("assistant", "Hi! (fast-1) You said: my name is Ada"),
                        ("user", "what is my name?")]


def test_confirmation_approved_resumed_by_another_worker(cluster: WorkerCluster,
                                                         pg_url: str) -> None:
    first = cluster.start()
    conv, paused = cluster.pause(refund_message(7, 12.5, "Refund done."))
    assert paused["pending_tool"] == "refund"
    assert "refund" in paused["text"] and "Reply yes or no" in paused["text"]
    assert effects(pg_url, "7:12.5") == 0
    assert rows(pg_url, "SELECT count(*) FROM conversation_messages WHERE conversation_id = %s",
                conv) == [(0,)]  # not in long-term memory until resolved
    assert rows(pg_url, "SELECT outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("pending", "pending")]

    first.stop()
    cluster.start()  # a different worker process resumes
    done = result(cluster.confirm(conv, approved=True))
    assert done["status"] == "completed" and done["text"] == "Refund done."
    assert effects(pg_url, "7:12.5") == 1
    assert rows(pg_url, "SELECT outcome, confirmation, decided_by, decided_at IS NOT NULL"
                " FROM audit_tool_calls WHERE conversation_id = %s", conv) == [
        ("ok", "approved", "tester", True)]
    memory = rows(pg_url, "SELECT role FROM conversation_messages WHERE conversation_id = %s"
                  " ORDER BY id", conv)
    assert [r[0] for r in memory] == ["user", "assistant", "tool", "assistant"]
    # a repeated confirm does nothing more
    again = result(cluster.confirm(conv, approved=True))
    assert again["status"] == "completed" and effects(pg_url, "7:12.5") == 1


def test_confirmation_declined(cluster: WorkerCluster, pg_url: str,
                               scripted: ScriptedProvider) -> None:
    cluster.start()
    conv, _ = cluster.pause(refund_message(8, 3.0, "Understood, no refund."))
    done = result(cluster.confirm(conv, approved=False, note="not this one"))
    assert done["status"] == "declined" and done["text"] == "Understood, no refund."
    assert effects(pg_url, "8:3.0") == 0
    assert rows(pg_url, "SELECT outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("declined", "declined")]
    tool_message = rows(pg_url, "SELECT body->>'content' FROM conversation_messages"
                        " WHERE conversation_id = %s AND role = 'tool'", conv)[0][0]
    assert "declined" in tool_message.lower() and "not this one" in tool_message


def test_confirmation_expired(cluster: WorkerCluster, pg_url: str) -> None:
    cluster.start(POOL_CONFIRM_TTL="1")
    conv, _ = cluster.pause(refund_message(9, 1.0, "should never be said"))
    time.sleep(1.5)
    late = result(cluster.confirm(conv, approved=True))
    assert late["status"] == "expired" and "expired" in late["text"]
    assert effects(pg_url, "9:1.0") == 0
    assert rows(pg_url, "SELECT outcome, confirmation FROM audit_tool_calls"
                " WHERE conversation_id = %s", conv) == [("expired", "expired")]
    assert [e["type"] for e in cluster.events(conv)][-2:] == ["expired", "reply"]


def test_sigkill_with_messages_in_flight_redelivers_each_once(
        cluster: WorkerCluster, pg_url: str, scripted: ScriptedProvider) -> None:
    victim = cluster.start()
    convs = [new_conversation() for _ in range(IN_FLIGHT)]
    messages = [cluster.send("do it " + script(tool_call("record_effect", label=f"kill-{conv}"),
                                                {"text": "all done", "delay": 3}), conv)
                for conv in convs]
    deadline = time.monotonic() + 60
    # every tool ran (async actors: all at once); every next LLM call hangs
    while any(effects(pg_url, f"kill-{conv}") == 0 for conv in convs):
        assert time.monotonic() < deadline, victim.text()[-2000:]
        time.sleep(0.1)
    time.sleep(0.3)
    victim.kill()
    killed = time.monotonic()
    cluster.start()
    for conv, message in zip(convs, messages, strict=True):
        reply = result(message, timeout_ms=HEARTBEAT_MS + 30_000)
        assert reply == {"conversation_id": conv, "message_id": reply["message_id"],
                         "status": "completed", "text": "all done", "pending_tool": None,
                         "pending_calls": None, "expires_at": None}
    # redelivered in time: the heartbeat, 10 s, and the 3 s the re-run's provider call takes
    assert time.monotonic() - killed < HEARTBEAT_MS / 1000 + 10 + 3
    for conv in convs:
        assert effects(pg_url, f"kill-{conv}") == 1
        memory = rows(pg_url, "SELECT role FROM conversation_messages"
                      " WHERE conversation_id = %s ORDER BY id", conv)
        assert [r[0] for r in memory] == ["user", "assistant", "tool", "assistant"]
        replies = [e for e in cluster.events(conv) if e["type"] == "reply"]
        assert len(replies) == 1
        # every LLM call that reached the proxy is audited, the interrupted one included
        audited = rows(pg_url, "SELECT request_id, outcome,"
                       " coalesce(error, '') LIKE 'interrupted%%'"
                       " FROM audit_llm_calls WHERE conversation_id = %s", conv)
        assert sorted((o, i) for _, o, i in audited) == [
            ("error", True), ("ok", False), ("ok", False), ("ok", False)]
        assert _spend_ids(pg_url, conv, len(audited)) == sorted(r[0] for r in audited)


def test_tool_text_starting_with_error_is_ok_after_a_redelivery_too(
        cluster: WorkerCluster, pg_url: str) -> None:
    quick = {"POOL_WORKER_HEARTBEAT_MS": str(SHORT_HEARTBEAT_MS)}
    victim = cluster.start(**quick)
    conv, said = new_conversation(), "Error: 42 is a fine answer"
    label = f"slow-{conv}"
    text = "echo " + script({"tool_calls": [
        {"name": "echo", "arguments": {"text": said}},
        {"name": "record_effect", "arguments": {"label": label, "seconds": 6}}]},
        {"text": "Echoed."})
    message = cluster.send(text, conv)
    audit = "SELECT tool_name, outcome, result FROM audit_tool_calls WHERE conversation_id = %s"
    deadline = time.monotonic() + 30
    echo_done = audit + " AND tool_name = 'echo' AND outcome = 'ok'"
    while not rows(pg_url, echo_done, conv):  # echo's record is stored, record_effect sleeps
        assert time.monotonic() < deadline, victim.text()[-2000:]
        time.sleep(0.05)
    victim.kill()  # before either call's tool_called event: the re-run reads echo's record
    cluster.start(**quick)
    assert result(message, timeout_ms=90_000)["status"] == "completed"
    # both calls are claimed before either runs, in no set order: compare by tool
    assert sorted(rows(pg_url, audit, conv)) == [
        ("echo", "ok", said), ("record_effect", "ok", f"recorded {label}")]
    echoed = [e["data"] for e in cluster.events(conv)
              if e["type"] == "tool_called" and e["data"]["tool"] == "echo"]
    assert [(e["ok"], e["cached"]) for e in echoed] == [(True, True)]
    assert effects(pg_url, label) == 1


def _spend_ids(pg_url: str, conv: str, expected: int) -> list[str]:
    """The request ids of the spend rows tagged with the conversation (written in batches)."""
    deadline = time.monotonic() + 20
    while True:
        found = sorted(r[0] for r in rows(pg_url, "SELECT request_id FROM spend"
                                          " WHERE %s = ANY(tags)", f"conversation:{conv}"))
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_provider_outage_polite_reply_no_retry_storm(
        cluster: WorkerCluster, pg_url: str, scripted: ScriptedProvider) -> None:
    cluster.start()
    scripted.add_rule("fast-*", {"status": 500, "error_message": "down"})
    conv = new_conversation()
    reply = result(cluster.send("hello?", conv))
    assert reply["status"] == "failed" and "can't reach the language model" in reply["text"]
    sent = len(scripted.requests())
    time.sleep(3)
    assert len(scripted.requests()) == sent, "the message was retried after the polite reply"
    assert sent <= 10
    audit = rows(pg_url, "SELECT outcome, error IS NOT NULL FROM audit_llm_calls"
                 " WHERE conversation_id = %s", conv)
    assert audit == [("error", True)]
    assert [e["type"] for e in cluster.events(conv)][-2:] == ["error", "reply"]


def test_streaming_agent_puts_text_chunks_on_the_stream(cluster: WorkerCluster) -> None:
    cluster.start()
    conv = new_conversation()
    reply = result(cluster.send("stream this " + script({"text": "one two three four"}), conv,
                                agent="streamer"))
    assert reply["text"] == "one two three four"
    deltas = [e["data"]["text"] for e in cluster.events(conv) if e["type"] == "text_delta"]
    assert len(deltas) >= 4 and "".join(deltas) == "one two three four"


def test_operator_drives_a_conversation_from_the_shell(cluster: WorkerCluster,
                                                       pg_url: str) -> None:
    import subprocess
    import sys

    from llm_pool.runtime import proxy_env

    cluster.start()
    conv = new_conversation()
    env = proxy_env(cluster.env)
    pool = [sys.executable, "-m", "llm_pool.cli"]
    text = refund_message(5, 2.0, "Refunded.")
    sent = subprocess.run([*pool, "send", "--tenant", "acme", "--conversation", conv,
                           "--agent", "tester", "--wait", "60", text],
                          env=env, capture_output=True, text=True, timeout=90)
    assert sent.returncode == 0, sent.stderr
    assert "[confirmation_required]" in sent.stdout
    assert "[reply:needs_confirmation]" in sent.stdout
    confirmed = subprocess.run([*pool, "confirm", conv, "--yes", "--by", "ops"], env=env,
                               capture_output=True, text=True, timeout=90)
    assert confirmed.returncode == 0, confirmed.stderr
    assert "[reply:completed] Refunded." in confirmed.stdout
    assert effects(pg_url, "5:2.0") == 1
    events = subprocess.run([*pool, "events", conv], env=env, capture_output=True, text=True,
                            timeout=30)
    assert events.stdout.count("[reply:") == 2
    bad = subprocess.run([*pool, "send", "--tenant", "a b", "--conversation", conv, "x"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "invalid message" in bad.stderr


def test_spend_lands_on_the_messages_tenant(cluster: WorkerCluster, pg_url: str,
                                            tmp_path: Path) -> None:
    from tests.gateway.support import new_tenant

    tenant, key = new_tenant(pg_url, "wrk")
    keys_file = tmp_path / "tenant-keys.yaml"
    keys_file.write_text(f"{tenant}: {key}\n")
    cluster.start(POOL_TENANT_KEYS_FILE=str(keys_file))
    own, other = new_conversation(), new_conversation()
    assert result(cluster.send("hello", own, tenant=tenant))["status"] == "completed"
    assert result(cluster.send("hello", other, tenant="no-key-tenant"))["status"] == "completed"

    def tenants_of(conv: str) -> list[Any]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = rows(pg_url, "SELECT t.name FROM spend s LEFT JOIN tenants t"
                         " ON t.id = s.tenant_id WHERE %s = ANY(s.tags)", f"conversation:{conv}")
            if found:
                return [r[0] for r in found]
            time.sleep(0.2)
        raise AssertionError(f"no spend row tagged with {conv}")

    assert tenants_of(own) == [tenant]
    assert tenants_of(other) == [None]  # the default key: the master key here
