"""CLI polish: every option says what it does; an unreachable Redis or PostgreSQL is one
line and a non-zero exit within seconds; `pool confirm` with nothing pending and an
unknown agent are errors at once."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pytest

from llm_pool.cli import build_parser
from llm_pool.runtime import free_port

QUICK = 15.0  # seconds: generous for a loaded machine; the old behaviour took 33-60 s


def _subparsers(parser: argparse.ArgumentParser, path: str = "pool"
                ) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subparsers(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = [f"{path} {action.option_strings or action.dest}"
               for path, parser in _subparsers(build_parser())
               for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
               and not action.help]
    assert missing == []


def _pool(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "llm_pool.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)
    return done, time.monotonic() - started


@pytest.mark.parametrize("args", [("events", "c1"), ("send", "hi", "--tenant", "t",
                                                      "--conversation", "c1", "--wait", "0"),
                                  ("confirm", "c1", "--no")])
def test_unreachable_redis_is_one_line_and_quick(args: tuple[str, ...]) -> None:
    done, took = _pool(*args, POOL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1, done
    assert done.stderr.strip().startswith("pool: cannot reach Redis at redis://127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert took < QUICK


@pytest.mark.parametrize("args", [("tenants", "list"), ("spend",), ("db", "migrate")])
def test_unreachable_postgres_is_one_line_and_quick(args: tuple[str, ...]) -> None:
    done, took = _pool(*args,
                       POOL_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert done.returncode == 1, done
    assert done.stderr.startswith("pool: cannot connect to PostgreSQL at ")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert took < QUICK


def test_confirm_with_nothing_pending_says_so_at_once(redis_url: str, redis_prefix: str) -> None:
    done, took = _pool("confirm", "no-such-conversation", "--no", POOL_REDIS_URL=redis_url,
                       POOL_NAMESPACE=redis_prefix)
    assert done.returncode == 1
    assert "nothing is waiting for a confirmation in conversation no-such-conversation" \
        in done.stderr
    assert took < QUICK


def test_confirm_without_a_decision_is_one_clear_line(redis_url: str, redis_prefix: str) -> None:
    done, _ = _pool("confirm", "c1", POOL_REDIS_URL=redis_url, POOL_NAMESPACE=redis_prefix)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pool confirm: invalid answer: say --yes or --no (every pending call), or decide call "
        "by call with --approve CALL_ID / --decline CALL_ID")


def test_events_of_an_unknown_conversation_is_an_error(redis_url: str, redis_prefix: str
                                                       ) -> None:
    done, _ = _pool("events", "no-such-conversation", POOL_REDIS_URL=redis_url,
                    POOL_NAMESPACE=redis_prefix)
    assert done.returncode == 1 and done.stdout == ""
    assert "no events for conversation no-such-conversation" in done.stderr


def test_unknown_agent_is_an_error(redis_url: str, redis_prefix: str) -> None:
    done, _ = _pool("send", "hello", "--tenant", "t", "--conversation", "c1", "--agent", "nobody",
                    "--wait", "0", POOL_REDIS_URL=redis_url, POOL_NAMESPACE=redis_prefix)
    assert done.returncode == 2
    assert "unknown agent 'nobody'" in done.stderr and "helpdesk" in done.stderr


def test_db_migrate_creates_a_missing_database(pg_url: str) -> None:
    import uuid

    import psycopg

    name = f"llm_pool_test_new_{uuid.uuid4().hex[:8]}"
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    try:
        done, _ = _pool("db", "migrate", POOL_DATABASE_URL=url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == f"created database {name}"
        assert "applied 0001_tenants_keys_spend" in done.stdout
        again, _ = _pool("db", "migrate", POOL_DATABASE_URL=url)
        assert again.stdout.strip() == "database is up to date"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
