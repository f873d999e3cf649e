"""CI step: the SDK installs and works alone.

Creates a fresh virtualenv, ``pip install .`` (no extras) and, from that venv:
``import sdk`` works and ``import litellm`` (nor any other extra's package) does not;
``pool --help`` runs; ``pool proxy`` / ``pool worker`` exit 2 naming the extra to
install; the scripted provider runs (``pool provider``). Then the real proxy (started
with the dev venv on config/offline.yaml and a scratch database) takes SDK calls from the
base venv: ``Gateway().complete`` in its Python, ``pool ask --stream``, ``pool models``;
a bad key is one clear line. Run with the dev venv: ``.venv/bin/python .ci/base_install.py``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from llm_pool.runtime import ProxyProcess, free_port, start_proxy, wait_http  # noqa: E402
from llm_pool.settings import DEFAULT_DATABASE_URL  # noqa: E402

EXTRA_PACKAGES = ("litellm", "dramatiq", "psycopg", "redis", "yaml", "prometheus_client", "mcp",
                  "pydantic_settings")
PROMPT = "hello from the base install"
ANSWER = f"Hi! (fast-1) You said: {PROMPT}"
SDK_CALL = """
from sdk import Gateway
with Gateway() as gateway:
    reply = gateway.complete("fast", {prompt!r})
print(reply.text)
print(reply.deployment)
"""


def say(text: str) -> None:
    print(f"    {text}", flush=True)


def fail(text: str) -> None:
    print(f"\nbase install: FAILED: {text}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None,
        expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)
    if expect is not None and done.returncode != expect:
        fail(f"{' '.join(argv)} exited {done.returncode}, expected {expect}\n"
             f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    return done


def make_base_venv(where: Path) -> Path:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    bin_dir = where / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", str(ROOT)],
        cwd=where)
    say(f"pip install . (no extras) into a fresh venv: {time.monotonic() - started:.0f} s")
    return bin_dir


def check_imports(bin_dir: Path, cwd: Path) -> None:
    python = str(bin_dir / "python")
    run([python, "-c", "import sdk, llm_pool.cli; print(sdk.Gateway)"], cwd=cwd)
    say("import sdk: ok")
    present = [name for name in EXTRA_PACKAGES
               if run([python, "-c", f"import {name}"], cwd=cwd, expect=None).returncode == 0]
    if present:
        fail(f"the base install brings packages of the extras: {', '.join(present)} "
             "(check [project] dependencies in pyproject.toml)")
    say(f"import {', '.join(EXTRA_PACKAGES)}: each fails, as it should")


def check_cli(bin_dir: Path, cwd: Path) -> None:
    pool = str(bin_dir / "pool")
    if "ask" not in run([pool, "--help"], cwd=cwd).stdout:
        fail("pool --help does not list `ask`")
    for command, extra in (("proxy", "proxy"), ("worker", "worker"), ("tenants", "proxy")):
        args = [command, "list"] if command == "tenants" else [command]
        done = run([pool, *args], cwd=cwd, expect=2)
        want = f"pool {command} needs the {extra} extra: pip install 'llm-pool[{extra}]'"
        lines = done.stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith(want):
            fail(f"pool {' '.join(args)}: expected one line starting {want!r}, got:\n"
                 f"{done.stderr}")
    say("pool --help: ok; pool proxy / worker / tenants: exit 2 naming the extra")


def scratch_database() -> str:
    base = os.environ.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL)
    name = f"llm_pool_base_{uuid.uuid4().hex[:10]}"
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tenant_key(db_url: str, cwd: Path) -> str:
    """``pool db migrate``, ``pool tenants add``, ``pool keys create`` with the dev venv."""
    pool = [sys.executable, "-m", "llm_pool.cli"]
    env = {"POOL_DATABASE_URL": db_url}
    run([*pool, "db", "migrate"], cwd=cwd, env=env)
    run([*pool, "tenants", "add", "base-install"], cwd=cwd, env=env)
    return run([*pool, "keys", "create", "base-install"], cwd=cwd, env=env).stdout.strip()


def check_sdk_calls(bin_dir: Path, cwd: Path, proxy: ProxyProcess, key: str) -> None:
    env = {"POOL_PROXY_URL": proxy.url, "POOL_API_KEY": key}
    out = run([str(bin_dir / "python"), "-c", SDK_CALL.format(prompt=PROMPT)], cwd=cwd,
              env=env).stdout.splitlines()
    if out != [ANSWER, "fast-1"]:
        fail(f"the SDK call answered {out!r}, expected {[ANSWER, 'fast-1']!r}")
    say(f"Gateway().complete('fast', ...) from the base venv: {out[0]!r} by {out[1]}")
    done = run([str(bin_dir / "pool"), "ask", "fast", PROMPT, "--stream"], cwd=cwd, env=env)
    if done.stdout.strip() != ANSWER or "fast -> fast-1" not in done.stderr:
        fail(f"pool ask --stream printed {done.stdout!r} / {done.stderr!r}")
    say(f"pool ask fast ... --stream: {done.stderr.strip()}")
    listed = run([str(bin_dir / "pool"), "models"], cwd=cwd, env=env).stdout.split()
    if "fast" not in listed:
        fail(f"pool models listed {listed!r}, without fast")
    say(f"pool models: {' '.join(listed)}")
    bad = run([str(bin_dir / "pool"), "ask", "fast", PROMPT], cwd=cwd,
              env={**env, "POOL_API_KEY": "sk-pool-not-a-key"}, expect=1)
    if len(bad.stderr.strip().splitlines()) != 1 or "AuthError" not in bad.stderr:
        fail(f"pool ask with a bad key: expected one AuthError line, got {bad.stderr!r}")
    say("pool ask with a bad key: exit 1, one line (AuthError)")


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llm-pool-base-") as tmp:
        work = Path(tmp)  # cwd of every base-venv command: the checkout is not on sys.path
        bin_dir = make_base_venv(work / "venv")
        check_imports(bin_dir, work)
        check_cli(bin_dir, work)

        provider_port = free_port()
        provider = subprocess.Popen([str(bin_dir / "pool"), "provider", "--port",
                                     str(provider_port)], cwd=work, stdout=subprocess.DEVNULL)
        db_url = scratch_database()
        proxy: ProxyProcess | None = None
        try:
            wait_http(f"http://127.0.0.1:{provider_port}/v1/models", 30, provider)
            say("pool provider from the base venv: answering")
            key = tenant_key(db_url, work)
            proxy = start_proxy(ROOT / "config" / "offline.yaml", log_path=work / "proxy.log",
                                env={"POOL_PROVIDER_URL": f"http://127.0.0.1:{provider_port}/v1",
                                     "LITELLM_MASTER_KEY": "sk-" + secrets.token_hex(16),
                                     "POOL_DATABASE_URL": db_url})
            say(f"proxy (dev venv) on config/offline.yaml at {proxy.url}")
            check_sdk_calls(bin_dir, work, proxy, key)
        finally:
            if proxy is not None:
                proxy.stop()
            provider.terminate()
            provider.wait(10)
            drop_database(db_url)
    say(f"base install: ok in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
