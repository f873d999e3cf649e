"""What a worker tells the user when the gateway says no, against the real proxy: budget
exceeded, rate limited, a wrong key (the outage reply: ``test_worker.py``)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis
from dramatiq.results import ResultFailure

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant, tokens_script
from tests.integration.worker_harness import WorkerCluster, new_conversation, result, rows
from worker.service import BUDGET_REPLY

pytestmark = pytest.mark.integration


def test_over_budget_tenant_is_told_so_and_not_retried(
        cluster: WorkerCluster, offline_proxy: ProxyProcess, scripted: ScriptedProvider,
        pg_url: str, tmp_path: Path) -> None:
    tenant, key = new_tenant(pg_url, "wpoor", budget="0.05")
    expensive = {"model": "fast", "messages": [
        {"role": "user", "content": f"hi {tokens_script(1_000_000, 0)}"}]}  # fast-1: $0.10
    url, headers = f"{offline_proxy.url}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    assert httpx.post(url, json=expensive, headers=headers, timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while httpx.post(url, json=expensive, headers=headers, timeout=30).status_code == 200:
        assert time.monotonic() < deadline, "the budget was never enforced"
        time.sleep(0.2)
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"{tenant}: {key}\n")
    cluster.start(POOL_TENANT_KEYS_FILE=str(keys))
    conv = new_conversation()
    sent = len(scripted.requests())
    reply = result(cluster.send("hello?", conv, tenant=tenant))
    assert reply["status"] == "budget_exceeded" and reply["text"] == BUDGET_REPLY
    kinds = [e["type"] for e in cluster.events(conv)]
    assert kinds == ["received", "budget_exceeded", "reply"]
    time.sleep(2)
    assert len(scripted.requests()) == sent  # the provider never saw it, and no retry
    assert rows(pg_url, "SELECT outcome, error LIKE 'BudgetExceededError%%' FROM audit_llm_calls"
                " WHERE conversation_id = %s", conv) == [("error", True)]


def test_rate_limited_message_is_retried_after_retry_after(
        cluster: WorkerCluster, scripted: ScriptedProvider) -> None:
    cluster.start()
    scripted.add_rule("fast-*", {"status": 429, "retry_after": 1,
                                 "error_message": "slow down"})
    conv = new_conversation()
    message = cluster.send("hello after the limit", conv)
    limited = cluster.wait_event(conv, "rate_limited", timeout=60)
    assert limited["data"]["retry_after"] >= 1
    scripted.reset()  # the provider takes requests again
    reply = result(message, timeout_ms=90_000)
    assert reply["status"] == "completed" and "hello after the limit" in reply["text"]
    assert [e["type"] for e in cluster.events(conv)][-2:] == ["llm_call", "reply"]


def test_wrong_worker_key_fails_loudly_to_the_dead_letters(
        cluster: WorkerCluster, scripted: ScriptedProvider, redis_url: str,
        redis_prefix: str) -> None:
    worker = cluster.start(POOL_API_KEY="sk-not-a-key")
    conv = new_conversation()
    message = cluster.send("hello?", conv)
    with pytest.raises(ResultFailure):
        result(message)
    error = cluster.wait_event(conv, "error")["data"]
    assert error["fatal"] is True and error["error"] == "AuthError" and error["status"] == 401
    assert "reply" not in [e["type"] for e in cluster.events(conv)]  # no polite lie
    dead = redis.Redis.from_url(redis_url).hvals(f"{redis_prefix}:dramatiq:conversations.XQ.msgs")
    assert len(dead) == 1 and message.message_id in dead[0].decode()  # failed once: no retries
    # the log line is written when Dramatiq handles the failure, which may come after the
    # failed result and the dead letter are stored
    refused = "the gateway refused the worker's request (AuthError, HTTP 401)"
    deadline = time.monotonic() + 20
    while refused not in (log := worker.text()):
        assert time.monotonic() < deadline, log[-3000:]
        time.sleep(0.1)
    assert "POOL_API_KEY" in log
    assert scripted.requests() == []


def _dead_letters(redis_url: str, redis_prefix: str) -> list[bytes]:
    found: list[bytes] = redis.Redis.from_url(redis_url).hvals(
        f"{redis_prefix}:dramatiq:conversations.XQ.msgs")
    return found


def test_unreachable_gateway_is_retried_with_backoff_then_dead_lettered_never_polite(
        cluster: WorkerCluster, redis_url: str, redis_prefix: str) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens: a wrong POOL_PROXY_URL
    worker = cluster.start(POOL_PROXY_URL=closed, POOL_WORKER_MAX_RETRIES="1")
    conv = new_conversation()
    secret = f"my card number is 4111-{conv}"
    message = cluster.send(secret, conv)
    with pytest.raises(ResultFailure):
        result(message, timeout_ms=90_000)
    dead = cluster.wait_event(conv, "dead_lettered")
    assert "GatewayUnreachable" in dead["data"]["cause"] and closed in dead["data"]["cause"]
    types = [e["type"] for e in cluster.events(conv)]
    assert "reply" not in types  # never the polite outage reply
    assert types.count("error") == 2  # the first try and its one retry
    assert len(_dead_letters(redis_url, redis_prefix)) == 1
    log = worker.text()
    ours = [line for line in log.splitlines() if "GatewayUnreachable" in line]
    assert len(ours) == 2, log[-3000:]  # one line per failed delivery
    message_id = dead["message_id"]
    assert all(f"message_id={message_id}" in line and f"conversation={conv}" in line
               for line in ours)
    assert "retried with backoff (retry 1)" in ours[0] and "dead-lettered" in ours[1]
    assert secret not in log and "Traceback" not in log  # no user text, no traceback


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
