"""The dashboard's web app (Starlette, served by uvicorn): read-only, master key only.

Routes: ``GET /`` the page, ``GET /api/figures`` the same figures as JSON (both take
``?tenant=NAME&period=month|7d|30d|90d``), ``GET/POST /login``, ``POST /logout``,
``GET /healthz`` (no key, no figures).

A request is let in with ``Authorization: Bearer <LITELLM_MASTER_KEY>`` or with the
session cookie the login form sets: ``<expiry>.<HMAC-SHA256 of it keyed by the master
key>``, HttpOnly, SameSite=Strict, valid :data:`SESSION_SECONDS`; changing the master
key ends every session. Anything else gets 401 (the login form, or JSON on the API).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from llm_pool.dashboard.figures import Filters, figures
from llm_pool.dashboard.render import login_page, page

__all__ = ["COOKIE", "SESSION_SECONDS", "build_app", "serve", "session_token"]

COOKIE = "pool_dashboard"
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 4096
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def session_token(master_key: str, expires: int) -> str:
    mac = hmac.new(master_key.encode(), f"dashboard:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def _valid_session(master_key: str, token: str | None, now: float) -> bool:
    expires, _, _ = (token or "").partition(".")
    if not expires.isdigit() or int(expires) < now:
        return False
    return secrets.compare_digest(token or "", session_token(master_key, int(expires)))


def _authorized(request: Request, master_key: str) -> bool:
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return secrets.compare_digest(bearer.strip().encode(), master_key.encode())
    return _valid_session(master_key, request.cookies.get(COOKIE), time.time())


Connect = Callable[[], Any]


def build_app(master_key: str, connect: Connect) -> Starlette:
    """The app; ``connect()`` opens a PostgreSQL connection (one per request)."""
    if not master_key:
        raise ValueError("the dashboard needs LITELLM_MASTER_KEY")

    def load(request: Request) -> dict[str, Any]:
        from proxy.errors import InvalidInput

        filters = Filters.parse(request.query_params.get("period"),
                                request.query_params.get("tenant"))
        with connect() as conn:
            try:
                return figures(conn, filters)
            except InvalidInput:  # an unknown tenant: show everyone
                return figures(conn, Filters(filters.period, None))

    def home(request: Request) -> Response:
        if not _authorized(request, master_key):
            return HTMLResponse(login_page(), 401, headers=HEADERS)
        return HTMLResponse(page(load(request)), headers=HEADERS)

    def api(request: Request) -> Response:
        if not _authorized(request, master_key):
            return JSONResponse({"error": "send the master key as Authorization: Bearer"},
                                401, headers=HEADERS)
        return JSONResponse(load(request), headers=HEADERS)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(login_page(), headers=HEADERS)
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
        key = (parse_qs(body).get("key") or [""])[0]
        if not secrets.compare_digest(key.encode(), master_key.encode()):
            return HTMLResponse(login_page("wrong key"), 401, headers=HEADERS)
        response = RedirectResponse("/", 303, headers=HEADERS)
        token = session_token(master_key, int(time.time()) + SESSION_SECONDS)
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", 303, headers=HEADERS)
        response.delete_cookie(COOKIE)
        return response

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/", home), Route("/api/figures", api),
        Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz),
    ])


def serve(host: str, port: int, master_key: str, database_url: str) -> None:
    import uvicorn

    from proxy.storage.db import connect

    app = build_app(master_key, lambda: connect(database_url, autocommit=True))
    uvicorn.run(app, host=host, port=port, log_level="warning")
