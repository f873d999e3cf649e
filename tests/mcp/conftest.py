"""MCP servers for the tests: ``@modelcontextprotocol/server-everything`` (npm, pinned in
``tests/mcp/package.json`` + ``package-lock.json``; ``npm ci`` here installs it, and the
fixture runs it when ``node_modules`` is missing) over stdio and streamable HTTP, and our
FastMCP server (``fastmcp_server.py``) over streamable HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_pool.runtime import free_port
from tests.integration.worker_harness import cluster  # noqa: F401 (a fixture)

HERE = Path(__file__).resolve().parent
EVERYTHING_JS = HERE / "node_modules" / "@modelcontextprotocol" / "server-everything" / \
    "dist" / "index.js"
START_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def everything_js() -> Path:
    """The installed server-everything entry point (``npm ci`` on first use)."""
    if not EVERYTHING_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed for the MCP tests (server-everything): install Node.js")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True,
                       timeout=600)
    return EVERYTHING_JS


def wait_listening(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until ``url`` answers HTTP at all (any status), or the process died."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not start within {START_TIMEOUT:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@dataclass
class HttpServer:
    """A server process on a port; :meth:`kill` and :meth:`start` for fault tests."""

    argv: list[str]
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, argv: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(argv or self.argv, env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.url, self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@pytest.fixture
def everything_http(everything_js: Path) -> Iterator[HttpServer]:
    port = free_port()
    server = HttpServer(["node", str(everything_js), "streamableHttp"], port,
                        {"PORT": str(port)})
    server.start()
    yield server
    server.kill()


@dataclass
class Billing(HttpServer):
    """Our FastMCP server; ``state`` is its JSON-lines log of calls and effects."""

    state: Path = Path()

    def rows(self, event: str) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        text = self.state.read_text()
        complete = text[:text.rfind("\n") + 1]  # not a line the server is still writing
        rows = [json.loads(line) for line in complete.splitlines()]
        return [row for row in rows if row["event"] == event]


@pytest.fixture
def billing(tmp_path: Path) -> Iterator[Billing]:
    port, state = free_port(), tmp_path / "billing.jsonl"
    server = Billing([sys.executable, str(HERE / "fastmcp_server.py"), str(port), str(state)],
                     port, {}, state=state)
    server.start()
    yield server
    server.kill()


def wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
