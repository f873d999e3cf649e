"""Benchmark 2: proxy throughput with 1 vs 2 uvicorn workers, same upstream, same run.

    .venv/bin/python -m bench.proxy_workers [--seconds 15] [--concurrency 10]

Uses config/offline.yaml with the master key (the project's config minus tenant
keys), so the figure is the proxy's own capacity on this machine.
"""

from __future__ import annotations

import argparse

from bench.common import (
    MASTER_KEY,
    REPO,
    http_load,
    provider_process,
    proxy,
    ratio_line,
    scratch_database,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    results = []
    with provider_process() as upstream, scratch_database() as db_url:
        env = {"POOL_PROVIDER_URL": f"{upstream}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url}
        for workers in (1, 2):
            with proxy(REPO / "config" / "offline.yaml", env, workers=workers) as running:
                results.append(http_load(f"proxy, {workers} worker(s)", running.url, MASTER_KEY,
                                         concurrency=args.concurrency, seconds=args.seconds))
                print(results[-1].line(), flush=True)
    one, two = results
    print(ratio_line("throughput 2 workers / 1 worker", two.throughput, one.throughput,
                     " req/s"))


if __name__ == "__main__":
    main()
