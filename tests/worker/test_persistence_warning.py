"""`pool worker` warns when Redis keeps nothing on disk (a private redis-server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from worker.broker import persistence_warning


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def bare_redis(tmp_path: object) -> Iterator[tuple[str, redis.Redis]]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)
    yield url, client
    proc.kill()  # a SIGTERM would make it write its data first
    proc.wait()


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
