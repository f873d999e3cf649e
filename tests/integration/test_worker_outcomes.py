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
    log = worker.text()
    assert "the gateway refused the worker's request (AuthError, HTTP 401)" in log
    assert "POOL_API_KEY" in log
    assert scripted.requests() == []
