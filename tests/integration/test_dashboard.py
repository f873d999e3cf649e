"""The dashboard in headless Chromium after real traffic through a real proxy with Redis:
every view's figures compared with SQL over the spend table (and with Redis for what holds
now), 0 mismatches; filters, custom dates, sorting, CSV export, a 400 for an unknown filter,
logout ending the session on the server. Screenshots of every view are saved (path printed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import yaml
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from llm_pool.dashboard.live import Live, tenant_use
from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, free_port, start_proxy, wait_http
from llm_pool.settings import REPO_ROOT
from proxy.admission.reservations import live_reserved
from proxy.storage.shared import gateway_prefix
from tests.conftest import MASTER_KEY
from tests.gateway.support import add_key, client, new_tenant, tokens_script, wait_for_rows

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BEARER = {"Authorization": f"Bearer {MASTER_KEY}"}
COOLDOWN = 600  # seconds: the cooled deployment stays cooled for the whole test


@pytest.fixture(scope="module")
def namespace(redis_url: str) -> Iterator[str]:
    prefix = f"llmpool-dash-{uuid.uuid4().hex[:8]}"
    yield prefix
    client_ = redis.Redis.from_url(redis_url)
    keys = list(client_.scan_iter(f"{prefix}*"))
    if keys:
        client_.delete(*keys)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/offline.yaml with a long cooldown (a cooled deployment stays so)."""
    data = yaml.safe_load((REPO_ROOT / "config" / "offline.yaml").read_text())
    data["router_settings"]["cooldown_time"] = COOLDOWN
    path = tmp_path_factory.mktemp("dash-config") / "offline-long-cooldown.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def env(proxy_env: dict[str, str], redis_url: str, namespace: str) -> dict[str, str]:
    return {**proxy_env, "POOL_REDIS_URL": redis_url, "POOL_NAMESPACE": namespace}


@pytest.fixture(scope="module")
def proxy(env: dict[str, str], config: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ProxyProcess]:
    log = tmp_path_factory.mktemp("dash-proxy") / "proxy.log"
    running = start_proxy(config, env=env, log_path=log)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dashboard(env: dict[str, str], config: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("dashboard") / "dashboard.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llm_pool.cli", "dashboard", "--port",
                             str(port), "--config", str(config)],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", 120, proc)  # type: ignore[arg-type]
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("needs Debian's chromium and chromium-driver: "
                    "apt-get install -y chromium chromium-driver (.ci/run does)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,1800", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


# ----------------------------------------------------------------- traffic


def _ask(proxy: ProxyProcess, key: str, model: str, content: str, stream: bool = False) -> str:
    api = client(proxy.url, key).chat.completions
    if stream:
        with api.with_streaming_response.create(
                model=model, stream=True, messages=[{"role": "user", "content": content}]) as r:
            for _ in r.iter_lines():
                pass
            return str(r.headers["x-litellm-call-id"])
    reply = api.with_raw_response.create(model=model,
                                         messages=[{"role": "user", "content": content}])
    return str(reply.headers["x-litellm-call-id"])


def _traffic(proxy: ProxyProcess, pg_url: str, scripted: ScriptedProvider, redis_url: str,
             namespace: str) -> dict[str, str]:
    """Two keys of a tenant with a budget under a cent, several aliases, a stream, a failed
    request; another tenant, for whom quality-a fails until LiteLLM cools it down."""
    tenant, web = new_tenant(pg_url, "dash", budget="0.0005", label="web")
    batch = add_key(pg_url, tenant, "batch")
    other_tenant, other = new_tenant(pg_url, "dash-other", budget="5", rpm=100, tpm=100_000)
    ids = [_ask(proxy, web, "fast", tokens_script(100, 50)),
           _ask(proxy, web, "fast", tokens_script(10, 5)),
           _ask(proxy, web, "fast", tokens_script(20, 30), stream=True),
           _ask(proxy, batch, "economy", tokens_script(30, 20)),
           _ask(proxy, other, "fast", tokens_script(7, 7)),
           _ask(proxy, other, "quality", tokens_script(200, 100))]
    wait_for_rows(pg_url, ids)
    scripted.add_rule("economy-*", {"status": 503, "error_message": "overloaded upstream"})
    failed = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=60,
                        headers={"Authorization": f"Bearer {batch}"},
                        json={"model": "economy", "messages": [{"role": "user", "content": "x"}]})
    assert failed.status_code == 503, failed.text
    # quality-a fails (quality-b or the fallback answers) until LiteLLM cools it down
    scripted.add_rule("quality-a", {"status": 503, "error_message": "quality-a is down"})
    cooldown_key = f"{namespace}:deployment:quality-a:cooldown"
    shared = redis.Redis.from_url(redis_url)
    for _ in range(30):
        if shared.exists(cooldown_key):
            break
        _ask(proxy, other, "quality", tokens_script(20, 10))
    assert shared.exists(cooldown_key), "LiteLLM never cooled quality-a down"
    _wait(lambda: _count(pg_url, "s.status = 'error' AND s.deployment = 'economy-1'") > 0
          and _count(pg_url, "s.status = 'error' AND s.deployment = 'quality-a'") > 0)
    _settled(pg_url)
    return {"tenant": tenant, "other": other_tenant, "other_key": other}


def _settled(pg_url: str, quiet: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the spend table stops changing for ``quiet`` seconds: a request whose first
    attempt failed shows that attempt's error row under its id until the answer's row
    replaces it, and the pages must be compared with the SQL of the final rows."""
    def state() -> tuple[Any, ...]:
        return tuple(_sql(pg_url, "SELECT count(*), count(*) FILTER (WHERE status = 'ok'), "
                                  "COALESCE(sum(cost_usd), 0) FROM spend")[0])

    deadline, last, since = time.monotonic() + timeout, state(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "spend rows still changing"
        time.sleep(0.2)
        if (now := state()) != last:
            last, since = now, time.monotonic()


def _wait(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def _count(pg_url: str, where: str, params: Any = ()) -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM spend s LEFT JOIN tenants t "
                           f"ON t.id = s.tenant_id WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def _sql(pg_url: str, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


# ----------------------------------------------------------------- the browser


def _load(driver: webdriver.Chrome, url: str, attempts: int = 3) -> None:
    """Open ``url``; on a loaded 2-core machine Chromium's renderer can miss its own
    deadline ("Timed out receiving message from renderer"): that is retried, a page that
    does not render after three tries is a failure."""
    for attempt in range(attempts):
        try:
            driver.get(url)
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script("return document.readyState") == "complete")
            return
        except WebDriverException:
            if attempt == attempts - 1:
                raise


def _submit(driver: webdriver.Chrome, button: str) -> None:
    _follow(driver, By.ID, button)


def _follow(driver: webdriver.Chrome, by: str, target: str, attempts: int = 3) -> None:
    """Click the element ``target`` and wait for the page it navigates to.

    The old page is marked with a window flag before the click, and the next page is the
    first document without it that has finished loading. ChromeDriver asked about the old
    page while it unloads answers errors that are not "stale element" ("Node with given id
    does not belong to the document", or a renderer timeout on a loaded 2-core machine), so
    no question is asked of the old page's nodes: a probe that errors means "not yet". A
    click that reports an error is retried only if no navigation followed it."""
    driver.execute_script("window.__llmPoolOldPage = true")

    def arrived(d: webdriver.Chrome) -> bool:
        try:
            return bool(d.execute_script(
                "return !window.__llmPoolOldPage && document.readyState === 'complete'"))
        except WebDriverException:
            return False

    for attempt in range(attempts):
        try:
            driver.find_element(by, target).click()
            break
        except WebDriverException:
            try:
                WebDriverWait(driver, 15).until(arrived)
                return
            except TimeoutException:
                if attempt == attempts - 1:
                    raise
    WebDriverWait(driver, 60).until(arrived)


def _table(driver: webdriver.Chrome, name: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{name} tbody tr")
    found = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    return [] if len(found) == 1 and len(found[0]) == 1 else found  # "nothing in this period"


def _usd(value: Any) -> str:
    return "-" if value is None else f"{float(value):.6f}"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}"


class Mismatches(list[str]):
    def check(self, view: str, shown: Any, expected: Any) -> None:
        if shown != expected:
            self.append(f"{view}: shown {shown!r}, SQL says {expected!r}")


def _spend_expected(pg_url: str, tenant: str, group: str | None) -> list[list[str]]:
    column = {"model": "COALESCE(s.model_alias, '-')", "deployment":
              "COALESCE(s.deployment, '-')", "key": "COALESCE(s.key_label, '-')"}
    select = f"{column[group]}, " if group else ""
    rows = _sql(pg_url, f"""
        SELECT t.name, {select} count(*), count(*) FILTER (WHERE s.status = 'error'),
               sum(s.prompt_tokens), sum(s.completion_tokens), sum(s.cost_usd)
          FROM spend s JOIN tenants t ON t.id = s.tenant_id
         WHERE t.name = %s AND s.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                                               AT TIME ZONE 'UTC'
         GROUP BY 1{", 2" if group else ""} ORDER BY 1{", 2" if group else ""}""", (tenant,))
    width = 2 if group else 1
    return [[*map(str, r[:width]), *map(str, r[width:width + 4]), _usd(r[width + 4])]
            for r in rows]


def test_the_operators_console_in_a_browser_matches_sql(
        proxy: ProxyProcess, pg_url: str, redis_url: str, namespace: str,
        scripted: ScriptedProvider, dashboard: str, browser: webdriver.Chrome,
        tmp_path: Path) -> None:
    names = _traffic(proxy, pg_url, scripted, redis_url, namespace)
    tenant, other = names["tenant"], names["other"]
    bad = Mismatches()
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # the gate: nothing without the master key; a wrong key at the form says so
    assert httpx.get(dashboard).status_code == 401
    assert httpx.get(f"{dashboard}/export/requests.csv").status_code == 401
    _load(browser, dashboard)
    browser.find_element(By.ID, "key").send_keys("wrong")
    _submit(browser, "login")
    assert browser.find_element(By.ID, "login-error").text == "wrong key"
    browser.find_element(By.ID, "key").send_keys(MASTER_KEY)
    _submit(browser, "login")

    # overview, filtered on the tenant in the form
    Select(browser.find_element(By.ID, "tenant")).select_by_value(tenant)
    _submit(browser, "apply")
    bad.check("per-tenant", _table(browser, "per-tenant"), _spend_expected(pg_url, tenant, None))
    for table, group in (("per-model", "model"), ("per-deployment", "deployment"),
                         ("per-key", "key")):
        bad.check(table, _table(browser, table), _spend_expected(pg_url, tenant, group))
    total = _spend_expected(pg_url, tenant, None)[0]
    bad.check("kpi spend", browser.find_element(By.CSS_SELECTOR, "#kpi-spend_usd b").text,
              total[-1])
    budget = _table(browser, "budgets")[0]
    bad.check("budget", budget[:3], [tenant, total[-1], "0.0005"])  # not "0.00"
    errors = _sql(pg_url, """
        SELECT t.name, s.key_label, s.model_alias, COALESCE(s.deployment, '-'), s.error_class,
               s.request_id FROM spend s JOIN tenants t ON t.id = s.tenant_id
         WHERE t.name = %s AND s.status = 'error' ORDER BY s.created_at DESC, s.id DESC
         LIMIT 20""", (tenant,))
    bad.check("recent errors", [row[1:] for row in _table(browser, "recent-errors")],
              [list(map(str, row)) for row in errors])
    assert "economy-1" in {row[3] for row in errors}
    chart = browser.find_element(By.ID, "day-chart")
    assert chart.size["width"] > 900  # follows the page's width, not a fixed 720 px
    browser.save_screenshot(str(shots / "overview.png"))
    api = httpx.get(f"{dashboard}/api/figures", params={"tenant": tenant}, headers=BEARER)
    assert api.status_code == 200 and "sk-pool-" not in api.text
    pool_spend = subprocess.run(
        [sys.executable, "-m", "llm_pool.cli", "spend", "--json", "--tenant", tenant],
        env={**os.environ, "POOL_DATABASE_URL": pg_url}, capture_output=True, text=True,
        check=True)
    bad.check("api = pool spend --json", api.json()["tenants"],
              json.loads(pool_spend.stdout)["rows"])

    # sorting (on the server): per alias by cost, descending
    _load(browser, f"{dashboard}/?tenant={tenant}&sort=per-model.-cost_usd")
    costs = [float(row[-1]) for row in _table(browser, "per-model")]
    assert costs == sorted(costs, reverse=True) and len(costs) >= 2

    # CSV export of a table = the same figures, full precision
    exported = httpx.get(f"{dashboard}/export/per-deployment.csv", params={"tenant": tenant},
                         headers=BEARER)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith(
        "text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    bad.check("csv per-deployment", [[r["tenant"], r["deployment"], r["requests"],
                                      r["errors"], r["prompt_tokens"], r["completion_tokens"],
                                      _usd(r["cost_usd"])] for r in lines],
              _spend_expected(pg_url, tenant, "deployment"))

    # custom date range: today only = this month's figures; yesterday only = nothing
    today = datetime.now(UTC).date()
    _load(browser, f"{dashboard}/?tenant={tenant}&period=custom&from={today}&to={today}")
    bad.check("custom today", _table(browser, "per-tenant"),
              _spend_expected(pg_url, tenant, None))
    yesterday = today - timedelta(days=1)
    _load(browser, f"{dashboard}/?tenant={tenant}&period=custom&from={yesterday}"
                   f"&to={yesterday}")
    bad.check("custom yesterday", _table(browser, "per-tenant"), [])

    # the request log, filtered (tenant, alias, status), and one request's detail
    _load(browser, f"{dashboard}/requests?tenant={tenant}&alias=fast&status=ok")
    shown = _table(browser, "requests")
    rows = _sql(pg_url, """
        SELECT s.key_label, s.deployment, s.prompt_tokens, s.completion_tokens, s.cost_usd,
               s.latency_ms, s.ttfb_ms, s.request_id
          FROM spend s JOIN tenants t ON t.id = s.tenant_id
         WHERE t.name = %s AND s.model_alias = 'fast' AND s.status = 'ok'
         ORDER BY s.created_at DESC, s.id DESC""", (tenant,))
    bad.check("request log", [[r[2], r[4], r[6], r[7], r[8], r[9], r[10], r[12]]
                              for r in shown],
              [[r[0], r[1], str(r[2]), str(r[3]), _usd(r[4]), _ms(r[5]), _ms(r[6]), r[7]]
               for r in rows])
    assert all(r[6] is not None for r in rows), "every answered request has a TTFB"
    browser.save_screenshot(str(shots / "requests.png"))
    _load(browser, f"{dashboard}/requests?tenant={tenant}&status=error&deployment=economy-1")
    failed = _sql(pg_url, """
        SELECT s.request_id, s.error_class, s.error_message FROM spend s JOIN tenants t
            ON t.id = s.tenant_id WHERE t.name = %s AND s.status = 'error'
           AND s.deployment = 'economy-1'
         ORDER BY s.created_at DESC, s.id DESC LIMIT 1""", (tenant,))[0]
    _follow(browser, By.CSS_SELECTOR, "#requests tbody tr td:last-child a")
    bad.check("detail id", browser.find_element(By.ID, "detail-request_id").text, failed[0])
    bad.check("detail error", browser.find_element(By.ID, "detail-error").text, failed[1])
    assert "overloaded upstream" in (failed[2] or "")
    bad.check("detail message", browser.find_element(By.ID, "detail-error_message").text,
              failed[2])
    browser.save_screenshot(str(shots / "request-detail.png"))

    # latency and time to first token per alias and deployment
    _load(browser, f"{dashboard}/latency")
    for table, column in (("latency-alias", "COALESCE(s.model_alias, '-')"),
                          ("latency-deployment", "COALESCE(s.deployment, '-')")):
        expected = _sql(pg_url, f"""
            SELECT {column}, count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY s.latency_ms)
                     FILTER (WHERE s.status = 'ok'),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY s.latency_ms)
                     FILTER (WHERE s.status = 'ok'),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY s.ttfb_ms)
                     FILTER (WHERE s.status = 'ok'),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY s.ttfb_ms)
                     FILTER (WHERE s.status = 'ok')
              FROM spend s
             WHERE s.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                                   AT TIME ZONE 'UTC'
             GROUP BY 1 ORDER BY 1""")
        bad.check(table, [[r[0], r[1], r[3], r[4], r[5], r[6]] for r in _table(browser, table)],
                  [[r[0], str(r[1]), _ms(r[2]), _ms(r[3]), _ms(r[4]), _ms(r[5])]
                   for r in expected])
    browser.save_screenshot(str(shots / "latency.png"))

    # deployment health: quality-a cooling down now (LiteLLM's key in Redis), its failures
    _load(browser, f"{dashboard}/health")
    health = {row[0]: row for row in _table(browser, "health")}
    cooled = redis.Redis.from_url(redis_url).pttl(f"{namespace}:deployment:quality-a:cooldown")
    assert cooled > 0, "LiteLLM's cooldown key is not in Redis"
    bad.check("quality-a state", health["quality-a"][2], "cooling down")
    remaining = int(health["quality-a"][3])
    assert 0 < remaining <= COOLDOWN
    # the cause as LiteLLM recorded it (it masks the message's tail itself)
    assert health["quality-a"][4] == "503", health["quality-a"]
    assert health["quality-a"][5].startswith("litellm.ServiceUnavailableError"), health
    bad.check("quality-a last error", "quality-a is down" in health["quality-a"][11], True)
    hour = datetime.now(UTC) - timedelta(hours=1)
    for deployment in ("quality-a", "economy-1", "fast-1"):
        bad.check(f"{deployment} errors 1 h", health[deployment][7], str(_count(
            pg_url, "s.deployment = %s AND s.status = 'error' AND s.created_at >= %s",
            (deployment, hour))))
        if deployment != "quality-a":
            bad.check(f"{deployment} state", health[deployment][2],
                      "failing" if health[deployment][7] != "0" else "ok")
    assert "local-1" in health  # from the config, with or without traffic
    browser.save_screenshot(str(shots / "health.png"))

    # live use: a request in flight holds a reservation; the page shows what Redis holds
    live = Live(redis.Redis.from_url(redis_url),
                gateway_prefix(namespace, pg_url), namespace)
    other_id = int(_sql(pg_url, "SELECT id FROM tenants WHERE name = %s", (other,))[0][0])
    slow = json.dumps({"steps": [{"text": "slow", "delay": 8, "prompt_tokens": 5,
                                  "completion_tokens": 5}]})
    flight = threading.Thread(target=_ask, args=(proxy, names["other_key"], "fast",
                                                 f"[[script:{slow}]]"))
    flight.start()
    try:
        _wait(lambda: live_reserved(live.client, live.prefix, other_id) > 0)
        before = tenant_use(live, other_id)
        _load(browser, f"{dashboard}/live?tenant={other}")
        after = tenant_use(live, other_id)
        row = _table(browser, "live")[0]
        bad.check("live reserved", row[6] in {_usd(before["reserved_usd"]),
                                              _usd(after["reserved_usd"])}, True)
        bad.check("live rpm", row[1] in {str(before["rpm_used"]), str(after["rpm_used"])},
                  True)
        bad.check("live limits", [row[0], row[2], row[4]], [other, "100", "100000"])
        browser.save_screenshot(str(shots / "live.png"))
    finally:
        flight.join(120)

    # an unknown filter is a 400 page, not a 500
    _load(browser, f"{dashboard}/?tenant=nobody")
    assert "tenant: no tenant 'nobody'" in browser.find_element(By.ID, "error").text
    assert httpx.get(f"{dashboard}/requests", params={"period": "forever"},
                     headers=BEARER).status_code == 400
    assert "sk-pool-" not in browser.page_source

    # logging out ends the session on the server: the old cookie no longer opens anything
    _load(browser, dashboard)
    cookie = browser.get_cookie("pool_dashboard")
    assert cookie is not None
    _submit(browser, "logout")
    stale = httpx.get(f"{dashboard}/api/figures", cookies={"pool_dashboard": cookie["value"]})
    assert stale.status_code == 401

    print(f"\ndashboard screenshots: {shots}")
    print(f"mismatches between the dashboard and SQL/Redis: {len(bad)}")
    assert bad == []
    assert all((shots / f"{name}.png").stat().st_size > 10_000
               for name in ("overview", "requests", "health"))
