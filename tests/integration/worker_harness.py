"""Real Dramatiq worker processes for the worker tests, and a client side to drive them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from dramatiq.results import Results

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, proxy_env
from llm_pool.settings import REPO_ROOT
from tests.conftest import MASTER_KEY
from worker.actors import Actors, declare
from worker.broker import build_broker
from worker.models import ConfirmMessage, InboundMessage
from worker.redis_store import RedisStore
from worker.settings import DEFAULT_HEARTBEAT_MS, WorkerSettings

READY_LINE = "is ready for action"
START_TIMEOUT = 60.0
RESULT_TIMEOUT_MS = 60_000


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def dump_stacks(self, wait: float = 5.0) -> str:
        """Ask each worker process (``SIGUSR1``, :mod:`worker.stacks`) what its threads
        and runs wait on; the dumps, from the log (empty if none came within ``wait``)."""
        if self.proc.poll() is not None:
            return ""
        start = len(self.text())
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGUSR1)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            dumped = self.text()[start:]
            if dumped.count("--- end of stack dump") >= len(children):
                return dumped
            time.sleep(0.1)
        return self.text()[start:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            # to Dramatiq's main process only, which stops its worker processes: a second
            # SIGTERM sent straight to a worker process makes it hang in a hard exit
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class WorkerCluster:
    """One namespace (queue, results, streams) shared by the worker processes and the test."""

    env: dict[str, str]
    tmp: Path
    settings: WorkerSettings
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        broker = build_broker(self.settings)
        self.actors: Actors = declare(broker, _never)
        self.backend = next(m.backend for m in broker.middleware if isinstance(m, Results))
        self.store = RedisStore(redis.Redis.from_url(self.settings.redis_url),
                                self.settings.namespace)

    def start(self, **extra_env: str) -> WorkerProcess:
        """A worker process (``dramatiq worker.actors``)."""
        return self._launch([str(Path(sys.executable).with_name("dramatiq")), "worker.actors",
                             "--processes", "1", "--threads", "8"], extra_env)

    def start_pool_worker(self, **extra_env: str) -> WorkerProcess:
        """A ``pool worker`` process (one Dramatiq worker process under it)."""
        return self._launch([sys.executable, "-m", "llm_pool.cli", "worker", "--processes", "1",
                             "--threads", "8"], extra_env)

    def start_with_metrics(self, port: int, **extra_env: str) -> WorkerProcess:
        """A worker process with Prometheus metrics on ``port`` (``pool worker
        --metrics-port``)."""
        return self._launch([sys.executable, "-m", "llm_pool.cli", "worker", "--processes", "1",
                             "--threads", "8", "--metrics-port", str(port),
                             "--metrics-host", "127.0.0.1"], extra_env)

    def _launch(self, args: list[str], extra_env: dict[str, str]) -> WorkerProcess:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    env=proxy_env({**self.env, **extra_env}),
                                    start_new_session=True)
        worker = WorkerProcess(proc, log)
        self.workers.append(worker)
        deadline = time.monotonic() + START_TIMEOUT
        while READY_LINE not in worker.text():
            if proc.poll() is not None or time.monotonic() > deadline:
                worker.stop()
                raise RuntimeError(f"worker did not start:\n{worker.text()[-3000:]}")
            time.sleep(0.1)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()

    def send(self, text: str, conversation: str, *, agent: str = "tester",
             tenant: str = "acme", message_id: str | None = None) -> Any:
        message = InboundMessage(tenant=tenant, conversation_id=conversation, agent_id=agent,
                                 text=text, message_id=message_id or uuid.uuid4().hex)
        return self._tag(self.actors.handle_message.send(message.model_dump()))

    def confirm(self, conversation: str, approved: bool | None = None, note: str | None = None,
                decisions: dict[str, Any] | None = None, decision_id: str | None = None
                ) -> Any:
        answer = ConfirmMessage.model_validate({
            "conversation_id": conversation, "approved": approved, "note": note,
            "decisions": decisions, "decided_by": "tester", "decision_id": decision_id})
        return self._tag(self.actors.confirm.send(answer.model_dump()))

    def pause(self, text: str, conversation: str | None = None) -> tuple[str, dict[str, Any]]:
        """Send ``text`` (its script asks for gated calls) in a new conversation (or
        ``conversation``): the conversation id and the ``needs_confirmation`` reply."""
        conversation = conversation or new_conversation()
        reply = result(self.send(text, conversation))
        assert reply["status"] == "needs_confirmation", reply
        return conversation, reply

    def wait_event(self, conversation: str, kind: str, timeout: float = 60.0
                   ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events(conversation) if e["type"] == kind]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no {kind} event in {conversation}: {self.events(conversation)}")

    def _tag(self, message: Any) -> Any:
        message.options["pool_backend"] = self.backend
        return message

    def events(self, conversation: str) -> list[dict[str, Any]]:
        return [event for _, event in self.store.read_events(conversation)]


def _never() -> Any:
    raise AssertionError("the test process does not run actors")


def result(message: Any, timeout_ms: int = RESULT_TIMEOUT_MS) -> dict[str, Any]:
    """The actor's return value, from this cluster's results backend."""
    value: dict[str, Any] = message.get_result(backend=message.options["pool_backend"],
                                               block=True, timeout=timeout_ms)
    return value


def rows(pg_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql, params).fetchall()


EFFECTS_TABLE = ("CREATE TABLE IF NOT EXISTS test_effects (id serial PRIMARY KEY, kind text,"
                 " label text, call_id text, at timestamptz DEFAULT now())")
HEARTBEAT_MS = DEFAULT_HEARTBEAT_MS  # the workers run with the default settings
SHORT_HEARTBEAT_MS = 5_000  # POOL_WORKER_HEARTBEAT_MS for tests that only need a redelivery


def script(*steps: dict[str, Any]) -> str:
    return "[[script:" + json.dumps({"steps": list(steps)}) + "]]"


def tool_call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def refund_message(order_id: int, amount: float, then: str) -> str:
    """A message whose model asks for one gated ``refund``, then says ``then``."""
    return f"refund order {order_id} " + script(
        tool_call("refund", order_id=order_id, amount=amount), {"text": then})


def worker_env(proxy_url: str, pg_url: str, redis_url: str, redis_prefix: str
               ) -> dict[str, str]:
    return {
        "POOL_DATABASE_URL": pg_url, "POOL_REDIS_URL": redis_url,
        "POOL_NAMESPACE": redis_prefix, "POOL_PROXY_URL": proxy_url,
        "POOL_API_KEY": MASTER_KEY,
        "POOL_AGENTS_FILE": str(REPO_ROOT / "tests" / "worker_agents.yaml"),
    }


@pytest.fixture
def cluster(offline_proxy: ProxyProcess, pg_url: str, redis_url: str, redis_prefix: str,
            tmp_path: Path, scripted: ScriptedProvider) -> Iterator[WorkerCluster]:
    env = worker_env(offline_proxy.url, pg_url, redis_url, redis_prefix)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # not by concurrent tools
        conn.execute(EFFECTS_TABLE)
    settings = WorkerSettings(redis_url=redis_url, namespace=redis_prefix, database_url=pg_url)
    running = WorkerCluster(env, tmp_path, settings)
    yield running
    running.stop_all()


def wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``check()`` until it is true (AssertionError naming ``what`` after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def replies(cluster: WorkerCluster, conversation: str, message_id: str) -> list[dict[str, Any]]:
    """The reply events of ``message_id`` on the conversation's stream."""
    return [e["data"] for e in cluster.events(conversation)
            if e["type"] == "reply" and e["message_id"] == message_id]


def new_conversation() -> str:
    return f"conv-{uuid.uuid4().hex[:8]}"


def effects(pg_url: str, label: str) -> int:
    found = rows(pg_url, "SELECT to_regclass('test_effects') IS NOT NULL")
    if not found[0][0]:
        return 0
    return int(rows(pg_url, "SELECT count(*) FROM test_effects WHERE label = %s", label)[0][0])


