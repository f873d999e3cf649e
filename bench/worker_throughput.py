"""Benchmark 4: worker throughput on a 3-step tool loop: async actors vs threaded actors.

    .venv/bin/python -m bench.worker_throughput [--messages 500] [--delay 1.0] \\
        [--threads 8] [--async-threads 500] [--proxy-workers 2] [--baseline-rev 9681611]

N conversations, each one queued message whose agent makes three LLM calls (tool,
tool, reply) against the scripted provider, which answers each call after
``--delay`` seconds, through one proxy with ``--proxy-workers`` uvicorn workers.
One Dramatiq worker process runs them:

- **async**: this tree's worker (async actors on one event loop, ``--async-threads``
  messages in flight);
- **threaded** (baseline): the worker as it was at ``--baseline-rev`` (sync actors,
  one thread per conversation, ``--threads``), exported with ``git archive`` and
  run from there, on the same proxy, database and Redis;
- **proxy ceiling**: the same N agent runs in this process with ``AsyncGateway`` /
  ``Agent.arun``, ``--async-threads`` at once, no queue: what the proxy can serve
  (with the worker's ``GATEWAY_SHARDS`` clients, so that the client is not the limit).

Reports messages/s, end-to-end p50/p99 minus the provider's time (3 x delay), loss
(sent - replied; must be 0), and CPU per message: the CPU seconds (user + system,
from ``/proc/<pid>/stat``) the side's own processes spent while its messages ran,
divided by the messages. For async/threaded that is the Dramatiq process tree (its
session: the main process and its worker processes), for the ceiling this benchmark
process. Unlike msg/s, it hardly depends on what else the machine is running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
from sdk import Agent, AsyncGateway, SDKError
from tests.worker_tools import add, lookup
from worker.actors import declare
from worker.broker import build_broker
from worker.models import InboundMessage
from worker.redis_store import RedisStore
from worker.settings import WorkerSettings
from worker.tenant_keys import GATEWAY_SHARDS

BASELINE_REV = "9681611"  # the last commit with threaded (sync) actors
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Side:
    """One side's figures: the load result and the CPU seconds its processes used."""

    result: LoadResult
    cpu_seconds: float

    @property
    def cpu_ms_per_message(self) -> float:
        return self.cpu_seconds * 1000 / self.result.requests


def _stat(pid: int | str) -> list[str]:
    """``/proc/<pid>/stat``'s fields after the command name (index 0 = field 3, state)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def session_pids(session: int) -> list[int]:
    """The live processes of a session (``start_new_session``: the leader's pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat(entry.name)[3]) == session:  # field 6, session id
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds the processes have used so far (all their threads; a
    process gone meanwhile counts 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / CLOCK_TICKS


def _script(delay: float) -> str:
    steps = [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "delay": delay},
             {"tool_calls": [{"name": "lookup", "arguments": {"key": "k"}}], "delay": delay},
             {"text": "done", "delay": delay}]
    return "[[script:" + json.dumps({"steps": steps}) + "]]"


def _ceiling(url: str, n: int, concurrency: int, script: str) -> Side:
    async def main() -> list[float | None]:
        # as many connection pools as the worker has (worker.tenant_keys): one pool with
        # 100 requests in flight makes the client, not the proxy, the limit
        agents = itertools.cycle([
            Agent(name="Testy", alias="fast", tools=[add, lookup],
                  gateway=AsyncGateway(base_url=url, api_key=MASTER_KEY))
            for _ in range(GATEWAY_SHARDS)])
        gate = asyncio.Semaphore(concurrency)

        async def one() -> float | None:  # from submission, as for queued messages
            async with gate:
                try:
                    done = (await next(agents).arun(f"go {script}")).text == "done"
                except SDKError:  # a timeout under load: counted, not fatal
                    done = False
            return (time.monotonic() - started) * 1000 if done else None

        return list(await asyncio.gather(*(one() for _ in range(n))))

    started, cpu = time.monotonic(), cpu_seconds([os.getpid()])
    results = asyncio.run(main())
    latencies = [r for r in results if r is not None]
    return Side(LoadResult(f"proxy ceiling (in-process, {concurrency} at once)", n,
                           n - len(latencies), time.monotonic() - started, latencies),
                cpu_seconds([os.getpid()]) - cpu)


@contextlib.contextmanager
def _exported(rev: str) -> Iterator[Path]:
    """The repository's tree at ``rev``, in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


def _queued(label: str, code: Path, url: str, db_url: str, n: int, threads: int,
            script: str) -> Side:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    redis_url = os.environ.get("POOL_REDIS_URL", DEFAULT_REDIS_URL)
    env = {"POOL_DATABASE_URL": db_url, "POOL_REDIS_URL": redis_url, "POOL_NAMESPACE": namespace,
           "POOL_PROXY_URL": url, "POOL_API_KEY": MASTER_KEY, "PYTHONPATH": str(code),
           "POOL_AGENTS_FILE": str(code / "tests" / "worker_agents.yaml")}
    settings = WorkerSettings(redis_url=redis_url, namespace=namespace, database_url=db_url)
    actors = declare(build_broker(settings), lambda: None)  # type: ignore[arg-type,return-value]
    store = RedisStore(redis.Redis.from_url(redis_url), namespace)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("dramatiq")), "worker.actors",
                 "--processes", "1", "--threads", str(threads)],
                cwd=code, env=proxy_env(env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            while "is ready for action" not in log.read_text():
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-3000:])
                time.sleep(0.1)
            cpu = cpu_seconds(session_pids(proc.pid))
            result = _drive(label, actors, store, n, script)
            return Side(result, cpu_seconds(session_pids(proc.pid)) - cpu)
        finally:
            proc.terminate()  # the main process only: it stops its worker process itself
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            keys = list(store.client.scan_iter(f"{namespace}*"))
            if keys:
                store.client.delete(*keys)


def _drive(label: str, actors: Any, store: RedisStore, n: int, script: str) -> LoadResult:
    """Queue ``n`` messages at once; every reply also goes to one reply channel."""
    channel = f"{store.namespace}:replies"
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for i in range(n):
        message = InboundMessage(tenant="bench", conversation_id=f"bench-{i}", agent_id="tester",
                                 text=f"go {script}", message_id=uuid.uuid4().hex,
                                 reply_channel=channel)
        sent_at[message.message_id] = time.monotonic()
        actors.handle_message.send(message.model_dump())
    latencies: list[float] = []
    after, deadline = "0-0", time.monotonic() + 900
    while len(latencies) < n and time.monotonic() < deadline:
        for entry_id, event in store.read_events("-", after, block_ms=1000, stream=channel):
            after = entry_id
            if event["message_id"] in sent_at:
                latencies.append((time.monotonic() - sent_at.pop(event["message_id"])) * 1000)
    return LoadResult(label, n, len(sent_at), time.monotonic() - started, latencies)


def _print(side: Side, provider_ms: float) -> None:
    result = side.result
    print(f"{result.label:<52} {result.throughput:8.2f} msg/s   e2e-provider p50 "
          f"{result.pct(50) - provider_ms:8.1f} ms   p99 {result.pct(99) - provider_ms:8.1f}"
          f" ms   lost {result.errors}/{result.requests}   CPU "
          f"{side.cpu_ms_per_message:6.1f} ms/msg", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--delay", type=float, default=1.0, help="provider seconds per call")
    parser.add_argument("--threads", type=int, default=8, help="threaded baseline's threads")
    parser.add_argument("--async-threads", type=int, default=500,
                        help="messages in flight in the async worker")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--proxy-workers", type=int, default=2)
    parser.add_argument("--proxy-start-timeout", type=float, default=120.0,
                        help="seconds the proxy may take to start (more on a loaded machine)")
    parser.add_argument("--sides", default="ceiling,async,threaded",
                        help="which of ceiling,async,threaded to run (profiling one side)")
    args = parser.parse_args()
    sides = set(args.sides.split(","))
    script = _script(args.delay)
    provider_ms = 3 * args.delay * 1000
    with provider_process() as upstream, scratch_database() as db_url, \
            _exported(args.baseline_rev) as old:
        env = {"POOL_PROVIDER_URL": f"{upstream}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url}
        with proxy(REPO / "config" / "offline.yaml", env, workers=args.proxy_workers,
                   start_timeout=args.proxy_start_timeout) as running:
            results: dict[str, Side] = {}
            if "ceiling" in sides:
                results["ceiling"] = _ceiling(running.url, args.messages, args.async_threads,
                                              script)
                _print(results["ceiling"], provider_ms)
            if "async" in sides:
                results["async"] = _queued(
                    f"async actors (1 process, {args.async_threads} in flight)", REPO,
                    running.url, db_url, args.messages, args.async_threads, script)
                _print(results["async"], provider_ms)
            if "threaded" in sides:
                results["threaded"] = _queued(
                    f"threaded actors @{args.baseline_rev} ({args.threads} threads)", old,
                    running.url, db_url, args.messages, args.threads, script)
                _print(results["threaded"], provider_ms)
    for label, other in (("threaded", "threaded"), ("proxy ceiling", "ceiling")):
        if "async" in results and other in results:
            print(ratio_line(f"messages/s async / {label}", results["async"].result.throughput,
                             results[other].result.throughput, " msg/s"))
    if "async" in results and "ceiling" in results:
        print(ratio_line("CPU/message async / proxy ceiling",
                         results["async"].cpu_ms_per_message,
                         results["ceiling"].cpu_ms_per_message, " ms"))


if __name__ == "__main__":
    main()
