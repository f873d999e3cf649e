"""Benchmark 3: SDK overhead vs the raw openai client, same proxy, same run.

    .venv/bin/python -m bench.sdk_overhead [--requests 300]

One connection, sequential calls, the two clients interleaved in rounds of 20 so
that drift of the machine hits both alike. Reports per-call p50/p99 and the
SDK's extra time per call (p50 difference).
"""

from __future__ import annotations

import argparse
import time

import openai

from bench.common import (
    MASTER_KEY,
    REPO,
    LoadResult,
    provider_process,
    proxy,
    ratio_line,
    scratch_database,
)
from sdk import Gateway

ROUND = 20
MESSAGES = [{"role": "user", "content": "ping"}]


def _timed(call: object, n: int, into: list[float]) -> None:
    for _ in range(n):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        into.append((time.perf_counter() - started) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with provider_process() as upstream, scratch_database() as db_url:
        env = {"POOL_PROVIDER_URL": f"{upstream}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url}
        with proxy(REPO / "config" / "offline.yaml", env) as running:
            raw = openai.OpenAI(base_url=f"{running.url}/v1", api_key=MASTER_KEY,
                                max_retries=0)
            gateway = Gateway(base_url=running.url, api_key=MASTER_KEY)

            def raw_call() -> object:
                return raw.chat.completions.create(model="fast", messages=MESSAGES)  # type: ignore[arg-type]

            def sdk_call() -> object:
                return gateway.complete("fast", MESSAGES)

            base_ms: list[float] = []
            sdk_ms: list[float] = []
            _timed(raw_call, ROUND, [])  # warm-up, both
            _timed(sdk_call, ROUND, [])
            for _ in range(max(1, args.requests // ROUND)):
                _timed(raw_call, ROUND, base_ms)
                _timed(sdk_call, ROUND, sdk_ms)
    base = LoadResult("raw openai client", len(base_ms), 0, sum(base_ms) / 1000, base_ms)
    ours = LoadResult("sdk Gateway.complete", len(sdk_ms), 0, sum(sdk_ms) / 1000, sdk_ms)
    print(base.line())
    print(ours.line())
    print(ratio_line("throughput sdk / raw", ours.throughput, base.throughput, " req/s"))
    print(f"{'sdk extra time per call (p50)':<34} {ours.pct(50) - base.pct(50):8.3f} ms")


if __name__ == "__main__":
    main()
