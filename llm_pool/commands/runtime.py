"""``pool proxy``, ``pool check-config``, ``pool provider``, ``pool dashboard`` and
``pool demo``. Only ``provider`` runs on the base install; the others need an extra
(:mod:`llm_pool.extras`) and import it inside their handlers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from llm_pool.runtime import metrics_env, proxy_args, proxy_env
from llm_pool.settings import default_config_path

if TYPE_CHECKING:
    from llm_pool.configcheck import Problem

__all__ = ["register"]

DEFAULT_PROXY_PORT = 4000
DEFAULT_PROVIDER_PORT = 4010
DEFAULT_DASHBOARD_PORT = 4100


def _listen(parser: argparse.ArgumentParser, host: str, port: int) -> None:
    """``--host`` and ``--port`` of a server command."""
    parser.add_argument("--host", default=host, help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port,
                        help="port to listen on (default: %(default)s)")


def register(subparsers: Any) -> None:
    proxy = subparsers.add_parser(
        "proxy", help="run the gateway: LiteLLM's proxy with our edge and plug-ins, on a YAML")
    proxy.add_argument("--config", type=Path, default=None,
                       help="proxy YAML (default: $POOL_CONFIG or config/config.yaml)")
    _listen(proxy, "0.0.0.0", DEFAULT_PROXY_PORT)
    proxy.add_argument("--workers", type=int, default=None,
                       help="uvicorn worker processes (default: the number of CPU cores)")
    proxy.add_argument("--allow-missing-env", action="store_true",
                       help="start even though os.environ/ variables of the config are unset "
                            "(requests to the aliases using them will fail)")
    proxy.add_argument("--no-check", action="store_true", help="skip `pool check-config`")
    proxy.set_defaults(handler=run_proxy, extra="proxy")

    check = subparsers.add_parser(
        "check-config", help="validate a proxy YAML (syntax, aliases, fallbacks, env, plug-ins)")
    check.add_argument("path", type=Path, nargs="?", default=None, metavar="CONFIG",
                       help="proxy YAML, as --config (default: $POOL_CONFIG or "
                            "config/config.yaml)")
    check.add_argument("--config", type=Path, default=None,
                       help="proxy YAML (default: $POOL_CONFIG or config/config.yaml)")
    check.add_argument("--allow-missing-env", action="store_true",
                       help="an unset os.environ/ variable is a warning, not an error "
                            "(never for general_settings.master_key)")
    check.set_defaults(handler=run_check_config, extra="proxy")

    provider = subparsers.add_parser(
        "provider", help="run the scripted OpenAI-compatible provider (offline demo, tests)")
    _listen(provider, "127.0.0.1", DEFAULT_PROVIDER_PORT)
    provider.set_defaults(handler=run_provider)

    dashboard = subparsers.add_parser(
        "dashboard", help="read-only operator's console in the browser (master key required)")
    _listen(dashboard, "127.0.0.1", DEFAULT_DASHBOARD_PORT)
    dashboard.add_argument("--config", type=Path, default=None,
                           help="the proxy YAML whose deployments the health page lists "
                                "(default: $POOL_CONFIG or config/config.yaml)")
    dashboard.set_defaults(handler=run_dashboard, extra="all")

    demo = subparsers.add_parser(
        "demo", help="offline demo: scripted provider + proxy + a few calls, no keys needed")
    demo.set_defaults(handler=run_demo, extra="all")


def _report(config: Path, allow_missing_env: bool, out: TextIO = sys.stdout) -> list[Problem]:
    """Print the config's problems and return them."""
    from llm_pool.configcheck import check_config

    problems = check_config(config, os.environ, allow_missing_env=allow_missing_env)
    problems += _settings_problems()
    for problem in problems:
        print(problem.render(str(config)), file=out)
    return problems


def _settings_problems() -> list[Problem]:
    """The proxy's own settings (``POOL_*``), read as the proxy will read them."""
    from llm_pool.configcheck import Problem
    from proxy.errors import ConfigError
    from proxy.settings import ProxySettings

    try:
        ProxySettings.from_env()
    except ConfigError as exc:
        return [Problem(0, f"environment: {exc}")]
    return []


def _errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def run_check_config(args: argparse.Namespace) -> int:
    if args.path and args.config and args.path.resolve() != args.config.resolve():
        print(f"pool check-config: two configs given ({args.path} and --config "
              f"{args.config}): give one", file=sys.stderr)
        return 2
    config = (args.path or args.config or default_config_path()).resolve()
    if _errors(_report(config, args.allow_missing_env)):
        return 1
    from llm_pool.configcheck import output_limits

    for alias, limit in output_limits(config).items():
        print(f"alias {alias!r}: output limit "
              + (f"{limit:,} tokens" if limit else "unknown (POOL_DEFAULT_MAX_TOKENS applies)"))
    print(f"{config}: ok")
    return 0


LOUD = "!" * 78


def _warn_missing_env() -> None:
    print(f"{LOUD}\npool proxy: --allow-missing-env: starting although environment variables "
          "above are unset;\nevery request to the aliases using them will fail.\n" + LOUD,
          file=sys.stderr, flush=True)


def run_proxy(args: argparse.Namespace) -> int:
    config = (args.config or default_config_path()).resolve()
    if not config.is_file():
        print(f"pool proxy: config file not found: {config}", file=sys.stderr)
        return 2
    if not args.no_check:
        problems = _report(config, args.allow_missing_env, sys.stderr)
        if _errors(problems):
            print("pool proxy: refusing to start: fix the config above (or pass "
                  "--allow-missing-env to start with unset variables)", file=sys.stderr)
            return 2
        from llm_pool.configcheck import MISSING_ENV

        if any(p.code == MISSING_ENV for p in problems):
            _warn_missing_env()
    workers = args.workers or default_workers()
    env = proxy_env()
    if workers > 1 and not env.get("POOL_REDIS_URL"):
        print(f"pool proxy: {workers} workers without POOL_REDIS_URL: tenant limits and "
              "budgets hold per worker process only", file=sys.stderr)
    env.update(metrics_env(env, args.port))
    argv = proxy_args(config, args.host, args.port, workers)
    os.execve(argv[0], argv, env)


def default_workers() -> int:
    """The CPU cores this process may use (LiteLLM's ``--num_workers``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_provider(args: argparse.Namespace) -> int:
    from llm_pool.offline.provider import serve

    print(f"scripted provider on http://{args.host}:{args.port}/v1 (Ctrl-C to stop)", flush=True)
    serve(args.host, args.port)
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    from llm_pool.dashboard import serve
    from llm_pool.settings import Settings
    from proxy.errors import StoreUnavailable
    from proxy.storage.db import connect

    settings = Settings.from_env()
    if not settings.master_key:
        print("pool dashboard: set LITELLM_MASTER_KEY (the dashboard asks for it)",
              file=sys.stderr)
        return 2
    try:
        connect(settings.database_url).close()
    except StoreUnavailable as exc:
        print(f"pool dashboard: {exc}", file=sys.stderr)
        return 1
    from proxy.errors import ConfigError
    from proxy.settings import ProxySettings

    try:
        proxy = ProxySettings.from_env()
    except ConfigError as exc:
        print(f"pool dashboard: {exc}", file=sys.stderr)
        return 2
    print(f"dashboard on http://{args.host}:{args.port}/ (JSON: /api/figures; "
          "Ctrl-C to stop)", flush=True)
    serve(args.host, args.port, settings.master_key, settings.database_url,
          redis_url=proxy.redis_url, namespace=proxy.namespace,
          router_namespace=os.environ.get("POOL_NAMESPACE") or None,
          config=(args.config or default_config_path()).resolve())
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from llm_pool.offline.demo import run

    return run()
