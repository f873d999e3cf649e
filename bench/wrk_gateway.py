"""Benchmarks 1 and 2 again, with ``wrk`` (a C load generator) instead of a Python one,
plus the cost of the Redis-shared limits and time to first byte of 200 streams.

    apt-get install -y wrk      # and curl, for the streams
    .venv/bin/python -m bench.wrk_gateway [--seconds 15] [--connections 10]

(Each side here is loaded once, one after the other. For gateway/stock at 1 and 2 workers,
c=1 and c=10, in alternating rounds, and what each feature costs: ``bench/costs.py``.)

All in one run, one after the other (never two proxies loaded at once), against a
starlette upstream (``bench/upstream.py``):

- upstream alone;
- the stock proxy (master key, no plug-ins of ours), 1 and 2 workers;
- the configured gateway (tenant key with budget, rpm and tpm), 1 worker, without
  Redis (per-process limits) and with Redis (shared limits, reservations, journal);
- the configured gateway with Redis, 2 workers;
- 200 concurrent streams (20 chunks over 2 s upstream), time to first byte measured by
  200 ``curl`` processes, against the upstream alone, the stock proxy and the gateway
  (2 workers each).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import redis

from bench.common import MASTER_KEY, REPO, proxy, scratch_database
from bench.gateway_overhead import stock_config
from llm_pool.runtime import free_port
from llm_pool.settings import DEFAULT_REDIS_URL
from proxy.storage.tenants import create_key, create_tenant

OFFLINE = REPO / "config" / "offline.yaml"
BODY = {"model": "fast", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 16}
STREAMS = 200


@dataclass(frozen=True)
class WrkResult:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self) -> str:
        return (f"| {self.label} | {self.rps:.1f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} | "
                f"{self.errors}/{self.requests} |")


def _ms(text: str, label: str) -> float:
    found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if found is None:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(label: str, url: str, key: str, seconds: float, connections: int,
        body: dict[str, object] = BODY) -> WrkResult:
    script = ("wrk.method = 'POST'\n"
              f"wrk.body = {json.dumps(json.dumps(body))}\n"
              "wrk.headers['Content-Type'] = 'application/json'\n"
              f"wrk.headers['Authorization'] = 'Bearer {key}'\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        subprocess.run(["wrk", "-t1", f"-c{connections}", "-d3s", "-s", lua.name, url],
                       capture_output=True, check=True)  # warm-up
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
                              "-s", lua.name, url], capture_output=True, text=True,
                             check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = WrkResult(label, rps, _ms(out, "50"), _ms(out, "99"), requests, errors)
    print(result.line(), flush=True)
    return result


def ttfb_p95(label: str, url: str, key: str) -> float:
    """p95 time to first byte (ms) of ``STREAMS`` streams started at once (curl)."""
    body = json.dumps({**BODY, "stream": True})
    command = (f"seq {STREAMS} | xargs -P {STREAMS} -I{{}} curl -s -o /dev/null "
               f"-w '%{{time_starttransfer}}\\n' -H 'Content-Type: application/json' "
               f"-H 'Authorization: Bearer {key}' -d '{body}' {url}")
    out = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    times = sorted(float(t) * 1000 for t in out.split())
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"| {label} | {len(times)} | {times[len(times) // 2]:.0f} | {p95:.0f} |", flush=True)
    return p95


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.upstream:app", "--port",
                             str(port), "--log-level", "warning"], cwd=REPO)
    try:
        _wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "upstream exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError("upstream did not start")


def tenant_key(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        create_tenant(conn, "bench", budget=Decimal(1_000_000), rpm=10_000_000, tpm=10**9)
        return create_key(conn, "bench", "bench")[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    os.environ.pop("POOL_REDIS_URL", None)  # only the "Redis" sides get one
    namespace = f"llmpool-bench-{uuid.uuid4().hex[:8]}"
    s, c = args.seconds, args.connections
    r: dict[str, WrkResult] = {}
    with upstream() as up, scratch_database() as db_url, tempfile.TemporaryDirectory() as tmp:
        key = tenant_key(db_url)
        base = {"POOL_PROVIDER_URL": f"{up}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
                "POOL_DATABASE_URL": db_url}
        shared = {**base, "POOL_REDIS_URL": args.redis_url, "POOL_NAMESPACE": namespace}
        stock = stock_config(Path(tmp))
        chat = "/v1/chat/completions"
        print("| side | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|")
        r["up"] = wrk("upstream alone", up + chat, "x", s, c)
        with proxy(stock, base) as p:
            r["stock1"] = wrk("stock proxy, 1 worker", p.url + chat, MASTER_KEY, s, c)
        with proxy(OFFLINE, base) as p:
            r["gw1"] = wrk("gateway, 1 worker, no Redis", p.url + chat, key, s, c)
        with proxy(OFFLINE, shared) as p:
            r["gw1r"] = wrk("gateway, 1 worker, Redis", p.url + chat, key, s, c)
        ttfb: dict[str, float] = {}
        print("\n| streams (200 at once) | answered | TTFB p50 ms | TTFB p95 ms |\n"
              "|---|---|---|---|")
        ttfb["up"] = ttfb_p95("upstream alone", up + chat, "x")
        with proxy(stock, base, workers=2) as p:
            r["stock2"] = wrk("stock proxy, 2 workers", p.url + chat, MASTER_KEY, s, c)
            ttfb["stock2"] = ttfb_p95("stock proxy, 2 workers", p.url + chat, MASTER_KEY)
        with proxy(OFFLINE, shared, workers=2) as p:
            r["gw2r"] = wrk("gateway, 2 workers, Redis", p.url + chat, key, s, c)
            ttfb["gw2r"] = ttfb_p95("gateway, 2 workers, Redis", p.url + chat, key)
    client = redis.Redis.from_url(args.redis_url)
    leftovers = list(client.scan_iter(f"{namespace}:*"))
    if leftovers:
        client.delete(*leftovers)
    print("\n| ratio | value |\n|---|---|")
    for name, ours, base_ in (
            ("gateway / stock, 1 worker (no Redis)", r["gw1"].rps, r["stock1"].rps),
            ("gateway with Redis / without, 1 worker", r["gw1r"].rps, r["gw1"].rps),
            ("gateway with Redis / stock, 1 worker", r["gw1r"].rps, r["stock1"].rps),
            ("gateway with Redis / stock, 2 workers", r["gw2r"].rps, r["stock2"].rps),
            ("stock 2 workers / 1 worker", r["stock2"].rps, r["stock1"].rps),
            ("gateway (Redis) 2 workers / 1 worker", r["gw2r"].rps, r["gw1r"].rps),
            ("TTFB p95 gateway / stock, 2 workers", ttfb["gw2r"], ttfb["stock2"]),
            ("TTFB p95 gateway / upstream alone", ttfb["gw2r"], ttfb["up"])):
        print(f"| {name} | {ours / base_:.3f}x |")


if __name__ == "__main__":
    main()
