"""``allowed_fails`` and ``cooldown_time`` mean what they say (tests/gateway/cooldown.yaml,
the values of config/*.yaml): a deployment sits out after more than ``allowed_fails``
provider faults in a minute (5xx, refused connections), and never for client errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, free_port, start_proxy
from tests.gateway.support import new_tenant, spend_rows, wait_for_rows

pytestmark = pytest.mark.integration

COOLDOWN_CONFIG = Path(__file__).with_name("cooldown.yaml")
ALLOWED_FAILS = 3
COOLDOWN_TIME = 30
DEAD_PORT = free_port()  # nothing listens there


@pytest.fixture(scope="module")
def cooldown_proxy(proxy_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ProxyProcess]:
    env = {**proxy_env, "POOL_DEAD_URL": f"http://127.0.0.1:{DEAD_PORT}/v1"}
    log = tmp_path_factory.mktemp("cooldown") / "cooldown-proxy.log"
    running = start_proxy(COOLDOWN_CONFIG, env=env, log_path=log)
    yield running
    running.stop()


def ask(proxy: ProxyProcess, key: str, model: str, *steps: dict[str, Any]) -> httpx.Response:
    text = f"[[script:{json.dumps({'steps': list(steps)})}]]" if steps else "hello"
    return httpx.post(f"{proxy.url}/v1/chat/completions", timeout=60,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": text}]})


def test_allowed_fails_provider_faults_are_tolerated_then_the_deployment_sits_out(
        cooldown_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "cool")
    for _ in range(ALLOWED_FAILS):
        assert ask(cooldown_proxy, key, "flaky", {"status": 500}).status_code == 503
    assert ask(cooldown_proxy, key, "flaky").status_code == 200  # 3 faults: still serving
    assert ask(cooldown_proxy, key, "flaky", {"status": 503}).status_code == 503  # the 4th
    cooled = ask(cooldown_proxy, key, "flaky")
    assert cooled.status_code == 429, cooled.text
    assert 0 < int(cooled.headers["retry-after"]) <= COOLDOWN_TIME
    assert len(scripted.requests("flaky-1")) == ALLOWED_FAILS + 2  # the cooled one never left


def test_client_errors_never_cool_a_deployment_down(
        cooldown_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    _, key = new_tenant(pg_url, "cool")
    for status in (400, 401, 403, 404, 413, 422) * 2:
        assert ask(cooldown_proxy, key, "picky", {"status": status}).status_code == status
    assert ask(cooldown_proxy, key, "picky").status_code == 200
    assert len(scripted.requests("picky-1")) == 13  # each sent once: no retries


@pytest.mark.parametrize("alias", ["dead", "dead_local"])
def test_refused_connections_count_as_provider_faults(
        cooldown_proxy: ProxyProcess, pg_url: str, alias: str) -> None:
    _, key = new_tenant(pg_url, "cool")
    answers = [ask(cooldown_proxy, key, alias) for _ in range(ALLOWED_FAILS + 1)]
    assert all(a.status_code >= 500 for a in answers), [a.text for a in answers]
    assert not any(str(DEAD_PORT) in a.text for a in answers), answers[0].text  # no leak
    cooled = ask(cooldown_proxy, key, alias)
    assert cooled.status_code == 429 and "cooldown" in cooled.text.lower(), cooled.text


def test_a_fallback_to_a_group_cooling_down_calls_no_one_and_keeps_no_row(
        cooldown_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    """``first`` fails (503), its fallback ``cooled`` has every deployment cooling down
    (the router raises RouterRateLimitError, no provider called), ``last`` answers. The
    attempts share LiteLLM's logging details, which still name ``first-1`` (or already
    ``last-1``) when the cooled group's error is logged: that error is no attempt and
    has no row; the provider's failure keeps its own."""
    _, key = new_tenant(pg_url, "cool")
    for _ in range(ALLOWED_FAILS + 1):
        assert ask(cooldown_proxy, key, "cooled", {"status": 503}).status_code == 503
    assert ask(cooldown_proxy, key, "cooled").status_code == 429  # cooling down
    sent = len(scripted.requests("cooled-1"))
    script = {"by_model": {"first-1": {"status": 503}, "*": {"text": "from last"}}}
    answer = httpx.post(f"{cooldown_proxy.url}/v1/chat/completions", timeout=60,
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": "first", "messages": [
                            {"role": "user", "content": f"[[script:{json.dumps(script)}]]"}]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-litellm-model-id"] == "last-1"
    assert len(scripted.requests("cooled-1")) == sent  # the cooled group called no one
    call_id = answer.headers["x-litellm-call-id"]
    wait_for_rows(pg_url, [call_id], status="ok")
    time.sleep(1.0)  # a row too many (the cooled group's) would be written by then
    rows = spend_rows(pg_url, "s.request_id = %s OR s.request_id LIKE %s",
                      (call_id, call_id + "/attempt-%"))
    assert sorted((r["request_id"], r["deployment"], r["status"], r["error_class"])
                  for r in rows) == [
        (call_id, "last-1", "ok", None),
        (f"{call_id}/attempt-1", "first-1", "error", "ServiceUnavailableError")], rows
