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
    proxy.add_argument("--no-check", action="store_true", help="skip `pool check-config`")
    proxy.set_defaults(handler=run_proxy)

    check = subparsers.add_parser(
        "check-config", help="validate a proxy YAML (syntax, aliases, fallbacks, env, plug-ins)")
    check.add_argument("--config", type=Path, default=None,
                       help="proxy YAML (default: $POOL_CONFIG or config/config.yaml)")
    check.add_argument("--strict", action="store_true",
                       help="a missing os.environ/ variable is an error, not a warning")
    check.set_defaults(handler=run_check_config)

    provider = subparsers.add_parser(
        "provider", help="run the scripted OpenAI-compatible provider (offline demo, tests)")
    provider.add_argument("--host", default="127.0.0.1")
    provider.add_argument("--port", type=int, default=DEFAULT_PROVIDER_PORT)
    provider.set_defaults(handler=run_provider)

    demo = subparsers.add_parser(
        "demo", help="offline demo: scripted provider + proxy + a few calls, no keys needed")
    demo.set_defaults(handler=run_demo)


def _report(config: Path, strict: bool) -> int:
    """Print the config's problems; 1 if any is an error, else 0."""
    from llm_pool.configcheck import check_config

    problems = check_config(config, os.environ, strict=strict)
    for problem in problems:
        print(problem.render(str(config)))
    return 1 if any(p.severity == "error" for p in problems) else 0


def run_check_config(args: argparse.Namespace) -> int:
    config = (args.config or default_config_path()).resolve()
    code = _report(config, args.strict)
    if code == 0:
        print(f"{config}: ok")
    return code


def run_proxy(args: argparse.Namespace) -> int:
    config = (args.config or default_config_path()).resolve()
    if not config.is_file():
        print(f"pool proxy: config file not found: {config}")
        return 2
    if not args.no_check and _report(config, strict=False):
        print("pool proxy: fix the config above (or pass --no-check)")
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
