"""How the gateway starts, top to bottom: the only place that changes LiteLLM.

``pool proxy`` (and :func:`llm_pool.runtime.start_proxy`, for every harness and bench)
runs ``python -m proxy.plugin.startup --config YAML --host H --port P --workers N``:

1. :func:`main` (the launcher process) points LiteLLM at the YAML (``CONFIG_FILE_PATH``,
   ``NUM_WORKERS``) and runs uvicorn with :func:`create_app` as its app factory, so
   every worker process runs steps 2-5 itself before it serves.
2. :func:`quiet_startup_lines`: a log filter for LiteLLM's start-up lines that are false
   for this gateway (:data:`MISLEADING`), those exact messages only (#21).
3. :func:`proxy.plugin.internals.install_patches`: the LiteLLM functions the gateway
   changes (cooldown and fallback decisions, the 422 fix, the flag of a stream without
   usage), each said why there.
   :func:`proxy.plugin.deployments.load`: the YAML's deployments (aliases, prices,
   upstream URLs), read by the gateway itself rather than from LiteLLM's router.
   :func:`proxy.plugin.internals.prometheus_settings_first`: the YAML's ``prometheus_*``
   settings, set before LiteLLM makes the gateway's Prometheus logger (it reads them then).
4. :func:`proxy.plugin.auth.wire`: what ``custom_auth`` needs (the process state and
   the count-tokens admission), handed over here rather than imported by auth.
5. LiteLLM's FastAPI app wrapped in the gateway's ASGI layers, outermost first:
   Anthropic error shapes (:mod:`proxy.edge.anthropic_errors`), the edge guard
   (:mod:`proxy.edge.guard`), the readiness route (:mod:`proxy.plugin.health`) and the
   JSON-object body check (:mod:`proxy.edge.objects`). LiteLLM's own middleware stays
   as LiteLLM built it.
6. uvicorn runs the app's lifespan: LiteLLM loads the YAML (its router, ``custom_auth``,
   the callbacks); once it reports the start-up complete,
   :func:`proxy.plugin.internals.mount_metrics` mounts LiteLLM's ``/metrics`` app if the
   YAML's callbacks loaded the gateway's Prometheus logger (LiteLLM itself mounts it only
   for the ``"prometheus"`` string, :mod:`proxy.plugin.metrics`), and
   :func:`proxy.plugin.gateway.start_serving` says which state is shared, chains the
   spend flush in front of uvicorn's signal handlers and starts the journal drainer.

Importing this module (or any other of ``proxy``) changes nothing: the steps run when
uvicorn calls :func:`create_app`. A bare ``litellm --config config/config.yaml`` skips
them all, and ``custom_auth`` then refuses every request (503, naming ``pool proxy``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MISLEADING", "StartupNoise", "create_app", "main", "quiet_startup_lines"]

APP_FACTORY = "proxy.plugin.startup:create_app"
LITELLM_LOGGERS = ("LiteLLM Proxy", "LiteLLM", "LiteLLM Router")

# LiteLLM's start-up warnings that are false for this gateway, by the exact text they
# begin with: budgets, rate limits and key checks are the gateway's own (custom_auth and
# the callbacks), and the admin UI's login counter is unused (no UI login: master key).
MISLEADING = re.compile(
    r"custom_auth is configured but 'custom_auth_run_common_checks' is not set\. "
    r"|Running \d+ workers but Redis is not configured\. Failed Admin UI sign-in attempts ")


class StartupNoise(logging.Filter):
    """Drops a record whose message begins with one of :data:`MISLEADING` (the message
    as formatted: LiteLLM's own filter may have merged the arguments in already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        return MISLEADING.match(message) is None


def quiet_startup_lines() -> None:
    """Add :class:`StartupNoise` to LiteLLM's loggers, once."""
    for name in LITELLM_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, StartupNoise) for f in logger.filters):
            logger.addFilter(StartupNoise())


ASGIApp = Callable[..., Any]


class OnStarted:
    """Runs ``started()`` once the wrapped app's lifespan start-up is complete (LiteLLM
    has loaded the YAML then), inside the server's event loop; passes all else on."""

    def __init__(self, app: ASGIApp, started: Callable[[], None]) -> None:
        self.app = app
        self._started = started

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_after_start(message: Any) -> None:
            if message.get("type") == "lifespan.startup.complete":
                self._started()
            await send(message)

        await self.app(scope, receive, send_after_start)


def create_app() -> ASGIApp:
    """uvicorn's app factory, run once in every worker process (steps 2-6 above)."""
    from proxy.edge import anthropic_errors, objects
    from proxy.edge import guard as edge
    from proxy.plugin import auth, deployments, gateway, health, internals

    quiet_startup_lines()
    internals.install_patches()
    config = Path(os.environ["CONFIG_FILE_PATH"])
    deployments.load(config)
    internals.prometheus_settings_first(config)  # before LiteLLM makes the Prometheus logger
    auth.wire(gateway.proxy_state, gateway.callbacks.admit_count_tokens)

    def settings() -> Any:
        return gateway.proxy_state().settings

    app: ASGIApp = objects.install(internals.proxy_app())
    app = health.install(app, gateway.proxy_state)
    app = edge.install(app, lambda: settings().master_key,
                       edge.Redactor(internals.router_api_bases),
                       lambda: settings().metrics_key, lambda: settings().max_request_bytes)
    app = anthropic_errors.install(app)  # outermost: the edge's answers reshaped too

    def started() -> None:  # step 6
        internals.mount_metrics()
        gateway.start_serving()

    return OnStarted(app, started)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m proxy.plugin.startup",
                                     description="the gateway: LiteLLM's proxy with its plug-ins")
    parser.add_argument("--config", required=True, help="the proxy YAML")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=1)
    return parser


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def uvicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    """What LiteLLM's CLI gives uvicorn too: no ``server`` header, its graceful shutdown
    (``GRACEFUL_SHUTDOWN_TIMEOUT``, 30 s), its worker health-check timeout
    (``TIMEOUT_WORKER_HEALTHCHECK``), its log level (``LITELLM_LOG``)."""
    options: dict[str, Any] = {"host": host, "port": port, "workers": workers,
                               "factory": True, "server_header": False,
                               "timeout_graceful_shutdown": _seconds(
                                   "GRACEFUL_SHUTDOWN_TIMEOUT", 30.0)}
    healthcheck = os.environ.get("TIMEOUT_WORKER_HEALTHCHECK")
    if healthcheck and healthcheck.isdigit():
        options["timeout_worker_healthcheck"] = int(healthcheck)
    level = os.environ.get("LITELLM_LOG", "").lower()
    if level in ("debug", "info", "warning", "error", "critical"):
        options["log_level"] = level
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """The launcher (step 1): LiteLLM reads the YAML named by ``CONFIG_FILE_PATH`` in its
    start-up, and ``NUM_WORKERS`` as its CLI would set it."""
    import uvicorn

    args = _parser().parse_args(argv)
    config = os.path.abspath(args.config)
    if not os.path.isfile(config):
        print(f"proxy: config file not found: {config}", file=sys.stderr)
        return 2
    os.environ["CONFIG_FILE_PATH"] = config
    os.environ["NUM_WORKERS"] = str(args.workers)
    print(f"llm-pool gateway: {config} on {args.host}:{args.port} with {args.workers} "
          "worker(s)", flush=True)
    uvicorn.run(APP_FACTORY, **uvicorn_options(args.host, args.port, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
