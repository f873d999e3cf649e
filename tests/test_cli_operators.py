"""Operators' papercuts of #21: caps settable and shown everywhere limits are, the
positional config of ``check-config``, the tenant-name help saying what the check
wants, no cost-map download by ``pool tenants show``, and no ``.env`` read behind the
operator's back (the proxy and ``check-config`` agree on an empty ``POOL_REDIS_URL``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from llm_pool.runtime import free_port
from llm_pool.settings import REPO_ROOT

MASTER = "sk-test-master-key"


def _pool(*args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
          ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    for name in drop:
        full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "llm_pool.cli", *args], capture_output=True,
                          text=True, env=full, timeout=180, cwd=REPO_ROOT)


def _name() -> str:
    return f"ops-{uuid.uuid4().hex[:8]}"


def _fields(out: str) -> dict[str, str]:
    return {label: value.strip() for label, _, value in
            (line.partition("  ") for line in out.splitlines()) if value}


def test_caps_are_settable_and_shown_by_set_show_and_list(pg_url: str) -> None:
    env = {"POOL_DATABASE_URL": pg_url, "POOL_DEFAULT_MAX_PROMPT_TOKENS": "9000"}
    name = _name()
    assert _pool("tenants", "add", name, "--rpm", "10", env=env).returncode == 0
    done = _pool("tenants", "set", name, "--max-n", "2", "--max-tokens", "300", env=env)
    assert done.returncode == 0, done.stderr
    assert "max_n 2, max_tokens 300, max_prompt_tokens default (9000)" in done.stdout
    shown = _fields(_pool("tenants", "show", name, env=env).stdout)
    assert (shown["max_n"], shown["max_tokens"], shown["max_prompt_tokens"], shown["rpm"]) == (
        "2", "300", "default (9000)", "10")
    listed = _pool("tenants", "list", env=env).stdout.splitlines()
    header = listed[0].split()
    row = next(line.split("  ") for line in listed if line.startswith(name + " "))
    cells = [cell.strip() for cell in row if cell.strip()]
    assert header[5:8] == ["max_n", "max_tokens", "max_prompt_tokens"]
    assert cells[5:8] == ["2", "300", "default (9000)"]
    back = _pool("tenants", "set", name, "--max-n", "none", env=env)
    assert "max_n default (4)" in back.stdout
    bad = _pool("tenants", "set", name, "--max-tokens", "0", env=env)
    assert bad.returncode == 2 and "max_tokens" in bad.stderr and "Traceback" not in bad.stderr


def test_tenant_name_help_says_what_the_check_wants(pg_url: str) -> None:
    refused = _pool("tenants", "add", "Upper.Case", env={"POOL_DATABASE_URL": pg_url})
    assert refused.returncode == 2
    rule = refused.stderr.split("valid tenant name: ", 1)[1].strip()
    helped = " ".join(_pool("tenants", "add", "--help").stdout.split())
    assert rule in helped, (rule, helped)


def test_check_config_takes_the_config_as_a_positional_argument() -> None:
    env = {"POOL_PROVIDER_URL": "http://127.0.0.1:9/v1", "LITELLM_MASTER_KEY": MASTER}
    done = _pool("check-config", "config/offline.yaml", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("config/offline.yaml: ok")
    both = _pool("check-config", "config/offline.yaml", "--config", "config/config.yaml", env=env)
    assert both.returncode == 2 and "give one" in both.stderr


def test_tenants_show_never_downloads_the_cost_map(pg_url: str) -> None:
    env = {"POOL_DATABASE_URL": pg_url}
    name = _name()
    assert _pool("tenants", "add", name, env=env).returncode == 0
    started = time.monotonic()
    done = _pool("tenants", "show", name, env=env, drop=("LITELLM_LOCAL_MODEL_COST_MAP",))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # no cost-map warnings, nothing else either
    assert time.monotonic() - started < 60  # the download's retries took 3-8 s more


def test_pool_commands_leave_litellm_load_dotenv_off() -> None:
    checker = ("import os\nfrom llm_pool.cli import main\n"
               "try:\n    main(['models', '--help'])\nexcept SystemExit:\n    pass\n"
               "print(os.environ['LITELLM_MODE'], os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])\n")
    seen = subprocess.run([sys.executable, "-c", checker], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "LITELLM_MODE"},
                          timeout=60)
    assert seen.stdout.split()[-2:] == ["PRODUCTION", "True"], seen.stderr


# ----------------------------------------------------------------- .env


@pytest.fixture
def repo_dotenv() -> object:
    """A ``.env`` where LiteLLM's load_dotenv() finds it: python-dotenv walks up from
    LiteLLM's own directory, which is inside the repository's ``.venv``."""
    import litellm

    if REPO_ROOT not in Path(litellm.__file__).resolve().parents:
        pytest.skip("LiteLLM is not installed inside the repository (no .venv here)")
    path = REPO_ROOT / ".env"
    saved = path.read_bytes() if path.exists() else None
    path.write_text("POOL_REDIS_URL=redis://127.0.0.1:6379/0\n")
    yield path
    if saved is None:
        path.unlink()
    else:
        path.write_bytes(saved)


def test_an_empty_redis_url_means_off_for_check_config_and_the_proxy(
        repo_dotenv: Path, pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "POOL_REDIS_URL": "", "LITELLM_MASTER_KEY": MASTER,
           "POOL_DATABASE_URL": pg_url, "POOL_PROVIDER_URL": "http://127.0.0.1:9/v1"}
    env.pop("LITELLM_MODE", None)
    checked = subprocess.run([sys.executable, "-m", "llm_pool.cli", "check-config",
                              "config/offline.yaml"], capture_output=True, text=True, env=env,
                             cwd=REPO_ROOT, timeout=180)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "POOL_REDIS_URL is not set; used by router_settings.redis_url" in checked.stdout
    port = free_port()
    log = tmp_path / "proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llm_pool.cli", "proxy", "--config",
                                 "config/offline.yaml", "--host", "127.0.0.1", "--port",
                                 str(port), "--workers", "1"], env=env, cwd=REPO_ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "shared state:" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert "shared state: POOL_REDIS_URL is not set" in text, text[-3000:]
        assert "shared state: Redis redis://" not in text
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
