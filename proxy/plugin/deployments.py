"""The deployments of the YAML the proxy was started with, read by the gateway itself.

The start-up (:mod:`proxy.plugin.startup`) calls :func:`load` with the YAML it hands
LiteLLM, in every worker process. From it the gateway takes what it used to read from
LiteLLM's router (``proxy_server.llm_router``, not a documented API):

- :func:`aliases`: the ``model_name`` of every deployment, the only model names a tenant may
  send (:mod:`proxy.edge.models`);
- :func:`group_deployments`: the ``model_list`` entries of one alias (their prices, for the
  budget reservation's estimate, :mod:`proxy.admission.estimate`);
- :func:`api_bases`: the upstream URLs (``api_base``, ``os.environ/NAME`` resolved as
  LiteLLM resolves it), which the edge redacts from error answers.

Before :func:`load` (unit tests, the bare ``litellm`` CLI) every answer is empty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Deployments", "aliases", "api_bases", "group_deployments", "load"]

ENV_PREFIX = "os.environ/"  # LiteLLM's reference to an environment variable in the YAML


@dataclass(frozen=True)
class Deployments:
    """The ``model_list`` of one YAML."""

    entries: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def read(cls, path: Path) -> Deployments:
        import yaml

        loaded = yaml.safe_load(path.read_text()) or {}
        found = loaded.get("model_list") if isinstance(loaded, Mapping) else None
        return cls(tuple(d for d in found or [] if isinstance(d, Mapping)))

    def aliases(self) -> frozenset[str]:
        return frozenset(str(d["model_name"]) for d in self.entries if d.get("model_name"))

    def group(self, alias: str) -> list[dict[str, Any]]:
        return [dict(d) for d in self.entries if d.get("model_name") == alias]

    def api_bases(self, environ: Mapping[str, str]) -> set[str]:
        found: set[str] = set()
        for deployment in self.entries:
            params = deployment.get("litellm_params") or {}
            base = params.get("api_base") if isinstance(params, Mapping) else None
            if isinstance(base, str) and base.startswith(ENV_PREFIX):
                base = environ.get(base[len(ENV_PREFIX):])
            if isinstance(base, str) and base:
                found.add(base)
        return found


_loaded = Deployments()


def load(path: Path) -> None:
    """Read ``path``'s deployments for this process (the start-up, once per worker)."""
    global _loaded
    _loaded = Deployments.read(path)


def aliases() -> frozenset[str]:
    return _loaded.aliases()


def group_deployments(model_group: str) -> list[dict[str, Any]]:
    return _loaded.group(model_group)


def api_bases() -> set[str]:
    return _loaded.api_bases(os.environ)
