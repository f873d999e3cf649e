"""``pool db|tenants|keys|spend`` against the real (migrated) test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from llm_pool.cli import main
from proxy.storage.reports import month_start
from proxy.storage.tenants import hash_key
from tests.gateway.support import unique

pytestmark = pytest.mark.integration

Pool = Callable[..., tuple[int, str, str]]


@pytest.fixture
def pool(pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
         ) -> Pool:
    """``pool ...`` on the test database: returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("POOL_DATABASE_URL", pg_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_migrate_is_idempotent(pool: Pool) -> None:
    assert pool("db", "migrate") == (0, "database is up to date\n", "")


def test_tenant_caps(pool: Pool, pg_url: str) -> None:
    name = unique("caps")
    code, out, _ = pool("tenants", "add", name, "--max-n", "8", "--max-tokens", "1000",
                        "--max-prompt-tokens", "5000")
    assert code == 0 and "max_n 8, max_tokens 1000, max_prompt_tokens 5000" in out
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT max_n, max_tokens, max_prompt_tokens FROM tenants "
                            "WHERE name = %s", (name,)).fetchone() == (8, 1000, 5000)
    code, _, err = pool("tenants", "add", unique("caps"), "--max-n", "0")
    assert code == 2 and "max_n" in err


def test_tenants_and_keys(pool: Pool, pg_url: str) -> None:
    name = unique("cli")
    code, out, _ = pool("tenants", "add", name, "--budget", "50", "--rpm", "600", "--tpm", "9000")
    assert (code, out) == (0, f"tenant {name} created (budget 50.00 USD/month, rpm 600, "
                              "tpm 9000, max_n default (4), max_tokens default (16384), "
                              "max_prompt_tokens default (131072); '-' is none)\n")
    assert pool("tenants", "add", name)[0:3:2] == (1, f"pool: tenant '{name}' already exists\n")
    assert pool("tenants", "add", "Bad Name")[0] == 2
    code, key, err = pool("keys", "create", name, "--label", "svc")
    key = key.strip()
    assert code == 0 and key.startswith("sk-pool-") and len(key) > 40 and "shown only now" in err
    with psycopg.connect(pg_url) as conn:  # only the hash is stored
        stored = conn.execute("SELECT key_hash, key_prefix FROM api_keys WHERE label = 'svc' "
                              "AND tenant_id = (SELECT id FROM tenants WHERE name = %s)",
                              (name,)).fetchone()
    assert stored == (hash_key(key), key[:16])
    listed = pool("tenants", "list")[1]
    assert any(line.split()[:5] == [name, "50.00", "0.000000", "600", "9000"]
               and line.split()[-2] == "1" for line in listed.splitlines())  # 1 active key
    assert pool("keys", "revoke", "sk-pool-")[0] == 1  # too short to be a prefix
    assert pool("keys", "revoke", key[:14]) == (
        0, f"revoked key 'svc' ({key[:16]}...) of tenant {name}\n", "")
    assert "revoked" in pool("keys", "list", name)[1]
    assert pool("keys", "revoke", key)[0:3:2] == (
        1, f"pool: no active key matches {key!r} (a full key, its prefix, or its label)\n")


def test_ambiguous_label_is_refused(pool: Pool) -> None:
    first, second = unique("amb"), unique("amb")
    for tenant in (first, second):
        pool("tenants", "add", tenant)
        pool("keys", "create", tenant, "--label", "shared-label")
    code, _, err = pool("keys", "revoke", "shared-label")
    assert code == 1 and "matches 2 active keys" in err
    assert pool("keys", "revoke", f"{first}/shared-label")[0] == 0


def test_spend_report_table_and_json(pool: Pool, pg_url: str) -> None:
    name = unique("report")
    pool("tenants", "add", name)
    now = datetime.now(UTC)
    rows = [  # (model, key, prompt, completion, cost, status, created_at)
        ("fast", "a", 100, 10, "0.001", "ok", now),
        ("fast", "b", 200, 20, "0.002", "ok", now),
        ("quality", "a", 300, 30, "0.5", "ok", now),
        ("quality", "a", 0, 0, "0", "error", now),
        ("fast", "a", 999, 999, "9", "ok", datetime(2020, 1, 1, tzinfo=UTC)),  # before --since
    ]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
        for i, (model, key, p, c, cost, status, at) in enumerate(rows):
            conn.execute(
                "INSERT INTO spend (request_id, tenant_id, key_label, call_type, model_alias, "
                "prompt_tokens, completion_tokens, cost_usd, status, created_at) "
                "VALUES (%s, %s, %s, 'acompletion', %s, %s, %s, %s, %s, %s)",
                (f"{name}-{i}", tenant_id[0] if tenant_id else None, key, model, p, c, cost,
                 status, at))
    since = month_start().date().isoformat()

    code, out, _ = pool("spend", "--tenant", name, "--by", "model", "--since", since, "--json")
    assert code == 0
    assert json.loads(out) == {
        "since": since, "by": "model",
        "rows": [
            {"tenant": name, "model": "fast", "requests": 2, "errors": 0, "prompt_tokens": 300,
             "completion_tokens": 30, "cost_usd": 0.003},
            {"tenant": name, "model": "quality", "requests": 2, "errors": 1,
             "prompt_tokens": 300, "completion_tokens": 30, "cost_usd": 0.5}],
        "total": {"tenant": "TOTAL", "model": "", "requests": 4, "errors": 1,
                  "prompt_tokens": 600, "completion_tokens": 60, "cost_usd": 0.503}}

    code, out, _ = pool("spend", "--tenant", name, "--by", "key", "--since", since)
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["spend", "since", since, "(UTC)"],
        ["tenant", "key", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd"],
        ["-" * len(name), "---", "--------", "------", "-------------", "-----------------",
         "--------"],
        [name, "a", "3", "1", "400", "40", "0.501000"],
        [name, "b", "1", "0", "200", "20", "0.002000"],
        ["TOTAL", "4", "1", "600", "60", "0.503000"]]

    everything = json.loads(pool("spend", "--tenant", name, "--since", "2019-12-31",
                                 "--json")[1])
    assert everything["total"]["requests"] == 5 and everything["rows"][0]["cost_usd"] == 9.503
    day = json.loads(pool("spend", "--tenant", name, "--by", "day", "--json")[1])
    assert [r["day"] for r in day["rows"]] == [now.date().isoformat()]
    assert pool("spend", "--since", "yesterday")[0] == 2
    assert pool("spend", "--tenant", "no-such-tenant")[0:3:2] == (
        1, "pool: no tenant named 'no-such-tenant' (see `pool tenants list`)\n")


@pytest.mark.parametrize("command", ["check-config", "proxy"])
def test_a_bad_proxy_setting_is_one_line_naming_the_variable(
        command: str, proxy_env: dict[str, str], repo_root: Path) -> None:
    config = repo_root / "config" / "offline.yaml"
    env = {**os.environ, **proxy_env, "POOL_SPEND_BATCH_SIZE": "abc"}
    port = ["--port", "1"] if command == "proxy" else []
    with subprocess.Popen([sys.executable, "-m", "llm_pool.cli", command, "--config",
                           str(config), *port], env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True) as running:
        try:
            out, err = running.communicate(timeout=60)
        finally:
            if running.poll() is None:  # it started after all
                os.killpg(running.pid, signal.SIGKILL)
    errors = [line for line in (out + err).splitlines() if ": error: " in line]
    assert running.returncode in (1, 2) and errors == [
        f"{config}: error: environment: POOL_SPEND_BATCH_SIZE: expected an integer, "
        "got 'abc'"], out + err
