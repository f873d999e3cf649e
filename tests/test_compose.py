"""compose.yaml is valid (there is no Docker engine here: validated, not run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="docker-compose not installed "
                                   "(.ci/run installs Debian's docker-compose)")


def _config(repo_root: Path, env_file: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_MASTER_KEY"}
    args = [str(COMPOSE), "-f", "compose.yaml"]
    if env_file:
        args += ["--env-file", env_file]
    return subprocess.run([*args, "config", "-q"], cwd=repo_root, env=env,
                          capture_output=True, text=True)


@needs_compose
def test_compose_validates_with_env_example(repo_root: Path) -> None:
    done = _config(repo_root, ".env.example")
    assert done.returncode == 0, done.stderr


@needs_compose
@pytest.mark.parametrize(("env", "variable"), [
    ("", "LITELLM_MASTER_KEY"),
    ("LITELLM_MASTER_KEY=sk-x\n", "POOL_API_KEY"),  # the worker's key: no silent fallback
])
def test_compose_requires_its_keys(repo_root: Path, tmp_path: Path, env: str,
                                   variable: str) -> None:
    env_file = tmp_path / "keys.env"
    env_file.write_text(env)
    done = _config(repo_root, str(env_file))
    assert done.returncode != 0
    assert variable in done.stderr


def test_compose_services_and_healthchecks(repo_root: Path) -> None:
    compose = yaml.safe_load((repo_root / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "proxy", "worker", "dashboard", "ollama"} <= set(services)
    assert services["ollama"]["profiles"] == ["ollama"]
    for name in ("postgres", "redis", "proxy", "dashboard"):
        assert "healthcheck" in services[name], name
    assert "DATABASE_URL" not in services["proxy"]["environment"]  # never: it starts Prisma
