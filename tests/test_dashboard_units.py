"""The dashboard's gate (server-side sessions, the login throttle), its filters, money
and tables, without a browser or a database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from llm_pool.dashboard import auth
from llm_pool.dashboard.app import COOKIE, build_app
from llm_pool.dashboard.auth import WINDOW, Sessions, Throttle
from llm_pool.dashboard.filters import BadFilter, Filters, Known
from llm_pool.dashboard.tables import Column, Table, money, sort_rows, to_csv

KNOWN = Known(tenants=["acme", "beta"], aliases=["fast"], deployments=["fast-1"])


def _never() -> Any:
    raise AssertionError("an unauthorized request must not reach PostgreSQL")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_only_the_master_key_or_a_live_session_gets_in() -> None:
    http = TestClient(build_app("sk-master", _never), follow_redirects=False)
    assert http.get("/").status_code == 401
    assert http.get("/requests").status_code == 401
    assert http.get("/export/requests.csv").status_code == 401
    assert http.get("/api/figures").status_code == 401
    assert http.get("/api/figures", headers={"Authorization": "Bearer sk-other"}).status_code \
        == 401
    for token in ("garbage", "", "sk-master"):
        http.cookies.set(COOKIE, token)
        assert http.get("/api/figures").status_code == 401, token
    http.cookies.clear()
    assert http.post("/login", data={"key": "sk-wrong"}).status_code == 401
    login = http.post("/login", data={"key": "sk-master"})
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "script-src" not in login.headers["content-security-policy"]  # default-src 'none'


def test_logout_ends_the_session_on_the_server() -> None:
    sessions = Sessions()
    http = TestClient(build_app("sk-master", _never, sessions=sessions), follow_redirects=False)
    token = http.post("/login", data={"key": "sk-master"}).cookies[COOKIE]
    assert sessions.valid(token)
    http.post("/logout")
    assert not sessions.valid(token)
    copied = TestClient(build_app("sk-master", _never, sessions=sessions))
    copied.cookies.set(COOKIE, token)  # a copy of the cookie taken before logging out
    assert copied.get("/api/figures").status_code == 401


def test_sessions_expire() -> None:
    clock = Clock()
    sessions = Sessions(clock, lifetime=60)
    token = sessions.create()
    assert sessions.valid(token)
    clock.now += 61
    assert not sessions.valid(token)


def test_failed_logins_are_throttled_per_client_then_released() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    http = TestClient(build_app("sk-master", _never, throttle=throttle), follow_redirects=False)
    for _ in range(auth.MAX_FAILS_PER_CLIENT):
        assert http.post("/login", data={"key": "wrong"}).status_code == 401
    refused = http.post("/login", data={"key": "sk-master"})  # even the right key, now
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert throttle.retry_after("another-host") == 0  # other addresses are not locked out
    clock.now += WINDOW + 1
    assert http.post("/login", data={"key": "sk-master"}).status_code == 303


def test_failures_from_many_addresses_lock_every_login() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    for number in range(auth.MAX_FAILS_TOTAL):
        throttle.failed(f"10.0.{number // 256}.{number % 256}")
    assert throttle.retry_after("192.0.2.1") > 0


@pytest.mark.parametrize(("query", "param"), [
    ({"tenant": "nobody"}, "tenant"), ({"alias": "nope"}, "alias"),
    ({"deployment": "x"}, "deployment"), ({"status": "weird"}, "status"),
    ({"period": "forever"}, "period"), ({"colour": "red"}, "colour"),
    ({"period": "custom", "from": "2026-11-01"}, "to"),
    ({"period": "custom", "from": "2026-13-01", "to": "2026-11-02"}, "from"),
    ({"period": "custom", "from": "2026-11-05", "to": "2026-11-02"}, "to"),
    ({"from": "2026-11-01", "to": "2026-11-02"}, "from"), ({"page": "0"}, "page"),
    ({"page": "x"}, "page"), ({"refresh": "1"}, "refresh")])
def test_filters_it_cannot_honour_are_refused_by_name(query: dict[str, str], param: str) -> None:
    with pytest.raises(BadFilter) as caught:
        Filters.parse(query, KNOWN)
    assert caught.value.name == param


def test_unknown_filters_are_a_400_page_not_a_500() -> None:
    app = build_app("sk-master", _fake_connect)
    http = TestClient(app, raise_server_exceptions=True)
    master = {"Authorization": "Bearer sk-master"}
    for path in ("/", "/requests", "/latency", "/health", "/live", "/export/requests.csv"):
        answer = http.get(path, params={"tenant": "nobody"}, headers=master)
        assert answer.status_code == 400, path
        assert "tenant: no tenant &#x27;nobody&#x27;" in answer.text, path
    api = http.get("/api/figures", params={"period": "forever"}, headers=master)
    assert api.status_code == 400 and api.json()["param"] == "period"


class _FakeConn:
    """Just enough of a connection for ``queries.known`` (no tenants, no rows)."""

    def __enter__(self) -> _FakeConn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, *args: object) -> list[tuple[object, ...]]:
        return []


def _fake_connect() -> _FakeConn:
    return _FakeConn()


def test_periods_and_custom_ranges_are_utc_days() -> None:
    now = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
    assert Filters.parse({}, KNOWN).window(now)[0] == datetime(2026, 11, 1, tzinfo=UTC)
    assert Filters.parse({"period": "7d"}, KNOWN).window(now)[0] == \
        datetime(2026, 11, 16, tzinfo=UTC)
    custom = Filters.parse({"period": "custom", "from": "2026-10-30", "to": "2026-11-02"}, KNOWN)
    assert (custom.start, custom.end) == (date(2026, 10, 30), date(2026, 11, 2))
    assert custom.window(now) == (datetime(2026, 10, 30, tzinfo=UTC),
                                  datetime(2026, 11, 3, tzinfo=UTC))
    assert Filters.parse({"tenant": "acme"}, KNOWN).query(page=2) == "tenant=acme&page=2"


def test_money_reads_as_what_it_is() -> None:
    assert [money(v) for v in ("50", "0.0002", "0.015", "12.5", "0.00012345", None)] == [
        "50.00", "0.0002", "0.015", "12.50", "0.00012345", "-"]


def test_tables_sort_on_the_server_and_export_raw_values() -> None:
    table = Table("t", "T", [Column("name", "Name"), Column("cost_usd", "Cost", "usd")],
                  [{"name": "b", "cost_usd": 0.5}, {"name": "a", "cost_usd": None},
                   {"name": "c", "cost_usd": 0.000001}])
    sort_rows(table, "cost_usd", True)
    assert [r["name"] for r in table.rows] == ["b", "c", "a"]  # empty cells last
    sort_rows(table, "name", False)
    assert to_csv(table).splitlines() == ["name,cost_usd", "a,", "b,0.5", "c,0.000001"]


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    import csv
    import io

    table = Table("t", "T", [Column("tag", "Tag"), Column("n", "N", "int")],
                  [{"tag": '=HYPERLINK("http://x")', "n": 1}, {"tag": "@sum", "n": 2},
                   {"tag": "-plain", "n": 3}])
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert rows[1:] == [["'=HYPERLINK(\"http://x\")", "1"], ["'@sum", "2"], ["-plain", "3"]]
