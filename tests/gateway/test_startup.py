"""The gateway's start-up (:mod:`proxy.plugin.startup`), run as ``pool proxy`` runs it.

- With 2 workers and no Redis, the proxy log has neither of LiteLLM's misleading start-up
  lines (#21: "custom_auth ... will NOT be enforced", "Redis is not configured" for the
  admin login counter), and the gateway's own layers answer (readiness, the edge).
- The bare ``litellm --config`` CLI on the same YAML runs none of the start-up: the
  gateway fails closed, every authenticated request is a 503 naming ``pool proxy``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_pool import runtime
from llm_pool.runtime import ProxyProcess, free_port, litellm_command, start_proxy, wait_http
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.integration

OFFLINE = Path(__file__).resolve().parents[2] / "config" / "offline.yaml"
MISLEADING = ("custom_auth_run_common_checks", "Redis is not configured")


@pytest.fixture(scope="module")
def two_workers(proxy_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[ProxyProcess]:
    log = tmp_path_factory.mktemp("startup") / "proxy.log"
    env = {k: v for k, v in proxy_env.items() if k != "POOL_REDIS_URL"}
    running = start_proxy(OFFLINE, env=env, workers=2, log_path=log, timeout=300)
    yield running
    running.stop()


def test_two_workers_log_no_misleading_startup_line(two_workers: ProxyProcess) -> None:
    text = two_workers.log_path.read_text(errors="replace")
    assert "llm-pool gateway:" in text and "with 2 worker(s)" in text, text[-2000:]
    assert text.count("Proxy initialized with Config") == 2, text[-2000:]  # both workers
    for line in MISLEADING:
        assert line not in text, f"{line!r} in the proxy log"


def test_the_started_gateway_answers_through_its_layers(two_workers: ProxyProcess) -> None:
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    ready = httpx.get(f"{two_workers.url}/health/readiness", headers=master, timeout=30)
    assert ready.status_code == 200 and ready.json()["postgres"] == "connected", ready.text
    unkeyed = httpx.get(f"{two_workers.url}/health/readiness", timeout=30)
    assert unkeyed.status_code == 401  # the edge guard is in front
    array = httpx.post(f"{two_workers.url}/v1/chat/completions", content=b"[1]", timeout=30,
                       headers={**master, "content-type": "application/json"})
    assert array.status_code == 400 and "JSON object" in array.text, array.text


@pytest.fixture(scope="module")
def bare_cli(proxy_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ProxyProcess]:
    """``litellm --config config/offline.yaml``: the stock CLI, no gateway start-up."""
    extra = proxy_env
    log = tmp_path_factory.mktemp("bare") / "proxy.log"
    port = free_port()
    args = [*litellm_command(), "--config", str(OFFLINE), "--host", "127.0.0.1",
            "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=runtime.proxy_env(extra), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    running = ProxyProcess(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log, args=args)
    try:
        wait_http(f"{running.url}/health/liveliness", 300, proc)
        yield running
    finally:
        running.stop()


def test_the_bare_litellm_cli_fails_closed(bare_cli: ProxyProcess) -> None:
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    models = httpx.get(f"{bare_cli.url}/v1/models", headers=master, timeout=30)
    assert models.status_code == 503 and "pool proxy" in models.text, models.text
    chat = httpx.post(f"{bare_cli.url}/v1/chat/completions", headers=master, timeout=30,
                      json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 503 and "pool proxy" in chat.text, chat.text
    assert "not started by `pool proxy`" in bare_cli.log_path.read_text(errors="replace")
