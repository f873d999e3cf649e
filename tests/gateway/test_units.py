"""Unit tests of the gateway code: no proxy, no PostgreSQL."""

from __future__ import annotations

import asyncio
import atexit
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy.admission.budget import BudgetExceeded, format_usd
from proxy.context import MASTER, TenantContext, to_metadata
from proxy.edge.caps import Limits
from proxy.errors import ConfigError, InvalidInput
from proxy.plugin.auth import KeyResolver, StoreDown
from proxy.settings import ProxySettings
from proxy.spend.rows import SpendRow, dedupe, row_from_payload
from proxy.storage.db import discover_migrations
from proxy.storage.tenants import Caps, KeyIdentity, hash_key, parse_budget


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "chatcmpl-1", "litellm_call_id": "call-1", "call_type": "acompletion",
        "status": "success", "model": "openai/fast-1", "model_id": "fast-1",
        "model_group": "fast", "api_base": "http://127.0.0.1:1/v1", "prompt_tokens": 10,
        "completion_tokens": 5, "response_cost": 0.25, "startTime": 100.0, "endTime": 100.5,
        "request_tags": ["a"], "error_information": {"error_class": ""},
        "metadata": {"user_api_key_alias": "svc", "user_api_key_auth_metadata": to_metadata(
            TenantContext(7, "acme", None, None, None, Limits(4, 100, 1000)))},
    }
    base.update(overrides)
    return base


def test_success_payload_row() -> None:
    row = row_from_payload(payload())
    assert row is not None
    assert (row.request_id, row.tenant_id, row.key_label, row.model_alias, row.deployment,
            row.provider_model, row.prompt_tokens, row.completion_tokens, row.cost_usd,
            row.latency_ms, row.status, row.error_class, row.tags) == (
        "call-1", 7, "svc", "fast", "fast-1", "openai/fast-1", 10, 5, 0.25, 500.0, "ok", None,
        ["a"])
    assert row.created_at.timestamp() == 100.0


def test_rows_carry_time_to_first_token_and_the_error_message() -> None:
    row = row_from_payload(payload(completionStartTime=100.125))
    assert row is not None and (row.ttfb_ms, row.error_message) == (125.0, None)
    failed = row_from_payload(payload(status="failure", error_information={
        "error_class": "ServiceUnavailableError", "error_message": "x" * 5000}))
    assert failed is not None and failed.ttfb_ms is None
    assert failed.error_message == "x" * 1000  # bounded (ERROR_MESSAGE_MAX)


def test_rejected_before_routing_has_no_deployment() -> None:
    row = row_from_payload(payload(status="failure", api_base="", response_cost=0.0,
                                   error_information={"error_class": "BudgetExceeded"}))
    assert row is not None
    assert (row.status, row.error_class, row.deployment, row.provider_model) == (
        "error", "BudgetExceeded", None, None)


def test_master_key_and_unknown_principals() -> None:
    master = row_from_payload(payload(metadata={"user_api_key_auth_metadata": to_metadata(
        MASTER)}))
    assert master is not None and (master.tenant_id, master.key_label) == (None, "master key")
    # a request custom_auth itself rejected carries no principal: not spend
    assert row_from_payload(payload(metadata={"user_api_key_hash": "sk-raw"})) is None
    assert row_from_payload(None) is None


def _row(request_id: str, status: str, cost: float = 0.0) -> SpendRow:
    return SpendRow(request_id=request_id, tenant_id=1, key_label="k", call_type="acompletion",
                    model_alias="fast", deployment="fast-1", provider_model=None,
                    prompt_tokens=0, completion_tokens=0, cost_usd=cost, latency_ms=None,
                    status=status, error_class=None if status == "ok" else "E")


def test_dedupe_success_wins_then_latest() -> None:
    rows = [_row("a", "error"), _row("a", "ok", 1.0), _row("a", "error"),
            _row("b", "error", 0.1), _row("b", "error", 0.2)]
    kept = {r.request_id: r for r in dedupe(rows)}
    assert (kept["a"].status, kept["a"].cost_usd) == ("ok", 1.0)
    assert kept["b"].cost_usd == 0.2


# ----------------------------------------------------------------- key cache


class FakeStore:
    def __init__(self) -> None:
        self.keys: dict[str, KeyIdentity] = {}
        self.calls = 0
        self.down = False

    async def lookup(self, key_hash: str) -> KeyIdentity | None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down:
            raise psycopg.OperationalError("connection refused")
        return self.keys.get(key_hash)


def identity(revoked: bool = False) -> KeyIdentity:
    return KeyIdentity(key_id=1, label="svc", tenant_id=3, tenant="acme",
                       monthly_budget_usd=50.0, rpm_limit=600, tpm_limit=None, revoked=revoked)


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


def resolver(store: FakeStore, clock: list[float]) -> KeyResolver:
    return KeyResolver(store.lookup, ttl=5.0, max_stale=60.0, clock=lambda: clock[0])


def test_lookups_are_cached_for_the_ttl_then_refreshed(clock: list[float]) -> None:
    store, h = FakeStore(), hash_key("sk-pool-x")
    store.keys[h] = identity()
    keys = resolver(store, clock)

    async def scenario() -> None:
        first = await keys.resolve(h)
        assert first.auth is not None and first.auth.team_id == "acme"
        assert first.identity is not None and first.identity.rpm_limit == 600
        assert first.auth.api_key == h
        clock[0] += 4.9
        await keys.resolve(h)
        assert store.calls == 1
        store.keys[h] = identity(revoked=True)
        clock[0] += 0.2
        revoked = await keys.resolve(h)
        assert store.calls == 2 and revoked.auth is None and revoked.identity is not None

    asyncio.run(scenario())


def test_unknown_keys_are_cached_too_and_lookups_are_single_flight(clock: list[float]) -> None:
    store, h = FakeStore(), hash_key("sk-pool-nope")
    keys = resolver(store, clock)

    async def scenario() -> None:
        entries = await asyncio.gather(*(keys.resolve(h) for _ in range(20)))
        assert all(e.identity is None for e in entries)
        await keys.resolve(h)
        assert store.calls == 1

    asyncio.run(scenario())


def test_known_keys_survive_an_outage_unknown_ones_get_503(clock: list[float]) -> None:
    store, h = FakeStore(), hash_key("sk-pool-x")
    store.keys[h] = identity()
    keys = resolver(store, clock)

    async def scenario() -> None:
        await keys.resolve(h)
        store.down = True
        clock[0] += 30  # expired, but within max_stale
        assert (await keys.resolve(h)).auth is not None
        calls = store.calls
        assert (await keys.resolve(h)).auth is not None
        assert store.calls == calls  # no new attempt during the back-off
        with pytest.raises(StoreDown) as caught:
            await keys.resolve(hash_key("sk-pool-never-seen"))
        assert caught.value.code == "503"
        clock[0] += 31  # beyond max_stale
        with pytest.raises(StoreDown):
            await keys.resolve(h)

    asyncio.run(scenario())


# ----------------------------------------------------------------- budgets, settings, input


def test_budget_error_wire_shape() -> None:
    error = BudgetExceeded("acme", 50.0, 50.123)
    assert (error.code, error.type) == ("429", "budget_exceeded")
    assert error.message == "tenant acme has reached its monthly budget of $50.00 (spent $50.12)"
    assert error.headers == {"x-should-retry": "false"}
    assert (format_usd(0), format_usd(0.0015), format_usd(1234.5)) == (
        "$0.00", "$0.0015", "$1,234.50")


def test_settings_from_env_and_bad_values() -> None:
    settings = ProxySettings.from_env({"POOL_SPEND_BATCH_SIZE": "7",
                                       "POOL_SPEND_FLUSH_INTERVAL": "0.2",
                                       "POOL_DEFAULT_MAX_N": "2", "POOL_MAX_REQUEST_MB": "0.5"})
    assert (settings.spend_batch_size, settings.spend_flush_interval) == (7, 0.2)
    assert settings.auth_cache_ttl == 5.0 and settings.master_key is None
    assert settings.default_caps == Caps(max_n=2, max_tokens=16_384, max_prompt_tokens=131_072)
    assert settings.max_request_bytes == 500_000
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/llm_pool"


@pytest.mark.parametrize(("env", "message"), [
    ({"POOL_SPEND_BATCH_SIZE": "abc"}, "POOL_SPEND_BATCH_SIZE: expected an integer, got 'abc'"),
    ({"POOL_SPEND_BATCH_SIZE": "7.5"}, "POOL_SPEND_BATCH_SIZE: expected an integer, got '7.5'"),
    ({"POOL_DB_TIMEOUT": "soon"}, "POOL_DB_TIMEOUT: expected a number, got 'soon'"),
    ({"POOL_SPEND_FLUSH_INTERVAL": "0"}, "POOL_SPEND_FLUSH_INTERVAL: must be >= 0.01, got '0'"),
    ({"POOL_DEFAULT_MAX_TOKENS": "-1"}, "POOL_DEFAULT_MAX_TOKENS: must be >= 1, got '-1'"),
    ({"POOL_LIMITS_FAIL_CLOSED": "maybe"},
     "POOL_LIMITS_FAIL_CLOSED: expected 1 or 0 (true/false, yes/no, on/off), got 'maybe'"),
    ({"POOL_SPEND_BATCH_SIZE": ""}, "POOL_SPEND_BATCH_SIZE: is set but empty; unset it for "
                                    "the default"),
    ({"POOL_DATABASE_URL": " "}, "POOL_DATABASE_URL: is set but empty"),
    ({"POOL_NAMESPACE": ""}, "POOL_NAMESPACE: is set but empty"),
    ({"POOL_DB_TIMEOUT": "x", "POOL_REDIS_TIMEOUT": "y"},
     "POOL_DB_TIMEOUT: expected a number, got 'x'; POOL_REDIS_TIMEOUT: expected a number"),
])
def test_a_bad_setting_is_an_error_naming_the_variable(env: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        ProxySettings.from_env(env)
    assert str(raised.value).startswith(message), str(raised.value)
    assert raised.value.name == next(iter(env))


def test_optional_settings_take_empty_as_unset_and_the_environment_is_read() -> None:
    settings = ProxySettings.from_env({"LITELLM_MASTER_KEY": "", "POOL_REDIS_URL": "",
                                       "POOL_METRICS_KEY": " "})
    assert (settings.master_key, settings.redis_url, settings.metrics_key) == (None,) * 3
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POOL_SPEND_BUFFER_MAX", "12")
        patch.setenv("POOL_METRICS_KEY", "sk-m")
        from_environ = ProxySettings.from_env()
    assert (from_environ.spend_buffer_max, from_environ.metrics_key) == (12, "sk-m")
    assert ProxySettings.from_env({}).spend_buffer_max == 100_000  # a mapping: only it


def test_budget_parsing() -> None:
    assert str(parse_budget("$50")) == "50" and parse_budget(None) is None
    for bad in ("-1", "abc", "nan", "inf"):
        with pytest.raises(InvalidInput):
            parse_budget(bad)


def test_migrations_are_discovered_in_order_and_misnamed_files_refused(tmp_path: Path) -> None:
    assert [m.version for m in discover_migrations()][:1] == ["0001"]
    (tmp_path / "0002_b.sql").write_text("SELECT 1")
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    assert [m.name for m in discover_migrations(tmp_path)] == ["a", "b"]
    (tmp_path / "oops.sql").write_text("")
    with pytest.raises(ValueError, match=r"NNNN_snake_name\.sql"):
        discover_migrations(tmp_path)


def test_a_slow_store_does_not_hold_requests_of_known_keys(clock: list[float]) -> None:
    store, h = FakeStore(), hash_key("sk-pool-x")
    store.keys[h] = identity()
    keys = resolver(store, clock)
    release = asyncio.Event()

    async def scenario() -> None:
        await keys.resolve(h)
        real = store.lookup

        async def slow(key_hash: str) -> KeyIdentity | None:
            await release.wait()
            return await real(key_hash)

        keys._lookup = slow
        clock[0] += 6  # expired
        started = asyncio.get_running_loop().time()
        entry = await keys.resolve(h)
        assert entry.auth is not None
        assert asyncio.get_running_loop().time() - started < 0.5  # served from the cache
        store.keys[h] = identity(revoked=True)
        release.set()
        await asyncio.sleep(0.01)  # the refresh went on in the background
        assert (await keys.resolve(h)).auth is None

    asyncio.run(scenario())


def test_writer_buffer_is_bounded_and_overflow_is_counted(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    from proxy.spend.rows import SpendWriter

    async def no_database() -> Any:
        raise psycopg.OperationalError("PostgreSQL is away")

    async def scenario() -> SpendWriter:
        writer = SpendWriter(database_url="postgresql://127.0.0.1:1/none", pool=no_database,
                             batch_size=2, flush_interval=0.01, buffer_max=3, retry_max=0.05)
        accepted = [writer.add(_row(f"r{i}", "ok")) for i in range(5)]
        assert accepted == [True, True, True, False, False]
        await asyncio.sleep(0.2)  # the writer retries; nothing is lost from the buffer
        assert writer.buffered == 3 and writer.stats.failed_flushes >= 2
        return writer

    with caplog.at_level("WARNING", logger="llm_pool.spend"):
        writer = asyncio.run(scenario())
    atexit.unregister(writer.flush_sync)  # its rows have nowhere to go
    assert (writer.stats.dropped, writer.stats.queued, writer.stats.written) == (2, 3, 0)
    assert any("spend buffer full" in r.message and "dropped 1" in r.message
               for r in caplog.records)
    assert any("cannot write to PostgreSQL" in r.message for r in caplog.records)


def test_the_cli_side_never_imports_litellm() -> None:
    """``pool tenants/keys/spend`` stay quick: litellm takes seconds to import."""
    import subprocess
    import sys

    code = ("import sys, proxy, proxy.storage.db, proxy.storage.tenants, "
            "proxy.storage.reports, proxy.storage.shared, proxy.settings, "
            "llm_pool.commands.gateway; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'litellm'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
