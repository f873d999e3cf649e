"""Benchmark 1: the gateway's overhead: the stock proxy (master key only, no callbacks,
no custom_auth) vs our configured proxy (tenant key through custom_auth, budget check,
spend rows), same model_list, same scripted upstream, same run.

    .venv/bin/python -m bench.gateway_overhead [--seconds 10] [--rounds 3] [--concurrency 1]

Both proxies run side by side; the measurement alternates between them in rounds
(stock, ours, stock, ours, ...) so that drift of the machine hits both alike, and
reports each side over all its rounds, then the ratios. Ours writes its spend rows
to a scratch PostgreSQL database (created, migrated and dropped here); the row
count is checked at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import yaml

from bench.common import (
    MASTER_KEY,
    REPO,
    LoadResult,
    http_load,
    provider_process,
    proxy,
    scratch_database,
)
from proxy.storage.tenants import create_key, create_tenant

OFFLINE = REPO / "config" / "offline.yaml"
UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:1/none"
def stock_config(directory: Path) -> Path:
    """config/offline.yaml minus everything of ours: same aliases, master key only."""
    config = yaml.safe_load(OFFLINE.read_text())
    config["litellm_settings"].pop("callbacks", None)
    config["general_settings"] = {"master_key": config["general_settings"]["master_key"]}
    path = directory / "stock.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tenant_key(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        create_tenant(conn, "bench", budget=Decimal(1_000_000), rpm=10_000_000, tpm=10**9)
        return create_key(conn, "bench", "bench")[0]


def hot_path_micro(n: int = 20_000) -> dict[str, float]:
    """Microseconds per call of our request-path code, in-process (no network, no noise
    from the rest of the proxy): custom_auth on a cached key, the budget check, and
    turning a logging payload into a queued spend row."""
    import asyncio
    import atexit

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm loads
    logging.getLogger("llm_pool.budget").setLevel(logging.ERROR)  # no database here, by design
    from starlette.requests import Request

    from proxy.admission.budget import BudgetTracker
    from proxy.context import TenantContext, to_metadata
    from proxy.edge.caps import Limits
    from proxy.plugin.auth import KeyResolver, authenticate
    from proxy.spend.rows import SpendWriter, row_from_payload
    from proxy.storage.tenants import KeyIdentity

    key = "sk-pool-" + "x" * 43
    ident = KeyIdentity(key_id=1, label="bench", tenant_id=1, tenant="bench",
                        monthly_budget_usd=1e6, rpm_limit=None, tpm_limit=None, revoked=False)

    async def lookup(_: str) -> KeyIdentity:
        return ident

    async def no_pool() -> object:
        raise OSError("not used")

    payload = {"litellm_call_id": "c", "call_type": "acompletion", "status": "success",
               "model": "openai/fast-1", "model_id": "fast-1", "model_group": "fast",
               "api_base": "http://x", "prompt_tokens": 1, "completion_tokens": 2,
               "response_cost": 1e-6, "startTime": 1.0, "endTime": 1.01, "request_tags": [],
               "metadata": {"user_api_key_alias": "bench", "user_api_key_auth_metadata":
                            to_metadata(TenantContext(1, "bench", None, None, None,
                                                      Limits(4, 16, 1000)))}}
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "ping"}],
                       "max_tokens": 16}).encode()

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions",
                       "headers": [(b"content-type", b"application/json"),
                                   (b"content-length", str(len(body)).encode())],
                       "query_string": b"", "root_path": ""}, receive)

    async def run() -> dict[str, float]:
        keys = KeyResolver(lookup, ttl=3600, max_stale=3600)
        budget = BudgetTracker(no_pool, 3600, first_read_timeout=0.01)  # type: ignore[arg-type]
        writer = SpendWriter(database_url=UNREACHABLE_DB, pool=no_pool,  # type: ignore[arg-type]
                             batch_size=10**9, flush_interval=3600, buffer_max=10**9,
                             retry_max=1)
        await authenticate(keys, None, request, key)
        await budget.spent(1)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        for _ in range(n):
            await authenticate(keys, None, request, key)
        timings["custom_auth (cached key)"] = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(n):
            await budget.check("bench", 1, 1e6)
        timings["budget check"] = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(n):
            row = row_from_payload(payload)
            assert row is not None
            budget.queued(row)
            writer.add(row)
        timings["spend row built and queued"] = time.perf_counter() - started
        atexit.unregister(writer.flush_sync)
        writer._rows.clear()  # measured rows, not spend
        return {name: seconds / n * 1e6 for name, seconds in timings.items()}

    return asyncio.run(run())


def merged(label: str, parts: list[LoadResult]) -> LoadResult:
    return LoadResult(label, sum(p.requests for p in parts), sum(p.errors for p in parts),
                      sum(p.seconds for p in parts), [x for p in parts for x in p.latencies_ms])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    runs: dict[str, list[LoadResult]] = {"stock": [], "ours": []}
    with (provider_process() as upstream, scratch_database("llm_pool_gwbench") as db_url,
          tempfile.TemporaryDirectory() as tmp):
        env = {"POOL_PROVIDER_URL": f"{upstream}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url}
        key = tenant_key(db_url)
        with proxy(stock_config(Path(tmp)), env) as stock, proxy(OFFLINE, env) as ours:
            sides = {"stock": (stock.url, MASTER_KEY), "ours": (ours.url, key)}
            for round_no in range(1, args.rounds + 1):
                for side, (url, api_key) in sides.items():
                    result = http_load(f"round {round_no} {side}", url, api_key,
                                       concurrency=args.concurrency, seconds=args.seconds)
                    runs[side].append(result)
                    print(result.line(), flush=True)
            time.sleep(2)  # let the writer flush (default interval 1 s)
            with psycopg.connect(db_url) as conn:
                rows = conn.execute("SELECT count(*) FROM spend WHERE tenant_id IS NOT NULL"
                                    ).fetchone()
    base = merged(f"stock proxy (c={args.concurrency})", runs["stock"])
    mine = merged(f"gateway proxy (c={args.concurrency})", runs["ours"])
    print()
    print(base.line())
    print(mine.line())
    print(f"{'throughput ratio (ours / stock)':<34} {mine.throughput / base.throughput:8.3f}x")
    print(f"{'p50 difference (ours - stock)':<34} {mine.pct(50) - base.pct(50):+8.2f} ms")
    print(f"{'p99 difference (ours - stock)':<34} {mine.pct(99) - base.pct(99):+8.2f} ms")
    print(f"spend rows written by ours: {rows[0] if rows else 0} "
          f"(>= {mine.requests} measured requests, warm-up included)")
    print()
    for name, micros in hot_path_micro().items():
        print(f"{'our code: ' + name:<44} {micros:7.1f} us/request")


if __name__ == "__main__":
    main()
