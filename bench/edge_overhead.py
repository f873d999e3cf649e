"""The edge guard's cost per request (proxy/edge/guard.py), in process, against the bare ASGI app.

    .venv/bin/python -m bench.edge_overhead [--requests 100000] [--rounds 5]

A tenant's chat request through :class:`proxy.edge.guard.EdgeGuard` (key header parsed, route
checked, 25 response headers filtered, the body checked for an error event) against the
same do-nothing ASGI app called directly, alternating rounds. The guard's absolute cost
matters against a proxied request's ~10-20 ms (LiteLLM's own work), so both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from proxy.edge.guard import EdgeGuard, Redactor

HEADERS = [(b"content-type", b"application/json"), (b"x-litellm-call-id", b"abc"),
           (b"x-litellm-model-id", b"fast-1"), (b"llm_provider-server", b"x"),
           (b"x-litellm-model-api-base", b"http://127.0.0.1:4010/v1"),
           *[(f"x-litellm-h{i}".encode(), b"1") for i in range(20)]]
SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
         "headers": [(b"authorization", b"Bearer sk-pool-" + b"a" * 46),
                     (b"content-type", b"application/json")]}


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b'{"choices": []}'})


async def _send(message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request"}


async def _per_request(target: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await target(SCOPE, _receive, _send)
    return (time.perf_counter() - started) / n * 1e6


async def run(requests: int, rounds: int) -> None:
    guard = EdgeGuard(app, lambda: "sk-master", Redactor(lambda: ["http://127.0.0.1:4010/v1"]))
    bare, guarded = [], []
    for _ in range(rounds):
        bare.append(await _per_request(app, requests))
        guarded.append(await _per_request(guard, requests))
    b, g = statistics.median(bare), statistics.median(guarded)
    print(f"bare app {b:.1f} us/request, through the edge guard {g:.1f} us/request: "
          f"the guard adds {g - b:.1f} us per request (median of {rounds} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rounds))


if __name__ == "__main__":
    main()
