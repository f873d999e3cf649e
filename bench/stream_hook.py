"""What the gateway's stream hook costs, in-process: LiteLLM's proxy stream path
(``proxy_server.async_data_generator``: the callbacks' iterator hooks, LiteLLM's restamp of
``model``, the SSE serialisation) driven with a 100-chunk stream, no server, no network.

Variants (``litellm.callbacks``), interleaved, each timed over ``--streams`` streams:

- ``stock``: no callback with an iterator hook: LiteLLM restamps ``model`` itself (a
  ``model_copy`` per chunk whose model differs from the one asked for);
- ``gateway``: :class:`proxy.plugin.gateway.ProxyCallbacks` (its hook:
  :func:`proxy.plugin.answers.alias_stream`);
- ``wrap_only``: a hook that only switches LiteLLM's restamp off and passes chunks on
  unchanged (what putting a stream on LiteLLM's per-stream hook path costs);
- ``copy``: ``wrap_only`` plus a ``model_copy`` naming the alias per chunk (what the
  gateway's stamping costs at least);
- ``direct``: the gateway's stamping (:func:`proxy.plugin.answers.alias_stream`) returned
  by the hook itself, without :class:`~proxy.plugin.gateway.ProxyCallbacks`' own
  generator around it (one layer fewer).

Prints µs per chunk (median over the streams) for each. Run:
``LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.stream_hook``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

CHUNKS = 100
PROVIDER_MODEL = "ollama_chat/qwen3:8b"
ALIAS = "fast"


def _chunks() -> list[Any]:
    from litellm.types.utils import ModelResponseStream

    return [ModelResponseStream(model=PROVIDER_MODEL,
                                choices=[{"index": 0, "delta": {"content": f"tok{i} "}}])
            for i in range(CHUNKS)]


def _variants() -> dict[str, list[Any]]:
    from litellm.integrations.custom_logger import CustomLogger

    from proxy.plugin import answers, internals
    from proxy.plugin.gateway import ProxyCallbacks

    class WrapOnly(CustomLogger):
        async def async_post_call_streaming_iterator_hook(
                self, user_api_key_dict: Any, response: Any,
                request_data: dict[str, Any]) -> AsyncIterator[Any]:
            internals.keep_answer_model(request_data)
            async for chunk in response:
                yield chunk

    class Copying(CustomLogger):
        async def async_post_call_streaming_iterator_hook(
                self, user_api_key_dict: Any, response: Any,
                request_data: dict[str, Any]) -> AsyncIterator[Any]:
            internals.keep_answer_model(request_data)
            async for chunk in response:
                yield chunk.model_copy(update={"model": ALIAS})

    class Direct(CustomLogger):  # the gateway's hook without ProxyCallbacks' own layer
        def async_post_call_streaming_iterator_hook(  # type: ignore[override]
                self, user_api_key_dict: Any, response: Any,
                request_data: dict[str, Any]) -> AsyncIterator[Any]:
            return answers.alias_stream(response, request_data)

    return {"stock": [], "gateway": [ProxyCallbacks()], "wrap_only": [WrapOnly()],
            "copy": [Copying()], "direct": [Direct()]}


async def _one_stream(chunks: list[Any]) -> tuple[float, int]:
    from litellm.proxy import proxy_server
    from litellm.proxy._types import UserAPIKeyAuth

    async def provider() -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    started = time.perf_counter()
    lines = 0
    async for _ in proxy_server.async_data_generator(provider(), UserAPIKeyAuth(),
                                                     {"model": ALIAS, "metadata": {}}):
        lines += 1
    return time.perf_counter() - started, lines


async def measure(streams: int) -> dict[str, float]:
    import litellm

    variants = _variants()
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(streams):
        for name, callbacks in variants.items():
            litellm.callbacks = callbacks
            chunks = _chunks()  # fresh: a variant may stamp them in place
            seconds, lines = await _one_stream(chunks)
            assert lines == CHUNKS + 1, (name, lines)  # the chunks and [DONE]
            assert all(c.model == PROVIDER_MODEL for c in chunks), name  # priced as sent
            timings[name].append(seconds)
    return {name: statistics.median(t) / CHUNKS * 1e6 for name, t in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_hook")
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args()
    found = asyncio.run(measure(args.streams))
    for name, micros in found.items():
        print(f"{name:10s} {micros:6.1f} µs/chunk  ({micros - found['stock']:+.1f} vs stock)")


if __name__ == "__main__":
    main()
