"""A provider call that times out is not free: it is recorded with at least the
prompt's cost (flagged ``estimated``) and counts against the tenant's budget; an
attempt that failed before the fallback answered keeps its own row."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from tests.faults.conftest import ROUTER_TIMEOUT
from tests.gateway.support import new_tenant, spend_rows

pytestmark = pytest.mark.integration

HANG = {"delay": ROUTER_TIMEOUT + 1.5, "text": "too late"}
PRIMARY_INPUT_PRICE = 0.000003  # faults.yaml, primary-1


def _chat(proxy: ProxyProcess, key: str) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": "primary", "messages": [
                          {"role": "user", "content": "please summarise the quarterly report"}]},
                      timeout=30)


def _rows(pg_url: str, tenant: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while len(rows := spend_rows(pg_url, "t.name = %s", (tenant,))) < count:
        assert time.monotonic() < deadline, f"{len(rows)} of {count} spend rows"
        time.sleep(0.1)
    time.sleep(0.5)
    return spend_rows(pg_url, "t.name = %s", (tenant,))


def _is_estimated_timeout(row: dict[str, Any]) -> bool:
    return (row["status"], row["error_class"], row["deployment"], row["estimated"]) == (
        "error", "Timeout", "primary-1", True) and row["prompt_tokens"] > 0 and float(
        row["cost_usd"]) == pytest.approx(row["prompt_tokens"] * PRIMARY_INPUT_PRICE)


def test_timed_out_attempt_is_costed_and_kept_beside_the_answer(
        fault_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    scripted.add_rule("primary-*", HANG)
    tenant, key = new_tenant(pg_url, "timeout-fallback")
    answered = _chat(fault_proxy, key)
    assert answered.status_code == 200
    call_id = answered.headers["x-litellm-call-id"]
    rows = {r["request_id"]: r for r in _rows(pg_url, tenant, 2)}
    assert set(rows) == {call_id, f"{call_id}/attempt-1"}
    assert rows[call_id]["status"] == "ok" and not rows[call_id]["estimated"]
    assert _is_estimated_timeout(rows[f"{call_id}/attempt-1"])


def test_timed_out_request_counts_against_the_budget(
        fault_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    scripted.add_rule("primary-*", HANG)
    scripted.add_rule("backup-*", HANG)
    tenant, key = new_tenant(pg_url, "timeout-budget", budget="0.00002")  # < one prompt
    failed = _chat(fault_proxy, key)
    assert failed.status_code == 408
    call_id = failed.headers["x-litellm-call-id"]
    rows = {r["request_id"]: r for r in _rows(pg_url, tenant, 2)}  # primary's, then backup's
    assert set(rows) == {call_id, f"{call_id}/attempt-2"}
    row, backup = rows[call_id], rows[f"{call_id}/attempt-2"]
    assert _is_estimated_timeout(row)
    assert float(row["cost_usd"]) > 0.00002
    assert (backup["deployment"], backup["error_class"], backup["estimated"]) == (
        "backup-1", "Timeout", True) and float(backup["cost_usd"]) > 0
    refused = _chat(fault_proxy, key)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "budget_exceeded"
