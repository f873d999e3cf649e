"""The dashboard's web app (Starlette, served by uvicorn): read-only, master key only.

Routes: ``GET /`` (overview), ``/requests``, ``/requests/{request_id}``, ``/latency``,
``/health``, ``/live``; ``GET /export/{table}.csv`` (any table, same filters);
``GET /api/figures`` (the overview as JSON, the figures of ``pool spend --json``);
``GET/POST /login``, ``POST /logout``, ``GET /healthz`` (no key, no figures). Every page
takes the filters of :mod:`llm_pool.dashboard.filters`; a filter it cannot honour is a
400 naming it.

A request is let in with ``Authorization: Bearer <LITELLM_MASTER_KEY>`` or with the
session cookie the login form sets (a random token of a server-side session, HttpOnly,
SameSite=Strict; :mod:`llm_pool.dashboard.auth`). Anything else gets 401 (the login form,
or JSON on the API). Failed logins are throttled (429 with ``Retry-After``).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from llm_pool.dashboard.auth import SESSION_SECONDS, Sessions, Throttle
from llm_pool.dashboard.figures import PAGES, Context, page_tables, request_row, spend_json
from llm_pool.dashboard.figures import requests as request_pages
from llm_pool.dashboard.figures import table_page as owner_of
from llm_pool.dashboard.filters import BadFilter, Filters
from llm_pool.dashboard.live import Live
from llm_pool.dashboard.render import detail_page, error_page, login_page, page
from llm_pool.dashboard.tables import sort_rows, to_csv

__all__ = ["COOKIE", "HEADERS", "SESSION_SECONDS", "build_app", "config_deployments", "serve"]

COOKIE = "pool_dashboard"
MAX_FORM_BYTES = 4096
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Connect = Callable[[], Any]


def _json(value: object, status: int = 200) -> Response:
    def default(item: object) -> object:
        if isinstance(item, Decimal):
            return float(item)
        if isinstance(item, datetime):
            return item.isoformat()
        raise TypeError(type(item).__name__)

    return Response(json.dumps(value, default=default), status, headers=HEADERS,
                    media_type="application/json")


def build_app(master_key: str, connect: Connect, *, live: Live | None = None,
              deployments: dict[str, str] | None = None,
              sessions: Sessions | None = None, throttle: Throttle | None = None) -> Starlette:
    """The app; ``connect()`` opens a PostgreSQL connection (one per request), ``live``
    reaches Redis, ``deployments`` maps the config's deployment ids to their alias."""
    if not master_key:
        raise ValueError("the dashboard needs LITELLM_MASTER_KEY")
    live = live or Live(None, "", None)
    sessions = sessions or Sessions()
    throttle = throttle or Throttle()
    config = dict(deployments or {})

    def authorized(request: Request) -> bool:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and bearer.strip():
            return secrets.compare_digest(bearer.strip().encode(), master_key.encode())
        return sessions.valid(request.cookies.get(COOKIE))

    def bad(exc: BadFilter, api: bool) -> Response:
        if api:
            return _json({"error": str(exc), "param": exc.name}, 400)
        return HTMLResponse(error_page(400, str(exc)), 400, headers=HEADERS)

    def refused(api: bool) -> Response:
        if api:
            return _json({"error": "send the master key as Authorization: Bearer"}, 401)
        return HTMLResponse(login_page(), 401, headers=HEADERS)

    Answer = Callable[[Request, Context, Filters], Response]

    def guarded(answer: Answer, *, api: bool = False) -> Callable[[Request], Response]:
        """A handler: the master key (or a session) first, then the filters (a 400 naming
        the one it cannot honour), then ``answer`` with a database connection open."""
        def handler(request: Request) -> Response:
            if not authorized(request):
                return refused(api)
            with connect() as conn:
                ctx = Context(conn, live, config, datetime.now(UTC))
                try:
                    filters = Filters.parse(dict(request.query_params), ctx.known())
                except BadFilter as exc:
                    return bad(exc, api)
                return answer(request, ctx, filters)

        return handler

    def page_answer(name: str) -> Answer:
        def answer(request: Request, ctx: Context, filters: Filters) -> Response:
            data = page_tables(ctx, name, filters)
            for table in data["tables"]:
                if (order := filters.sort_for(table.id)) is not None:
                    sort_rows(table, *order)
            text = page(name, PAGES, data, filters, ctx.known(),
                        ctx.now.isoformat(timespec="seconds"))
            return HTMLResponse(text, headers=HEADERS)

        return answer

    def detail(request: Request, ctx: Context, filters: Filters) -> Response:
        row = request_row(ctx, request.path_params["request_id"])
        if row is None:
            return HTMLResponse(error_page(404, "no request with this id"), 404,
                                headers=HEADERS)
        return HTMLResponse(detail_page(PAGES, row, filters), headers=HEADERS)

    def export(request: Request, ctx: Context, filters: Filters) -> Response:
        table_id = request.path_params["table"]
        name = owner_of(table_id)
        if name is None:
            return HTMLResponse(error_page(404, f"no table {table_id!r}"), 404, headers=HEADERS)
        data = (request_pages(ctx, filters, export=True) if name == "requests"
                else page_tables(ctx, name, filters))
        table = next(t for t in data["tables"] if t.id == table_id)
        if (order := filters.sort_for(table_id)) is not None:
            sort_rows(table, *order)
        stamp = ctx.now.strftime("%Y%m%dT%H%M%SZ")
        return Response(to_csv(table), headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{table_id}-{stamp}.csv"'},
            media_type="text/csv; charset=utf-8")

    def api(request: Request, ctx: Context, filters: Filters) -> Response:
        data = page_tables(ctx, "overview", filters)
        since, until = filters.window(ctx.now)
        return _json({"since": since.date().isoformat(), "until": until.isoformat(),
                      "period": filters.period, "tenant": filters.tenant,
                      "generated_at": ctx.now.isoformat(timespec="seconds"),
                      **spend_json(data), "tenant_names": list(ctx.known().tenants)})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(login_page(), headers=HEADERS)
        client = request.client.host if request.client else "?"
        wait = throttle.retry_after(client)
        if wait > 0:
            return HTMLResponse(login_page("too many failed logins: try again later"), 429,
                                headers={**HEADERS, "Retry-After": str(math.ceil(wait))})
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
        key = (parse_qs(body).get("key") or [""])[0]
        if not secrets.compare_digest(key.encode(), master_key.encode()):
            throttle.failed(client)
            return HTMLResponse(login_page("wrong key"), 401, headers=HEADERS)
        response = RedirectResponse("/", 303, headers=HEADERS)
        response.set_cookie(COOKIE, sessions.create(), max_age=SESSION_SECONDS, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", 303, headers=HEADERS)
        response.delete_cookie(COOKIE)
        return response

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    routes = [Route("/" if name == "overview" else f"/{name}", guarded(page_answer(name)))
              for name in PAGES]
    return Starlette(routes=[
        *routes, Route("/requests/{request_id:path}", guarded(detail)),
        Route("/export/{table}.csv", guarded(export)),
        Route("/api/figures", guarded(api, api=True)),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]), Route("/healthz", healthz),
    ])


def config_deployments(path: Path) -> dict[str, str]:
    """``{deployment id: alias}`` of a proxy YAML (empty if it cannot be read)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    found = {}
    for entry in (data or {}).get("model_list") or []:
        if not isinstance(entry, dict):
            continue
        info = entry.get("model_info") or {}
        if isinstance(info, dict) and info.get("id") and entry.get("model_name"):
            found[str(info["id"])] = str(entry["model_name"])
    return found


def serve(host: str, port: int, master_key: str, database_url: str, *,
          redis_url: str | None = None, namespace: str = "llm-pool",
          router_namespace: str | None = None, config: Path | None = None) -> None:
    import redis
    import uvicorn

    from proxy.storage.db import connect
    from proxy.storage.shared import gateway_prefix

    client = (redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
              if redis_url else None)
    live = Live(client, gateway_prefix(namespace, database_url), router_namespace)
    app = build_app(master_key, lambda: connect(database_url, autocommit=True), live=live,
                    deployments=config_deployments(config) if config else {})
    uvicorn.run(app, host=host, port=port, log_level="warning")
