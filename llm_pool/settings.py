"""The CLI's settings, read from the environment once, where a command starts (code
below it takes them as arguments). ``proxy/`` and ``worker/`` keep their own
settings and never import this module; the defaults here are the CLI's own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_PROXY_URL",
    "DEFAULT_REDIS_URL",
    "REPO_ROOT",
    "Settings",
    "default_config_path",
]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/llm_pool"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PROXY_URL = "http://127.0.0.1:4000"
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_config_path(name: str = "config.yaml") -> Path:
    """``$POOL_CONFIG`` if set, else the repository's ``config/<name>``."""
    override = os.environ.get("POOL_CONFIG")
    return Path(override) if override and name == "config.yaml" else REPO_ROOT / "config" / name


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    proxy_url: str = DEFAULT_PROXY_URL
    master_key: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("POOL_REDIS_URL", DEFAULT_REDIS_URL),
            proxy_url=env.get("POOL_PROXY_URL", DEFAULT_PROXY_URL),
            master_key=env.get("LITELLM_MASTER_KEY"),
            api_key=env.get("POOL_API_KEY"),
        )
