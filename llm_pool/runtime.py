"""Start and stop the processes the system is made of: the gateway (``pool proxy``:
LiteLLM's proxy started by :mod:`proxy.plugin.startup`, which installs the gateway's
edge and patches), a stock LiteLLM proxy for a YAML without the gateway's plug-ins
(benchmarks), and helpers to wait for them. Used by the CLI, the demo, the benchmarks
and the test harness alike."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "PROXY_START_TIMEOUT",
    "ProxyProcess",
    "free_port",
    "gateway_command",
    "litellm_command",
    "metrics_env",
    "proxy_env",
    "start_proxy",
    "uses_gateway",
    "wait_http",
    "worker_metrics_env",
]

PROXY_START_TIMEOUT = 120.0  # seconds; a cold start takes ~20-25 s on 2 cores
# uvicorn restarts a worker that does not answer its supervisor's ping within 5 s; a
# worker importing LiteLLM on a busy 2-core machine takes longer, and is then killed
# and restarted forever (`--workers 2`, seen under load)
WORKER_HEALTHCHECK_TIMEOUT = "60"
BASE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never fetch the cost map from the internet
    # LiteLLM calls load_dotenv() at import unless LITELLM_MODE is PRODUCTION; python-dotenv
    # walks up from LiteLLM's own directory, so a .venv inside the repository reads the
    # repository's .env, filling whatever the operator left unset: never behind their back
    "LITELLM_MODE": "PRODUCTION",
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
        raise FileNotFoundError(
            "the `litellm` command is not installed: pip install 'llm-pool[proxy]'")
    return [found]


def proxy_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a proxy: ours on top of the caller's, never ``DATABASE_URL``
    (LiteLLM takes it as a signal to start its own Prisma database layer, which we do not
    use: our tables are in ``POOL_DATABASE_URL``, reached through psycopg)."""
    env = {**os.environ, **BASE_ENV, **(extra or {})}
    env.pop("DATABASE_URL", None)
    env.setdefault("TIMEOUT_WORKER_HEALTHCHECK", WORKER_HEALTHCHECK_TIMEOUT)
    if not env.get("POOL_REDIS_URL"):
        env.pop("POOL_REDIS_URL", None)  # empty: LiteLLM's router would reject it
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def metrics_env(env: Mapping[str, str], port: int,
                directory: Path | None = None) -> dict[str, str]:
    """``PROMETHEUS_MULTIPROC_DIR`` for a proxy on ``port``, unless ``env`` has one: a
    directory private to this user and port (or ``directory``). Every worker process
    writes its samples there and ``/metrics`` adds them up. LiteLLM's own default is
    one directory in /tmp that every proxy starting on the machine wipes."""
    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        return {}
    path = directory or Path(tempfile.gettempdir()) / f"llm-pool-metrics-{os.getuid()}-{port}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(path)}


def worker_metrics_env(host: str, port: int) -> dict[str, str]:
    """The environment of ``dramatiq worker.metrics``: where Dramatiq's Prometheus server
    listens, and a fresh directory private to this user and port for its samples."""
    path = Path(tempfile.gettempdir()) / f"llm-pool-worker-metrics-{os.getuid()}-{port}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    return {"dramatiq_prom_host": host, "dramatiq_prom_port": str(port),
            "dramatiq_prom_db": str(path)}


GATEWAY_MODULE = "proxy.plugin.startup"


def gateway_command() -> list[str]:
    """The gateway's launcher (:mod:`proxy.plugin.startup`) on the running interpreter."""
    return [sys.executable, "-m", GATEWAY_MODULE]


def uses_gateway(config: Path) -> bool:
    """True when the YAML names the gateway's plug-ins (``custom_auth`` or a callback
    under ``proxy.``): it must run under the gateway's start-up, not the bare CLI."""
    import yaml

    loaded = yaml.safe_load(config.read_text()) or {}
    general = loaded.get("general_settings") or {}
    settings = loaded.get("litellm_settings") or {}
    named = [general.get("custom_auth"), *(settings.get("callbacks") or [])]
    return any(isinstance(n, str) and n.startswith("proxy.") for n in named)


def proxy_args(config: Path, host: str, port: int, workers: int) -> list[str]:
    """The command that serves ``config``: the gateway's launcher when the YAML names its
    plug-ins, else the stock ``litellm`` CLI."""
    if uses_gateway(config):
        return [*gateway_command(), "--config", str(config), "--host", host,
                "--port", str(port), "--workers", str(workers)]
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
    """A running proxy subprocess."""

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
    """Start the proxy for ``config`` (:func:`proxy_args`) on a free port; wait until
    ``/health/liveliness`` answers (uvicorn listens only once the proxy's startup, config
    loading included, is done)."""
    port = port or free_port()
    args = proxy_args(config, "127.0.0.1", port, workers)
    full_env = proxy_env(env)
    full_env.update(metrics_env(full_env, port, log_path.parent / f"metrics-{port}"))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    running = ProxyProcess(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path, args=args)
    try:
        wait_http(f"{running.url}/health/liveliness", timeout, proc)
    except (RuntimeError, TimeoutError) as exc:
        running.stop()
        tail = running.log_tail()
        raise RuntimeError(f"proxy did not start: {exc}\n--- proxy log ---\n{tail}") from exc
    return running
