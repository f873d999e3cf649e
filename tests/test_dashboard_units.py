"""The dashboard's gate and period arithmetic, without a browser."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from llm_pool.dashboard.app import COOKIE, build_app, session_token
from llm_pool.dashboard.figures import Filters


def _never() -> Any:
    raise AssertionError("an unauthorized request must not reach PostgreSQL")


def test_only_the_master_key_or_a_valid_session_gets_in() -> None:
    http = TestClient(build_app("sk-master", _never), follow_redirects=False)
    assert http.get("/").status_code == 401
    assert http.get("/api/figures").status_code == 401
    assert http.get("/api/figures", headers={"Authorization": "Bearer sk-other"}).status_code \
        == 401
    valid = session_token("sk-master", int(time.time()) + 60)
    tampered = valid[:-1] + ("1" if valid.endswith("0") else "0")  # always a changed signature
    for token in (session_token("sk-other", int(time.time()) + 60),  # signed by another key
                  session_token("sk-master", int(time.time()) - 1),  # expired
                  tampered, "garbage"):
        http.cookies.set(COOKIE, token)
        assert http.get("/api/figures").status_code == 401, token
    http.cookies.clear()
    assert http.post("/login", data={"key": "sk-wrong"}).status_code == 401
    login = http.post("/login", data={"key": "sk-master"})
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "script-src" not in login.headers["content-security-policy"]  # default-src 'none'


def test_periods_start_at_utc_midnight() -> None:
    now = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
    assert Filters.parse(None, None).since(now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert Filters.parse("7d", "").since(now) == datetime(2026, 11, 16, tzinfo=UTC)
    assert Filters.parse("30d", "acme") == Filters("30d", "acme")
    assert Filters.parse("forever", None).period == "month"
