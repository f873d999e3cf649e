"""The README and docs/quickstart.md stay true: every code block of both runs, in order.

Each fenced block is preceded by a marker comment saying what the test does with it:

- ``<!-- readme-test: run [expect=TEXT] -->``: run it (bash, or python for a python block)
  in the one "shell 3" session, whose exported variables carry over to the next block;
  it must exit 0 and, with ``expect``, print TEXT (stdout or stderr);
- ``<!-- readme-test: background ready=URL -->``: start it as a long-running process (a
  shell of its own) and wait until URL answers 200;
- ``<!-- readme-test: skip (reason) -->``: not run, for the reason given.

A block without a marker fails the test. The documented ports (4000, 4010, 4100) are
replaced by free ones, and the session runs on this test run's scratch PostgreSQL database
and a private Redis namespace: nothing is shared with other tests or a real deployment.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llm_pool.runtime import free_port
from llm_pool.settings import REPO_ROOT

pytestmark = pytest.mark.integration

DOCUMENTS = (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "quickstart.md")
PORTS = (4000, 4010, 4100)
BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(?P<marker>.*?)\s*-->\s*\n)?"
                   r"^```(?P<lang>\w*)[^\n]*\n(?P<code>.*?)^```\s*$", re.S | re.M)
READY_TIMEOUT = 240.0  # seconds: the proxy's cold start is 20-60 s on a loaded 2-core box
BLOCK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Block:
    where: str
    lang: str
    code: str
    marker: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code"))
        found.append(Block(f"{path.name}:{line}", match["lang"], match["code"],
                           " ".join((match["marker"] or "").split())))
    return found


def test_every_block_is_marked() -> None:
    unmarked = [b.where for path in DOCUMENTS for b in blocks(path) if not b.marker]
    assert unmarked == []
    kinds = {b.marker.split()[0] for path in DOCUMENTS for b in blocks(path)}
    assert kinds <= {"run", "background", "skip"}, kinds


def test_every_relative_link_of_the_readme_and_docs_exists() -> None:
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert broken == []
    assert len(REPO_ROOT.joinpath("README.md").read_text().splitlines()) <= 150


class Session:
    """Shell 3: an environment that exported variables carry over, and the background
    processes started so far (stopped at the end)."""

    def __init__(self, env: dict[str, str], ports: dict[int, int], logs: Path) -> None:
        self.env = env
        self.ports = ports
        self.logs = logs
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def localize(self, text: str) -> str:
        for documented, actual in self.ports.items():
            text = re.sub(rf"\b{documented}\b", str(actual), text)
        return text

    def run(self, block: Block) -> str:
        code = self.localize(block.code)
        state = self.logs / "state.env"
        if block.lang == "python":
            argv = [sys.executable, "-c", code]
        else:
            script = f"set -e\n{code}\nenv -0 > {state}\n"
            argv = ["bash", "-c", script]
        done = subprocess.run(argv, cwd=REPO_ROOT, env=self.env, capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where} failed ({done.returncode}):\n{output}"
        if block.lang != "python":
            pairs = state.read_bytes().decode().split("\0")
            self.env = dict(p.split("=", 1) for p in pairs if "=" in p)
        return output

    def start(self, block: Block, ready: str) -> None:
        log = self.logs / f"background-{len(self.background)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["bash", "-c", self.localize(block.code)], cwd=REPO_ROOT,
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.background.append((proc, log))
        url = self.localize(ready)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"{block.where} exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)

    def stop(self) -> None:
        for proc, _ in reversed(self.background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.background:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def session(pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
            ) -> Iterator[Session]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POOL_", "LITELLM_", "OPENAI_", "ANTHROPIC_"))}
    env.update(POOL_DATABASE_URL=pg_url, POOL_REDIS_URL=redis_url, POOL_NAMESPACE=redis_prefix,
               LITELLM_LOCAL_MODEL_COST_MAP="True")
    running = Session(env, {port: free_port() for port in PORTS}, tmp_path)
    yield running
    running.stop()


def test_the_readme_and_the_quickstart_run_as_written(session: Session) -> None:
    ran = []
    for path in DOCUMENTS:
        for block in blocks(path):
            kind, _, rest = block.marker.partition(" ")
            if kind == "skip":
                assert rest.startswith("(") and rest.endswith(")"), block.where  # a reason
                continue
            if kind == "background":
                session.start(block, rest.removeprefix("ready="))
            else:
                output = session.run(block)
                expect = rest.removeprefix("expect=") if rest.startswith("expect=") else ""
                assert expect in output, f"{block.where}: {expect!r} not in:\n{output}"
            ran.append(block.where)
    print("ran:", ", ".join(ran))
    assert len(ran) >= 10
