"""Unit tests of the per-process limits (the rules the Redis Lua runs too), the ticket
book's attempt rows, and the settings and CLI edges of the shared state."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from llm_pool.commands.runtime import default_workers
from llm_pool.configcheck import check_text
from proxy.admission.limits import Ask, LocalLimits, Ticket
from proxy.admission.tickets import TicketBook
from proxy.errors import ConfigError
from proxy.settings import ProxySettings
from proxy.spend.rows import SpendRow, row_from_json, row_to_json


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ask(**changes: object) -> Ask:
    values: dict[str, object] = dict(
        request_id="r", tenant_id=1, tenant="acme", rpm=None, tpm=None, budget=None,
        prompt_tokens=10, completion_tokens=100, input_price=0.0, output_price=0.0)
    values.update(changes)
    return Ask(**values)  # type: ignore[arg-type]


def test_rpm_is_a_sliding_window() -> None:
    clock = Clock()
    limits = LocalLimits(900, clock=clock)
    kinds = [limits.admit(ask(rpm=2), f"t{i}", 0).kind for i in range(3)]
    assert kinds == ["ok", "ok", "rpm"]
    clock.now += 59
    assert limits.admit(ask(rpm=2), "t3", 0).kind == "rpm"
    clock.now += 1.5
    assert limits.admit(ask(rpm=2), "t4", 0).kind == "ok"


def test_tpm_reserves_then_settles_to_the_real_size() -> None:
    limits = LocalLimits(900, clock=Clock())
    first = limits.admit(ask(tpm=1000, completion_tokens=90), "a", 0)
    assert (first.kind, first.completion_tokens) == ("ok", 90)
    assert limits.admit(ask(tpm=1000, completion_tokens=900), "b", 0).kind == "tpm"
    limits.settle(Ticket(ask(), True, 90, 0.0, id="a"), tokens=20)
    assert limits.admit(ask(tpm=1000, completion_tokens=900), "c", 0).kind == "ok"


def test_the_completion_counted_is_the_ask_never_a_history() -> None:
    limits = LocalLimits(900, clock=Clock())
    assert limits.admit(ask(tpm=10**6), "a", 0).completion_tokens == 100
    for size in range(1, 101):  # short answers teach the limits nothing
        limits.settle(Ticket(ask(), False, 0, 0.0, id="x"), tokens=size)
    assert limits.admit(ask(tpm=10**6), "b", 0).completion_tokens == 100
    assert not hasattr(limits, "estimate")


def test_budget_reserves_and_the_last_request_may_cross() -> None:
    limits = LocalLimits(900, clock=Clock())
    priced = ask(budget=1.0, completion_tokens=100, output_price=0.004)  # $0.40 each
    assert limits.admit(priced, "a", spent=0.5).kind == "ok"  # nothing reserved: may cross
    refused = limits.admit(priced, "b", spent=0.5)
    assert (refused.kind, refused.reserved) == ("budget", pytest.approx(0.4))
    limits.settle(Ticket(priced, False, 100, 0.4, id="a"), tokens=110)
    assert limits.admit(priced, "c", spent=1.0).kind == "budget"  # spent: refused outright


def test_reservations_of_a_dead_request_expire() -> None:
    clock = Clock()
    limits = LocalLimits(10, clock=clock)
    priced = ask(budget=1.0, completion_tokens=100, output_price=0.004)
    limits.admit(priced, "a", spent=0.5)
    assert limits.admit(priced, "b", spent=0.5).kind == "budget"
    clock.now += 11
    assert limits.reserved(1) == pytest.approx(0.4)  # until the next admission prunes it
    assert limits.admit(priced, "c", spent=0.5).kind == "ok"


def _row(status: str, deployment: str | None, error: str | None = None) -> SpendRow:
    return SpendRow(request_id="call", tenant_id=1, key_label="k", call_type="acompletion",
                    model_alias="primary", deployment=deployment, provider_model=None,
                    prompt_tokens=0, completion_tokens=5 if status == "ok" else 0,
                    cost_usd=0.01 if status == "ok" else 0.0, latency_ms=None, status=status,
                    error_class=error, created_at=datetime(2026, 1, 2, tzinfo=UTC))


def test_failed_attempts_keep_their_rows_and_timeouts_are_costed() -> None:
    book = TicketBook(900)
    ticket = Ticket(ask(prompt_tokens=40, input_price=0.001), True, 0, 0.0)
    book.add("call", ticket)
    first = book.settle(_row("error", "primary-1", "Timeout"))
    assert first.release is ticket and first.row.request_id == "call"
    assert (first.row.estimated, first.row.cost_usd) == (True, pytest.approx(0.04))
    second = book.settle(_row("error", "backup-1", "InternalServerError"))
    assert second.release is None and second.row.request_id == "call/attempt-2"
    assert (second.row.estimated, second.row.cost_usd) == (False, 0.0)  # an error answer
    done = book.settle(_row("ok", "backup-1"))
    assert done.row.request_id == "call" and not done.row.estimated
    assert [r.request_id for r in done.earlier] == ["call/attempt-1"]
    assert done.earlier[0].estimated and len(book) == 0


def test_spend_row_round_trips_through_the_journal_json() -> None:
    row = _row("error", "primary-1", "Timeout")
    assert row_from_json(row_to_json(row)) == row


def test_shared_state_settings() -> None:
    assert ProxySettings.from_env({}).redis_url is None
    settings = ProxySettings.from_env({"POOL_REDIS_URL": "redis://r:6379/0",
                                         "POOL_NAMESPACE": "team", "POOL_LIMITS_FAIL_CLOSED": "1"})
    assert (settings.redis_url, settings.namespace, settings.limits_fail_closed) == (
        "redis://r:6379/0", "team", True)
    with pytest.raises(ConfigError, match="POOL_LIMITS_FAIL_CLOSED"):
        ProxySettings.from_env({"POOL_LIMITS_FAIL_CLOSED": "maybe"})


def test_optional_redis_env_is_never_a_strict_error() -> None:
    text = ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, "
            "input_cost_per_token: 0, output_cost_per_token: 0}\n"
            "router_settings:\n  redis_url: os.environ/POOL_REDIS_URL\n")
    assert [p.severity for p in check_text(text, {})] == ["warning"]


def test_proxy_workers_default_to_the_cpu_count() -> None:
    assert default_workers() >= 1
    from llm_pool.cli import build_parser

    args = build_parser().parse_args(["proxy"])
    assert isinstance(args, argparse.Namespace) and args.workers is None  # -> default_workers()


def test_key_identity_round_trips_through_the_shared_key_cache() -> None:
    import dataclasses
    import json

    from proxy.admission.keycache import identity_from_json
    from proxy.storage.tenants import Caps, KeyIdentity

    identity = KeyIdentity(key_id=1, label="svc", tenant_id=2, tenant="acme",
                           monthly_budget_usd=5.0, rpm_limit=60, tpm_limit=None, revoked=False,
                           caps=Caps(max_n=2, max_tokens=100, max_prompt_tokens=None))
    assert identity_from_json(json.dumps(dataclasses.asdict(identity))) == identity
