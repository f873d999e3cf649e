"""Shared pieces of the benchmarks: the scripted provider in its own process, proxies
on a config, an asyncio load generator, and percentile maths.

Every benchmark measures its baseline in the same run (these machines are noisy)
and prints both, with the ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from llm_pool.runtime import PROXY_START_TIMEOUT, ProxyProcess, free_port, start_proxy, wait_http
from llm_pool.settings import DEFAULT_DATABASE_URL

REPO = Path(__file__).resolve().parent.parent
MASTER_KEY = "sk-bench-master"
CHAT_BODY = {"model": "fast", "messages": [{"role": "user", "content": "ping"}],
             "max_tokens": 16}


@dataclass(frozen=True)
class LoadResult:
    label: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0

    def line(self) -> str:
        return (f"{self.label:<34} {self.throughput:8.1f} req/s   p50 {self.pct(50):7.2f} ms"
                f"   p99 {self.pct(99):7.2f} ms   errors {self.errors}/{self.requests}")


@contextlib.contextmanager
def provider_process() -> Iterator[str]:
    """``pool provider`` in its own process (not sharing the load generator's GIL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llm_pool.cli", "provider", "--port",
                             str(port)], stdout=subprocess.DEVNULL, cwd=REPO)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 20, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def proxy(config: Path, env: dict[str, str], workers: int = 1,
          start_timeout: float = PROXY_START_TIMEOUT) -> Iterator[ProxyProcess]:
    with tempfile.TemporaryDirectory() as tmp:
        running = start_proxy(config, env=env, workers=workers, log_path=Path(tmp) / "p.log",
                              timeout=start_timeout)
        try:
            yield running
        finally:
            running.stop()


async def _load(send: Callable[[], Awaitable[bool]], concurrency: int, seconds: float,
                warmup: float) -> tuple[int, int, float, list[float]]:
    latencies: list[float] = []
    counts = [0, 0]
    measuring = False
    stop_at = time.monotonic() + warmup + seconds

    async def one_connection() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            ok = await send()
            if measuring:
                latencies.append((time.perf_counter() - started) * 1000)
                counts[0] += 1
                counts[1] += 0 if ok else 1

    tasks = [asyncio.create_task(one_connection()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring, begun = True, time.monotonic()
    await asyncio.gather(*tasks)
    return counts[0], counts[1], time.monotonic() - begun, latencies


def http_load(label: str, url: str, key: str, *, concurrency: int, seconds: float,
              warmup: float = 2.0, body: dict[str, Any] | None = None) -> LoadResult:
    """Closed-loop load: ``concurrency`` connections each sending POSTs back to back."""

    async def main() -> tuple[int, int, float, list[float]]:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            headers = {"Authorization": f"Bearer {key}"}

            async def send() -> bool:
                response = await client.post(f"{url}/v1/chat/completions",
                                             json=body or CHAT_BODY, headers=headers)
                return response.status_code == 200

            return await _load(send, concurrency, seconds, warmup)

    requests, errors, elapsed, latencies = asyncio.run(main())
    return LoadResult(label, requests, errors, elapsed, latencies)


def ratio_line(name: str, ours: float, base: float, unit: str = "") -> str:
    return f"{name:<34} {ours / base:8.3f}x   ({ours:.2f}{unit} vs {base:.2f}{unit})"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


@contextlib.contextmanager
def scratch_database(prefix: str = "llm_pool_bench") -> Iterator[str]:
    """A migrated database of its own, dropped afterwards."""
    from proxy.storage.db import migrate

    base = os.environ.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL).rsplit("/", 1)[0]
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(f"{base}/{name}")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
