"""The provider misbehaves; callers use the SDK through the real proxy with a tenant key.

For each fault, ``REQUESTS`` concurrent requests go to ``primary`` (falls back to
``backup``, see ``faults.yaml``). Either only ``primary`` is broken, and every
request is answered by ``backup``; or both are, and every request fails fast with
a clear error the SDK types. Either way: each request hits each deployment exactly
once (no retry storm), nothing hangs, and there is exactly one spend row per
request, ``ok`` or ``error``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess
from sdk import (
    Completion,
    Gateway,
    GatewayError,
    ProviderUnavailableError,
    RateLimitedError,
    RetryPolicy,
)
from tests.faults.conftest import ROUTER_TIMEOUT
from tests.gateway.support import new_tenant, spend_rows

pytestmark = pytest.mark.integration

REQUESTS = 3
PROMPT = "please answer this"
ANSWER = f"Hi! (backup-1) You said: {PROMPT}"
SLOWEST_FAILURE = 2 * ROUTER_TIMEOUT + 2.0  # primary then backup time out, plus slack


@dataclass(frozen=True)
class Fault:
    step: dict[str, Any]
    error: type[GatewayError]  # what the SDK raises when every group has this fault
    status: int | None  # ... and the HTTP status it carries
    stream: bool = False


FAULTS = {
    "500": Fault({"status": 500, "error_message": "upstream exploded"},
                 ProviderUnavailableError, 503),
    "429-retry-after": Fault({"status": 429, "retry_after": 7}, RateLimitedError, 429),
    "hang": Fault({"delay": ROUTER_TIMEOUT + 1.5, "text": "too late"},
                  ProviderUnavailableError, 408),
    "malformed-json": Fault({"malformed": True}, ProviderUnavailableError, 503),
    # the connection breaks before the first content chunk: nothing reached the caller,
    # so another group can still answer (a break after content: see the test below)
    "stream-cut": Fault({"cut": True, "cut_after": 0, "text": "one two three four"},
                        ProviderUnavailableError, 503, stream=True),
}


def _ask(gateway: Gateway, fault: Fault) -> tuple[Completion | GatewayError, float]:
    started = time.monotonic()
    try:
        if fault.stream:
            with gateway.stream("primary", PROMPT) as stream:
                outcome: Completion | GatewayError = stream.completion
        else:
            outcome = gateway.complete("primary", PROMPT)
    except GatewayError as exc:
        outcome = exc
    return outcome, time.monotonic() - started


def _burst(proxy: ProxyProcess, key: str, fault: Fault
           ) -> list[tuple[Completion | GatewayError, float]]:
    gateway = Gateway(proxy.url, key, retry=RetryPolicy(attempts=1))
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return list(pool.map(lambda _: _ask(gateway, fault), range(REQUESTS)))


def _tenant_rows(pg_url: str, tenant: str, count: int, timeout: float = 15.0
                 ) -> list[dict[str, Any]]:
    """The tenant's spend rows once ``count`` are written (and a flush later, no more)."""
    deadline = time.monotonic() + timeout
    while len(rows := spend_rows(pg_url, "t.name = %s", (tenant,))) < count:
        assert time.monotonic() < deadline, f"{len(rows)} of {count} spend rows after {timeout} s"
        time.sleep(0.1)
    time.sleep(0.5)  # a few flush intervals: a duplicate would show now
    return spend_rows(pg_url, "t.name = %s", (tenant,))


def _tried(scripted: ScriptedProvider) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in scripted.requests():
        counts[request["model"]] = counts.get(request["model"], 0) + 1
    return counts


@pytest.mark.parametrize("name", FAULTS)
def test_fallback_group_answers_when_primary_fails(
        name: str, fault_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    fault = FAULTS[name]
    scripted.add_rule("primary-*", fault.step)
    tenant, key = new_tenant(pg_url, f"fault-{name}")

    outcomes = _burst(fault_proxy, key, fault)

    for outcome, _ in outcomes:
        assert isinstance(outcome, Completion), f"{name}: {outcome!r}"
        assert (outcome.deployment, outcome.text) == ("backup-1", ANSWER)
        assert outcome.finish_reason == "stop"
    assert _tried(scripted) == {"primary-1": REQUESTS, "backup-1": REQUESTS}
    rows = _tenant_rows(pg_url, tenant, 2 * REQUESTS)
    answers = [r for r in rows if r["status"] == "ok"]
    assert [(r["deployment"], r["model_alias"]) for r in answers] == \
        [("backup-1", "backup")] * REQUESTS
    assert all(r["cost_usd"] > 0 for r in answers)
    # the failed attempt reached the provider: it keeps its own row
    attempts = sorted(r["request_id"] for r in rows if r["status"] == "error")
    assert attempts == sorted(f"{r['request_id']}/attempt-1" for r in answers)


@pytest.mark.parametrize("name", FAULTS)
def test_every_group_down_is_a_clear_typed_error_never_a_hang(
        name: str, fault_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    fault = FAULTS[name]
    scripted.add_rule("primary-*", fault.step)
    scripted.add_rule("backup-*", fault.step)
    tenant, key = new_tenant(pg_url, f"down-{name}")

    outcomes = _burst(fault_proxy, key, fault)

    for outcome, seconds in outcomes:
        assert type(outcome) is fault.error, f"{name}: {outcome!r}"
        assert outcome.status == fault.status
        assert outcome.message and "Traceback" not in outcome.message
        assert seconds < SLOWEST_FAILURE, f"{name}: the caller waited {seconds:.1f} s"
        if isinstance(outcome, RateLimitedError):
            assert outcome.retry_after == 7  # the provider's Retry-After reaches the caller
    # once each: no retry storm
    assert _tried(scripted) == {"primary-1": REQUESTS, "backup-1": REQUESTS}
    # each failed call keeps its row: the request's and <id>/attempt-2
    rows = _tenant_rows(pg_url, tenant, 2 * REQUESTS)
    assert [r["status"] for r in rows] == ["error"] * 2 * REQUESTS
    assert all(r["error_class"] for r in rows)
    firsts = sorted(r["request_id"] for r in rows if "/" not in r["request_id"])
    assert sorted(r["request_id"] for r in rows if "/" in r["request_id"]) == \
        [f"{i}/attempt-2" for i in firsts] and len(firsts) == REQUESTS
    if name != "stream-cut":  # LiteLLM logs a stream's failure from a task that runs once
        # the router has moved on to the backup: that row names the backup (left open: a fix
        # needs an attempt-scoped copy of the logging details, i.e. a LiteLLM patch)
        assert sorted(r["request_id"] for r in rows if r["deployment"] == "primary-1") == firsts


def test_stream_cut_after_content_is_a_typed_error_not_a_spliced_answer(
        fault_proxy: ProxyProcess, scripted: ScriptedProvider, pg_url: str) -> None:
    """Once content has reached the caller, a fallback would splice two answers: the
    caller gets a typed error instead, and the backup group is never asked."""
    scripted.add_rule("primary-*", {"cut": True, "cut_after": 3, "cut_delay": 1.5,
                                    "text": "one two three four five six seven eight"})
    _, key = new_tenant(pg_url, "fault-cut-after-content")

    outcomes = _burst(fault_proxy, key, FAULTS["stream-cut"])

    for outcome, seconds in outcomes:
        assert type(outcome) is ProviderUnavailableError, repr(outcome)
        assert "Traceback" not in outcome.message
        assert seconds < SLOWEST_FAILURE
    assert _tried(scripted) == {"primary-1": REQUESTS}
