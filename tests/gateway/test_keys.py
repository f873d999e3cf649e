"""Forged keys against the real proxy: 2,000 keys with a valid CRC32 (the old, public
checksum) or a well-formed HMAC made with another secret cost no key lookup and next to
no PostgreSQL transactions; real keys of every format (3, and 2 and 1 while such keys
are active) still work."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from llm_pool.runtime import ProxyProcess
from proxy.storage.tenants import generate_key, hash_key
from tests.gateway.support import metric, new_tenant
from tests.gateway.test_keys_units import crc_key
from tests.gateway.test_series import NEW_SERIES_MAX, series

pytestmark = pytest.mark.integration

FORGED = 2000
HI = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
BACKGROUND_XACTS_MAX = 200  # the proxies' own work meanwhile (budget reads, spend writes)
GATE_TTL = 5.0  # POOL_AUTH_CACHE_TTL of the shared proxy: how often active formats are re-read


def _xacts(pg_url: str) -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0])


def _status(url: str, key: str) -> int:
    return httpx.post(f"{url}/v1/chat/completions", json=HI, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}).status_code


def test_forged_keys_cost_no_lookup(offline_proxy: ProxyProcess, pg_url: str) -> None:
    _, real = new_tenant(pg_url, "keys")
    assert _status(offline_proxy.url, real) == 200  # the gate is read, the proxy warm
    forged = [crc_key() if i % 2 else generate_key(secrets.token_bytes(32))
              for i in range(FORGED)]
    misses = metric(offline_proxy.url, "pool_key_cache_misses_total")
    known_series = series(offline_proxy.url)
    before = _xacts(pg_url)
    started = time.monotonic()
    with httpx.Client(base_url=offline_proxy.url, timeout=60) as client, \
            ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda key: client.post(
            "/v1/chat/completions", json=HI,
            headers={"Authorization": f"Bearer {key}"}).status_code, forged))
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # PostgreSQL flushes its statistics at most every second
    xacts = _xacts(pg_url) - before
    lookups = metric(offline_proxy.url, "pool_key_cache_misses_total") - misses
    added = series(offline_proxy.url) - known_series
    print(f"{FORGED} forged keys in {elapsed:.1f} s: {lookups:.0f} key lookups, "
          f"{xacts} PostgreSQL transactions, {len(added)} new series")
    assert statuses == [401] * FORGED
    assert lookups == 0
    assert xacts < BACKGROUND_XACTS_MAX
    assert len(added) < NEW_SERIES_MAX, sorted(added)[:10]  # no series per forged key


def _insert_key(pg_url: str, tenant: str, key: str, key_format: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO api_keys (tenant_id, key_hash, key_prefix, label, key_format) "
                     "SELECT id, %s, %s, %s, %s FROM tenants WHERE name = %s",
                     (hash_key(key), key[:16], f"format-{key_format}", key_format, tenant))


def _wait_status(url: str, key: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (status := _status(url, key)) != expected:
        assert time.monotonic() < deadline, f"{key[:12]}...: {status}, expected {expected}"
        time.sleep(0.5)


def test_real_keys_of_every_format_work(offline_proxy: ProxyProcess, pg_url: str) -> None:
    tenant, new = new_tenant(pg_url, "formats")
    assert _status(offline_proxy.url, new) == 200
    old_crc, legacy = crc_key(), "sk-pool-" + secrets.token_urlsafe(32)
    _insert_key(pg_url, tenant, old_crc, 2)
    _insert_key(pg_url, tenant, legacy, 1)
    try:  # the proxy sees the older formats active at its next read of them
        _wait_status(offline_proxy.url, old_crc, 200, GATE_TTL + 30)
        _wait_status(offline_proxy.url, legacy, 200, GATE_TTL + 30)
        assert _status(offline_proxy.url, crc_key()) == 401  # looked up now, and unknown
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_format < 3")
    _wait_status(offline_proxy.url, old_crc, 401, GATE_TTL + 30)


def test_the_cli_makes_keys_with_the_databases_secret_and_marks_old_ones(
        pg_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from llm_pool.cli import main
    from proxy.storage.tenants import KEY_FORMAT_HMAC, key_format, key_secret

    monkeypatch.setenv("POOL_DATABASE_URL", pg_url)
    tenant, _ = new_tenant(pg_url, "cli-keys")
    assert main(["keys", "create", tenant, "--label", "svc"]) == 0
    key = capsys.readouterr().out.strip()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        secret = key_secret(conn)
        stored = conn.execute("SELECT key_format FROM api_keys WHERE key_hash = %s",
                              (hash_key(key),)).fetchone()
    assert key_format(key, secret) == KEY_FORMAT_HMAC and stored == (KEY_FORMAT_HMAC,)
    assert key_format(key, secrets.token_bytes(32)) is None
    _insert_key(pg_url, tenant, crc_key(), 2)
    try:
        assert main(["keys", "list", tenant]) == 0
        listed = capsys.readouterr().out
        assert listed.count("active (old format: replace it)") == 1
        assert listed.count("active") == 3  # main, svc, format-2
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_format < 3")
