"""Start and stop the processes the system is made of: the stock LiteLLM proxy
(``pool proxy``), and helpers to wait for them. Used by the CLI, the demo, the
benchmarks and the test harness alike."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "PROXY_START_TIMEOUT",
    "ProxyProcess",
    "free_port",
    "litellm_command",
    "proxy_env",
    "start_proxy",
    "wait_http",
]

PROXY_START_TIMEOUT = 120.0  # seconds; a cold start takes ~20-25 s on 2 cores
BASE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never fetch the cost map from the internet
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
    "LITELLM_TELEMETRY": "False",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def litellm_command() -> list[str]:
    """The stock ``litellm`` CLI of the running interpreter's environment."""
    beside = Path(sys.executable).with_name("litellm")
    found = str(beside) if beside.exists() else shutil.which("litellm")
    if found is None:
        raise FileNotFoundError("the `litellm` command is not installed (pip install -e .)")
    return [found]


def proxy_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a proxy: ours on top of the caller's, never ``DATABASE_URL``
    (LiteLLM takes it as a signal to start Prisma, see DESIGN.md)."""
    env = {**os.environ, **BASE_ENV, **(extra or {})}
    env.pop("DATABASE_URL", None)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def proxy_args(config: Path, host: str, port: int, workers: int) -> list[str]:
    return [*litellm_command(), "--config", str(config), "--host", host, "--port", str(port),
            "--num_workers", str(workers)]


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last: {last})")


@dataclass
class ProxyProcess:
    """A running stock proxy subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    args: Sequence[str] = field(default_factory=list)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_proxy(
    config: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    workers: int = 1,
    log_path: Path,
    timeout: float = PROXY_START_TIMEOUT,
) -> ProxyProcess:
    """Start ``litellm --config`` on a free port and wait for ``/health/readiness``."""
    port = port or free_port()
    args = proxy_args(config, "127.0.0.1", port, workers)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=proxy_env(env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    running = ProxyProcess(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path, args=args)
    try:
        wait_http(f"{running.url}/health/readiness", timeout, proc)
    except (RuntimeError, TimeoutError) as exc:
        running.stop()
        tail = running.log_tail()
        raise RuntimeError(f"proxy did not start: {exc}\n--- proxy log ---\n{tail}") from exc
    return running
