"""Helpers for the gateway tests: proxies started side by side, tenants and keys straight
in PostgreSQL, an openai client per key, waiting for spend rows, reading ``/metrics``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import redis
from psycopg.rows import dict_row

from llm_pool.runtime import ProxyProcess, start_proxy
from proxy.storage.tenants import create_key, create_tenant

# per-token prices declared in config/offline.yaml (model_info)
PRICES = {
    "fast-1": (0.0000001, 0.0000002),
    "quality-a": (0.000003, 0.000015),
    "quality-b": (0.0000025, 0.00001),
    "economy-1": (0.00000015, 0.0000006),
    "embedder-1": (0.00000002, 0.0),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_tenant(pg_url: str, prefix: str, *, budget: str | None = None, rpm: int | None = None,
               tpm: int | None = None, label: str = "main") -> tuple[str, str]:
    """A fresh tenant with one key: (tenant name, key)."""
    name = unique(prefix)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tenant(conn, name, budget=Decimal(budget) if budget else None, rpm=rpm, tpm=tpm)
        key, _ = create_key(conn, name, label)
    return name, key


def add_key(pg_url: str, tenant: str, label: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return create_key(conn, tenant, label)[0]


def client(proxy_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0)


def tokens_script(prompt: int, completion: int, text: str = "scripted answer") -> str:
    step = {"text": text, "prompt_tokens": prompt, "completion_tokens": completion}
    return f"[[script:{json.dumps({'steps': [step]})}]]"


def expected_cost(deployment: str, prompt: int, completion: int) -> float:
    per_in, per_out = PRICES[deployment]
    return prompt * per_in + completion * per_out


def spend_rows(pg_url: str, where: str = "TRUE", params: Any = ()) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT s.*, t.name AS tenant FROM spend s LEFT JOIN tenants t ON t.id = s.tenant_id "
            f"WHERE {where} ORDER BY s.id", params).fetchall()


def wait_for_rows(pg_url: str, request_ids: list[str], timeout: float = 15.0,
                  status: str | None = None) -> dict[str, dict[str, Any]]:
    """The spend rows of these requests, once all are written (with ``status``: once each
    has it; a request whose first attempt failed shows that attempt's error row under
    its id until the answer's row replaces it)."""
    deadline = time.monotonic() + timeout
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        rows = spend_rows(pg_url, "s.request_id = ANY(%s)", (request_ids,))
        found = {r["request_id"]: r for r in rows if status in (None, r["status"])}
        if len(found) == len(set(request_ids)):
            return found
        time.sleep(0.1)
    missing = sorted(set(request_ids) - set(found))
    raise AssertionError(f"spend rows{f' with status {status}' if status else ''} missing "
                         f"after {timeout} s for {missing}")


def metric(proxy_url: str, name: str, key: str = "sk-test-master-key") -> float:
    """One of ``/metrics``'s figures, summed over its label sets (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{proxy_url}/metrics/", headers={"Authorization": f"Bearer {key}"},
                     timeout=30).raise_for_status().text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


def wait_metric(proxy_url: str, name: str, value: float, timeout: float = 10.0) -> None:
    """Wait until ``/metrics`` shows ``name == value`` (the gateway polls every second)."""
    deadline = time.monotonic() + timeout
    while (seen := metric(proxy_url, name)) != value:
        assert time.monotonic() < deadline, f"{name} is {seen}, expected {value}"
        time.sleep(0.3)


def start_many(envs: dict[str, dict[str, str]], repo_root: Path, logs: Path,
               workers: dict[str, int] | None = None) -> dict[str, ProxyProcess]:
    """Start proxies side by side (a cold start is 20-60 s here); all or none."""
    started: dict[str, ProxyProcess] = {}
    errors: list[BaseException] = []

    def start(name: str) -> None:
        try:
            started[name] = start_proxy(repo_root / "config" / "offline.yaml", env=envs[name],
                                        log_path=logs / f"{name}.log",
                                        workers=(workers or {}).get(name, 1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(name,)) for name in envs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for proxy in started.values():
            proxy.stop()
        raise errors[0]
    return started


def forget(redis_url: str, namespace: str) -> None:
    """Delete a test's Redis keys (the gateway's and LiteLLM's router's)."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
