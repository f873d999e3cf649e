"""``pool worker --metrics-port``: Dramatiq's Prometheus middleware and our reply counters,
scraped after real messages through a real worker and the real proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, free_port, proxy_env
from llm_pool.settings import REPO_ROOT
from tests.conftest import MASTER_KEY
from tests.integration.worker_harness import (
    READY_LINE,
    START_TIMEOUT,
    WorkerCluster,
    WorkerProcess,
    result,
)
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(offline_proxy: ProxyProcess, pg_url: str, redis_url: str, redis_prefix: str,
            tmp_path: Path, scripted: ScriptedProvider) -> Iterator[WorkerCluster]:
    env = {"POOL_DATABASE_URL": pg_url, "POOL_REDIS_URL": redis_url,
           "POOL_NAMESPACE": redis_prefix, "POOL_PROXY_URL": offline_proxy.url,
           "POOL_API_KEY": MASTER_KEY,
           "POOL_AGENTS_FILE": str(REPO_ROOT / "tests" / "worker_agents.yaml")}
    settings = WorkerSettings(redis_url=redis_url, namespace=redis_prefix)
    running = WorkerCluster(env, tmp_path, settings)
    yield running
    running.stop_all()


def _start(cluster: WorkerCluster, port: int) -> None:
    log = cluster.tmp / "metrics-worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llm_pool.cli", "worker", "--processes", "1", "--threads",
             "2", "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=proxy_env(cluster.env),
            start_new_session=True)
    worker = WorkerProcess(proc, log)
    cluster.workers.append(worker)
    deadline = time.monotonic() + START_TIMEOUT
    while READY_LINE not in worker.text():
        assert proc.poll() is None and time.monotonic() < deadline, worker.text()[-2000:]
        time.sleep(0.1)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_worker_metrics_after_real_messages(cluster: WorkerCluster) -> None:
    port = free_port()
    _start(cluster, port)
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    assert result(cluster.send("hello there", conversation))["status"] == "completed"
    assert result(cluster.confirm(conversation, True))["status"] == "nothing_pending"
    refund = f"conv-{uuid.uuid4().hex[:8]}"
    steps = [{"tool_calls": [{"name": "refund", "arguments": {"order_id": 7, "amount": 1.5}}]},
             {"text": "Refund done."}]
    text = "refund order 7 [[script:" + json.dumps({"steps": steps}) + "]]"
    assert result(cluster.send(text, refund))["status"] == "needs_confirmation"
    found = _scrape(port)
    assert found[("pool_worker_pending_confirmations", ())] == 1
    assert found[("pool_worker_replies_total",
                  (("actor", "handle_message"), ("status", "needs_confirmation")))] == 1
    assert result(cluster.confirm(refund, True))["status"] == "completed"
    found = _scrape(port)
    assert found[("pool_worker_pending_confirmations", ())] == 0
    queue = ("queue_name", "conversations")
    assert found[("dramatiq_messages_total", (("actor_name", "handle_message"), queue))] == 2
    assert found[("dramatiq_messages_total", (("actor_name", "confirm"), queue))] == 2
    assert found.get(("dramatiq_message_errors_total",
                      (("actor_name", "handle_message"), queue)), 0) == 0
    assert found[("pool_worker_replies_total",
                  (("actor", "handle_message"), ("status", "completed")))] == 1
    assert found[("pool_worker_replies_total",
                  (("actor", "confirm"), ("status", "nothing_pending")))] == 1
