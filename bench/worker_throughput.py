"""Benchmark 4: worker throughput on a 3-step tool loop, vs the same loop run in-process.

    .venv/bin/python -m bench.worker_throughput [--messages 60] [--delay 0.05] [--threads 8]

N conversations, each one queued message whose agent makes three LLM calls (tool,
tool, reply) against the scripted provider with a fixed latency per call. One
Dramatiq worker process with ``--threads`` threads runs them. The baseline is
the same N runs of the SDK agent in this process on a thread pool of the same
size (no queue, no PostgreSQL, no Redis). Reports messages/s, end-to-end p50/p99
minus the provider's time (3 x delay), and loss (sent - replied; must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    MASTER_KEY,
    REPO,
    LoadResult,
    provider_process,
    proxy,
    ratio_line,
    scratch_database,
)
from llm_pool.runtime import proxy_env
from llm_pool.settings import DEFAULT_REDIS_URL
from sdk import Agent, Gateway
from tests.worker_tools import add, lookup
from worker.actors import declare
from worker.broker import build_broker
from worker.models import InboundMessage
from worker.redis_store import RedisStore
from worker.settings import WorkerSettings

AGENTS_FILE = REPO / "tests" / "worker_agents.yaml"


def _script(delay: float) -> str:
    steps = [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "delay": delay},
             {"tool_calls": [{"name": "lookup", "arguments": {"key": "k"}}], "delay": delay},
             {"text": "done", "delay": delay}]
    return "[[script:" + json.dumps({"steps": steps}) + "]]"


def _baseline(url: str, n: int, threads: int, script: str) -> LoadResult:
    gateway = Gateway(base_url=url, api_key=MASTER_KEY)
    agent = Agent(name="Testy", alias="fast", tools=[add, lookup], gateway=gateway)

    def one(_: int) -> float:  # from submission, as for queued messages
        assert agent.run(f"go {script}").text == "done"
        return (time.monotonic() - started) * 1000

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(one, range(n)))
    return LoadResult("in-process agent (baseline)", n, 0, time.monotonic() - started, latencies)


def _queued(url: str, db_url: str, n: int, threads: int, script: str) -> LoadResult:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    redis_url = os.environ.get("POOL_REDIS_URL", DEFAULT_REDIS_URL)
    env = {"POOL_DATABASE_URL": db_url, "POOL_REDIS_URL": redis_url, "POOL_NAMESPACE": namespace,
           "POOL_PROXY_URL": url, "POOL_API_KEY": MASTER_KEY,
           "POOL_AGENTS_FILE": str(AGENTS_FILE)}
    settings = WorkerSettings(redis_url=redis_url, namespace=namespace, database_url=db_url)
    actors = declare(build_broker(settings), lambda: None)  # type: ignore[arg-type,return-value]
    store = RedisStore(redis.Redis.from_url(redis_url), namespace)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("dramatiq")), "worker.actors",
                 "--processes", "1", "--threads", str(threads)],
                cwd=REPO, env=proxy_env(env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            while "is ready for action" not in log.read_text():
                time.sleep(0.1)
            return _drive(actors, store, n, script)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            keys = list(store.client.scan_iter(f"{namespace}*"))
            if keys:
                store.client.delete(*keys)


def _drive(actors: Any, store: RedisStore, n: int, script: str) -> LoadResult:
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for i in range(n):
        conv = f"bench-{i}"
        message = InboundMessage(tenant="bench", conversation_id=conv, agent_id="tester",
                                 text=f"go {script}", message_id=uuid.uuid4().hex)
        sent_at[conv] = time.monotonic()
        actors.handle_message.send(message.model_dump())
    latencies: list[float] = []
    pending = set(sent_at)
    deadline = time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        for conv in list(pending):
            events = store.read_events(conv)
            if any(e["type"] == "reply" for _, e in events):
                latencies.append((time.monotonic() - sent_at[conv]) * 1000)
                pending.discard(conv)
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    return LoadResult("queued via Dramatiq worker", n, len(pending), elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--delay", type=float, default=0.05, help="provider seconds per call")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    script = _script(args.delay)
    provider_ms = 3 * args.delay * 1000
    with provider_process() as upstream, scratch_database() as db_url:
        env = {"POOL_PROVIDER_URL": f"{upstream}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url}
        with proxy(REPO / "config" / "offline.yaml", env) as running:
            base = _baseline(running.url, args.messages, args.threads, script)
            ours = _queued(running.url, db_url, args.messages, args.threads, script)
    for result in (base, ours):
        print(f"{result.label:<34} {result.throughput:8.2f} msg/s   e2e-provider p50 "
              f"{result.pct(50) - provider_ms:7.1f} ms   p99 {result.pct(99) - provider_ms:7.1f}"
              f" ms   lost {result.errors}/{result.requests}")
    print(ratio_line("messages/s queued / in-process", ours.throughput, base.throughput,
                     " msg/s"))


if __name__ == "__main__":
    main()
