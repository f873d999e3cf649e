"""``pool proxy``, ``pool provider`` and ``pool demo``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from llm_pool.runtime import proxy_args, proxy_env
from llm_pool.settings import default_config_path

__all__ = ["register"]

DEFAULT_PROXY_PORT = 4000
DEFAULT_PROVIDER_PORT = 4010


def register(subparsers: Any) -> None:
    proxy = subparsers.add_parser("proxy", help="run the stock LiteLLM proxy on our YAML config")
    proxy.add_argument("--config", type=Path, default=None,
                       help="proxy YAML (default: $POOL_CONFIG or config/config.yaml)")
    proxy.add_argument("--host", default="0.0.0.0")
    proxy.add_argument("--port", type=int, default=DEFAULT_PROXY_PORT)
    proxy.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    proxy.set_defaults(handler=run_proxy)

    provider = subparsers.add_parser(
        "provider", help="run the scripted OpenAI-compatible provider (offline demo, tests)")
    provider.add_argument("--host", default="127.0.0.1")
    provider.add_argument("--port", type=int, default=DEFAULT_PROVIDER_PORT)
    provider.set_defaults(handler=run_provider)

    demo = subparsers.add_parser(
        "demo", help="offline demo: scripted provider + proxy + a few calls, no keys needed")
    demo.set_defaults(handler=run_demo)


def run_proxy(args: argparse.Namespace) -> int:
    config = (args.config or default_config_path()).resolve()
    if not config.is_file():
        print(f"pool proxy: config file not found: {config}")
        return 2
    argv = proxy_args(config, args.host, args.port, args.workers)
    os.execve(argv[0], argv, proxy_env())


def run_provider(args: argparse.Namespace) -> int:
    from llm_pool.provider import serve

    print(f"scripted provider on http://{args.host}:{args.port}/v1 (Ctrl-C to stop)", flush=True)
    serve(args.host, args.port)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from llm_pool.demo import run

    return run()
