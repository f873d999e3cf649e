"""Bodies bounded before they are read, against the real proxy: three parallel 300 MiB
bodies, declared (``Content-Length``) or chunked, with and without a key, leave the
proxy's memory where it was, and the proxy answers afterwards."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from llm_pool.runtime import ProxyProcess
from tests.gateway.support import new_tenant

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
BODY = 300 * MIB
PARALLEL = 3
RSS_GROWTH_MAX = 50 * MIB
CHUNK = b"x" * MIB


def _rss(pid: int) -> int:
    """VmRSS of ``pid`` and its descendants (the uvicorn workers), in bytes."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
        pending.extend(int(child) for child in children)
    return total


@contextmanager
def _peak_rss(pid: int) -> Iterator[Callable[[], int]]:
    """The highest RSS seen while the block runs (sampled every 20 ms)."""
    peak = [_rss(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak[0]
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss(pid))


def _huge_post(url: str, key: str | None, chunked: bool) -> int:
    """POST a 300 MiB body, reading the answer while sending; its status (0: none)."""
    parts = urlsplit(url)
    head = ["POST /v1/chat/completions HTTP/1.1", f"Host: {parts.netloc}",
            "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}")
    if key:
        head.append(f"Authorization: Bearer {key}")
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    answer = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while b"\r\n" not in answer and (data := sock.recv(65536)):
                answer.extend(data)
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if chunked else CHUNK
        for _ in range(BODY // MIB):
            if answered.is_set():
                break
            sock.sendall(frame)
        if chunked and not answered.is_set():
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the proxy answered and closed the connection: the rest is never read
    reader.join(60)
    sock.close()
    line = bytes(answer).split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0


@pytest.mark.parametrize(("with_key", "chunked"), [(False, False), (False, True),
                                                   (True, False), (True, True)])
def test_huge_bodies_leave_the_proxy_memory_alone(with_key: bool, chunked: bool,
                                                  offline_proxy: ProxyProcess,
                                                  pg_url: str) -> None:
    key = new_tenant(pg_url, "bounds")[1] if with_key else None
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(
        _huge_post(offline_proxy.url, key, chunked))) for _ in range(PARALLEL)]
    before = _rss(offline_proxy.proc.pid)
    with _peak_rss(offline_proxy.proc.pid) as peak:
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    growth = peak() - before
    print(f"key={with_key} chunked={chunked}: RSS {before / MIB:.0f} MiB, peak growth "
          f"{growth / MIB:.1f} MiB, {time.monotonic() - started:.1f} s")
    assert statuses == [413 if with_key else 401] * PARALLEL
    assert growth < RSS_GROWTH_MAX, f"RSS grew {growth / MIB:.0f} MiB"
    ok_key = key or new_tenant(pg_url, "bounds")[1]
    after = httpx.post(f"{offline_proxy.url}/v1/chat/completions", timeout=60,
                       headers={"Authorization": f"Bearer {ok_key}"},
                       json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    assert after.status_code == 200, after.text
