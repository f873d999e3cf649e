"""`pool worker` warns when Redis keeps nothing on disk (a private redis-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.faults.test_redis_restart import RedisServer
from worker.broker import persistence_warning

pytestmark = pytest.mark.integration  # starts a redis-server of its own


@pytest.fixture
def bare_redis(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    server = RedisServer(tmp_path, ["--save", "", "--appendonly", "no"])
    server.start()
    yield server.url, redis.Redis.from_url(server.url)
    server.crash()  # a SIGTERM would make it write its data first


def test_warns_only_when_redis_persists_nothing(bare_redis: tuple[str, redis.Redis]) -> None:
    _, client = bare_redis
    warning = persistence_warning(client)
    assert warning is not None and "appendonly no" in warning
    assert "Production Redis settings" in warning
    client.config_set("save", "3600 1")
    assert persistence_warning(client) is None
    client.config_set("save", "")
    client.config_set("appendonly", "yes")
    assert persistence_warning(client) is None


def test_pool_worker_prints_the_warning_at_start(bare_redis: tuple[str, redis.Redis]) -> None:
    url, _ = bare_redis
    proc = subprocess.Popen([sys.executable, "-m", "llm_pool.cli", "worker", "--threads", "1"],
                            env={"POOL_REDIS_URL": url, "POOL_API_KEY": "sk-any",
                                 "PATH": "/usr/bin:/bin"},
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert first.startswith("warning: Redis keeps nothing on disk")
