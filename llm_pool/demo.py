"""``pool demo``: the whole gateway path offline, no provider keys needed.

Starts the scripted provider (standing in for the LLM vendor) and the stock
LiteLLM proxy on ``config/offline.yaml``, then makes a few calls through it
the way a service would, printing what happened.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import openai

from llm_pool.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, start_proxy
from llm_pool.settings import REPO_ROOT

__all__ = ["run"]


def _say(title: str, detail: str = "") -> None:
    print(f"\n== {title}" + (f"\n   {detail}" if detail else ""), flush=True)


def _calls(proxy: ProxyProcess, key: str, provider: ScriptedProvider) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "Say hello to the new teammate."}])
    reply = raw.parse()
    _say("alias `fast`", f"{reply.choices[0].message.content!r} "
         f"(deployment {raw.headers.get('x-litellm-model-id')}, "
         f"cost ${float(raw.headers.get('x-litellm-response-cost') or 0):.8f})")

    provider.add_rule("quality-*", {"status": 500, "error_message": "provider outage"})
    raw = client.chat.completions.with_raw_response.create(
        model="quality", messages=[{"role": "user", "content": "Summarise our Q3 plan."}])
    _say("alias `quality` while every quality deployment returns 500",
         f"answered by {raw.headers.get('x-litellm-model-id')} after "
         f"{raw.headers.get('x-litellm-attempted-fallbacks')} fallback(s): "
         f"{raw.parse().choices[0].message.content!r}")
    provider.reset()

    _say("streaming from `balanced`")
    stream = client.chat.completions.create(
        model="balanced", stream=True,
        messages=[{"role": "user", "content": "Stream a short answer, word by word."}])
    print("   ", end="")
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()


def run() -> int:
    master = f"sk-demo-{secrets.token_hex(8)}"
    with ScriptedProvider() as provider, tempfile.TemporaryDirectory() as tmp:
        _say("starting the scripted provider and the stock LiteLLM proxy (config/offline.yaml)",
             "the proxy takes ~20 s to start")
        proxy = start_proxy(REPO_ROOT / "config" / "offline.yaml", log_path=Path(tmp) / "proxy.log",
                            env={"POOL_PROVIDER_URL": f"{provider.url}/v1",
                                 "LITELLM_MASTER_KEY": master})
        try:
            _say("proxy ready", proxy.url)
            _calls(proxy, master, provider)
        finally:
            proxy.stop()
    _say("demo finished")
    return 0
