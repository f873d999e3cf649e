"""``pool dashboard`` in a real browser (Debian's headless Chromium driven by Selenium)
after real traffic through the proxy: it asks for the master key, and the figures it
shows are those of ``pool spend --json``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, free_port, wait_http
from tests.conftest import MASTER_KEY
from tests.gateway.support import add_key, client, new_tenant, tokens_script, wait_for_rows

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def dashboard(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("dashboard") / "dashboard.log").open("wb")
    env = {**os.environ, "POOL_DATABASE_URL": pg_url, "LITELLM_MASTER_KEY": MASTER_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "llm_pool.cli", "dashboard", "--port",
                             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", 60, proc)  # type: ignore[arg-type]
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
                 "--window-size=1280,2200", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _traffic(proxy: ProxyProcess, pg_url: str, scripted: ScriptedProvider) -> tuple[str, str]:
    """Two keys of one tenant, several aliases, one provider error; another tenant too."""
    tenant, web = new_tenant(pg_url, "dash", budget="0.01", label="web")
    batch = add_key(pg_url, tenant, "batch")
    _, other = new_tenant(pg_url, "dash-other")
    ids = []
    for key, model, sizes in ((web, "fast", (100, 50)), (web, "fast", (10, 5)),
                              (batch, "quality", (200, 100)), (batch, "economy", (30, 20)),
                              (other, "fast", (7, 7))):
        reply = client(proxy.url, key).chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": tokens_script(*sizes)}])
        ids.append(reply.headers["x-litellm-call-id"])
    scripted.add_rule("economy-*", {"status": 503, "error_message": "overloaded"})
    failed = client(proxy.url, batch).chat.completions.with_raw_response
    with pytest.raises(Exception):  # noqa: B017 - the openai error class does not matter here
        failed.create(model="economy", messages=[{"role": "user", "content": "x"}])
    wait_for_rows(pg_url, ids)
    return tenant, web


def _spend(pg_url: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "llm_pool.cli", "spend", "--json", *args],
                          env={**os.environ, "POOL_DATABASE_URL": pg_url}, capture_output=True,
                          text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _submit(driver: webdriver.Chrome, button: str) -> None:
    """Click a form's button and wait for the page it loads (a click does not wait)."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button).click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _table(driver: webdriver.Chrome, name: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{name} tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def _expected(lines: list[dict[str, Any]], group: str | None) -> list[list[str]]:
    return [[line["tenant"], *([line[group]] if group else []), str(line["requests"]),
             str(line["errors"]), str(line["prompt_tokens"]), str(line["completion_tokens"]),
             f"{line['cost_usd']:.6f}"] for line in lines]


def test_dashboard_in_a_browser_shows_pool_spend_figures(
        offline_proxy: ProxyProcess, pg_url: str, scripted: ScriptedProvider, dashboard: str,
        browser: webdriver.Chrome, tmp_path: Path) -> None:
    tenant, web_key = _traffic(offline_proxy, pg_url, scripted)
    # the master key, or nothing
    assert httpx.get(dashboard).status_code == 401
    assert httpx.get(f"{dashboard}/api/figures").status_code == 401
    assert httpx.get(f"{dashboard}/api/figures", headers={
        "Authorization": f"Bearer {web_key}"}).status_code == 401
    api = httpx.get(f"{dashboard}/api/figures", params={"tenant": tenant},
                    headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert api.status_code == 200 and "sk-pool-" not in api.text
    assert api.json()["tenants"] == _spend(pg_url, "--tenant", tenant)["rows"]

    browser.get(dashboard)
    browser.find_element(By.ID, "key").send_keys("wrong")
    _submit(browser, "login")
    assert browser.find_element(By.ID, "login-error").text == "wrong key"
    browser.find_element(By.ID, "key").send_keys(MASTER_KEY)
    _submit(browser, "login")
    Select(browser.find_element(By.ID, "tenant")).select_by_value(tenant)
    _submit(browser, "apply")

    assert _table(browser, "per-tenant") == _expected(
        _spend(pg_url, "--tenant", tenant)["rows"], None)
    for table, by in (("per-model", "model"), ("per-key", "key")):
        assert _table(browser, table) == _expected(
            _spend(pg_url, "--tenant", tenant, "--by", by)["rows"], by), table
    total = _spend(pg_url, "--tenant", tenant)["total"]
    assert browser.find_element(By.CSS_SELECTOR, "#kpi-spend_usd b").text == \
        f"{total['cost_usd']:.6f}"
    assert browser.find_element(By.CSS_SELECTOR, "#kpi-errors b").text == str(total["errors"])
    days = _spend(pg_url, "--tenant", tenant, "--by", "day")["rows"]
    titles = [t.get_attribute("textContent")
              for t in browser.find_elements(By.CSS_SELECTOR, "#day-chart rect title")]
    assert [f"{d['day']}: ${d['cost_usd']:.6f}, {d['requests']} requests" for d in days] \
        == [t for t in titles if t and not t.endswith(": $0.000000, 0 requests")]
    budget = _table(browser, "budgets")
    assert budget[0][:3] == [tenant, f"{total['cost_usd']:.6f}", "0.01"]
    errors = _table(browser, "recent-errors")
    # the failed request (and, with the Redis journal, possibly a row per failed attempt)
    assert {tuple(row[1:6]) for row in errors} == {
        (tenant, "batch", "economy", "economy-1", "ServiceUnavailableError")}
    assert "sk-pool-" not in browser.page_source

    shot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(shot))
    print(f"\ndashboard screenshot: {shot}")
    assert shot.stat().st_size > 10_000
