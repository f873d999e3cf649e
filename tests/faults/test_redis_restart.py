"""Redis crashes and restarts while Dramatiq workers run, with and without persistence.

A private ``redis-server`` (its own port, never the machine's shared one) is killed
with SIGKILL while queued messages wait and two are being worked on, then started
again on the same port a second later. What is promised, and held to here:

- **Workers reconnect** by themselves and go on consuming: every Redis client of
  ours (broker, results, the worker's store; ``worker.broker.redis_client``) retries
  through a connection failure for up to ``REDIS_OUTAGE_SECONDS``, so a run that was
  writing an event when Redis vanished waits and goes on (before that fix, such a
  message failed, its retry could not be queued, and Dramatiq acked it: lost).
- **Sending while Redis is down** blocks in ``send`` until Redis is back (up to
  ``REDIS_OUTAGE_SECONDS``), then queues: that message is answered too.
- **With persistence** (``appendonly yes``, ``appendfsync always``) nothing in Redis
  is lost: every queued message is answered without the client doing anything, and
  a pending confirmation survives, so the user's "yes" still runs the action.
- **Without persistence** (``--save "" --appendonly no``, as our dev and test Redis
  runs) a restart empties Redis: messages still waiting in the queue, stored results
  and pending confirmations are gone; a worker finishes the messages it had already
  fetched. The client gets no reply for a lost message and sends it again *with the
  same message_id*: safe by the at-least-once design (a finished message is answered
  from PostgreSQL, tool results are reused), so every message ends completed once and
  each tool effect happens once. A "yes" to a lost confirmation gets the polite
  **expired** reply (the pending state is known from PostgreSQL); nothing is run.

Deployments that cannot afford client resends should run Redis with AOF.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from dramatiq.results import ResultMissing, ResultTimeout

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, free_port
from llm_pool.settings import REPO_ROOT
from tests.conftest import MASTER_KEY
from tests.integration.worker_harness import WorkerCluster, rows
from worker.broker import REDIS_OUTAGE_SECONDS
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

MESSAGES = 8
LLM_DELAY = 0.25  # seconds per final LLM answer: the queue is still full when Redis dies
DOWN_SECONDS = 1.0
LOST_AFTER = 6.0  # seconds after the restart: no reply yet, the client resends (no AOF)
EFFECTS_TABLE = ("CREATE TABLE IF NOT EXISTS test_effects (id serial PRIMARY KEY, kind text,"
                 " label text, call_id text, at timestamptz DEFAULT now())")
PERSISTENCE = {
    "aof": ["--appendonly", "yes", "--appendfsync", "always", "--save", ""],
    "none": ["--appendonly", "no", "--save", ""],
}


class RedisServer:
    """A private redis-server subprocess that can be crashed and started again."""

    def __init__(self, directory: Path, persistence: list[str]) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                     "--daemonize", "no", "--dir", str(directory), *persistence]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def crash(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=list(PERSISTENCE))
def private_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, PERSISTENCE[request.param])
    server.start()
    yield server
    server.crash()


@pytest.fixture
def cluster(private_redis: RedisServer, fault_proxy: ProxyProcess, pg_url: str, tmp_path: Path,
            scripted: ScriptedProvider) -> Iterator[WorkerCluster]:
    namespace = f"redis-restart-{uuid.uuid4().hex[:8]}"
    env = {
        "POOL_DATABASE_URL": pg_url, "POOL_REDIS_URL": private_redis.url,
        "POOL_NAMESPACE": namespace, "POOL_PROXY_URL": fault_proxy.url,
        "POOL_API_KEY": MASTER_KEY,
        "POOL_AGENTS_FILE": str(REPO_ROOT / "tests" / "worker_agents.yaml"),
        "POOL_WORKER_HEARTBEAT_MS": "2000",
    }
    settings = WorkerSettings(redis_url=private_redis.url, namespace=namespace,
                              database_url=pg_url)
    running = WorkerCluster(env, tmp_path, settings)
    yield running
    running.stop_all()


def _script(*steps: dict[str, Any]) -> str:
    return "[[script:" + json.dumps({"steps": list(steps)}) + "]]"


def _effects(pg_url: str, label: str) -> int:
    return int(rows(pg_url, "SELECT count(*) FROM test_effects WHERE label = %s", label)[0][0])


def _reply(message: Any, seconds: float) -> dict[str, Any] | None:
    """The message's result, or None if none comes within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            return None
        try:
            value: dict[str, Any] = message.get_result(
                backend=message.options["pool_backend"], block=True, timeout=left_ms)
            return value
        except (ResultTimeout, ResultMissing):
            return None
        except redis.ConnectionError:
            time.sleep(0.2)


def _run_state(pg_url: str, server: RedisServer, message_id: str) -> str:
    """What is known of a run that never answered: its outcome, its tool calls, its LLM
    journal, and its lease in Redis (who holds it, for how long more)."""
    outcome = rows(pg_url, "SELECT status, updated_at FROM message_outcomes"
                   " WHERE message_id = %s", message_id)
    calls = rows(pg_url, "SELECT tool_call_id, outcome, claimed_by, attempts FROM"
                 " audit_tool_calls WHERE message_id = %s", message_id)
    journal = rows(pg_url, "SELECT count(*) FROM llm_journal WHERE message_id = %s", message_id)
    client = redis.Redis.from_url(server.url, socket_timeout=2)
    leases = {key.decode(): (client.get(key), client.pttl(key))
              for key in client.scan_iter(f"*lease:{message_id}")}
    return f"outcome={outcome} tool_calls={calls} llm_journal={journal} leases={leases}"


def test_redis_crash_and_restart_while_workers_run(
        request: pytest.FixtureRequest, private_redis: RedisServer, cluster: WorkerCluster,
        pg_url: str) -> None:
    persistent = "aof" in request.node.callspec.id
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(EFFECTS_TABLE)  # up front: the first two tools racing to create it fail
    worker = cluster.start()
    run = uuid.uuid4().hex[:6]

    pending_conv, order_id = f"refund-{run}", int(run, 16)
    order = _script({"tool_calls": [{"name": "refund",
                                     "arguments": {"order_id": order_id, "amount": 4.5}}]},
                    {"text": "Refund done."})
    paused = _reply(cluster.send(f"refund order {order_id} {order}", pending_conv), 30)
    assert paused is not None and paused["status"] == "needs_confirmation"

    texts: dict[str, str] = {}
    for i in range(MESSAGES):
        label = f"redis-{run}-{i}"
        texts[f"conv-{run}-{i}"] = f"record {label} " + _script(
            {"tool_calls": [{"name": "record_effect", "arguments": {"label": label}}]},
            {"text": f"done {i}", "delay": LLM_DELAY})
    ids = {conv: f"msg-{conv}" for conv in texts}
    sent = {conv: cluster.send(text, conv, message_id=ids[conv]) for conv, text in texts.items()}
    time.sleep(LLM_DELAY * 2)  # a couple of messages in flight, the rest queued

    private_redis.crash()
    late_sender = ThreadPoolExecutor(max_workers=1)  # queues while Redis is down
    late_conv = f"conv-{run}-late"
    texts[late_conv] = "sent while Redis was down " + _script({"text": "late one"})
    ids[late_conv] = f"msg-{late_conv}"
    queued_late = late_sender.submit(cluster.send, texts[late_conv], late_conv,
                                     message_id=ids[late_conv])
    time.sleep(DOWN_SECONDS)
    assert not queued_late.done(), "send returned while Redis was down"
    private_redis.start()
    sent[late_conv] = queued_late.result(timeout=REDIS_OUTAGE_SECONDS)
    late_sender.shutdown()

    # with AOF nothing may be lost: wait as long as it takes; without, what has not
    # come back by then is presumed lost (a slow one resent by mistake is harmless)
    deadline = time.monotonic() + (30.0 if persistent else LOST_AFTER)
    replies = {conv: _reply(message, max(0.5, deadline - time.monotonic()))
               for conv, message in sent.items()}
    missing = [conv for conv, reply in replies.items() if reply is None]
    for conv in missing:  # the client's remedy: send again, same message id
        replies[conv] = _reply(cluster.send(texts[conv], conv, message_id=ids[conv]), 30)

    assert worker.proc.poll() is None, "the worker died instead of reconnecting"
    late_reply = replies.pop(late_conv)
    assert late_reply is not None and late_reply["text"] == "late one"
    for i, conv in enumerate(sent):
        if conv == late_conv:
            continue
        reply = replies[conv]
        assert reply is not None, (f"{conv}: no reply even after resending\n"
                                   f"{_run_state(pg_url, private_redis, ids[conv])}\n"
                                   f"{worker.dump_stacks()}\n{worker.text()[-3000:]}")
        assert (reply["status"], reply["text"]) == ("completed", f"done {i}")
        assert rows(pg_url, "SELECT outcome, result FROM audit_tool_calls"
                    " WHERE conversation_id = %s", conv) == [("ok", f"recorded redis-{run}-{i}")]
        assert _effects(pg_url, f"redis-{run}-{i}") == 1, f"{conv}: tool effect not exactly once"
    late = _reply(cluster.confirm(pending_conv, approved=True), 30)
    assert late is not None
    if persistent:
        assert missing == [], f"messages lost despite AOF: {missing}"
        assert (late["status"], late["text"]) == ("completed", "Refund done.")
        assert _effects(pg_url, f"{order_id}:4.5") == 1
    else:
        assert late["status"] == "expired" and "expired" in late["text"]
        assert _effects(pg_url, f"{order_id}:4.5") == 0
    print(f"\nredis {request.node.callspec.id}: {MESSAGES} queued + 1 sent while down, "
          f"{len(missing)} resent by the client, all completed once; pending confirmation -> "
          f"{late['status']}")
