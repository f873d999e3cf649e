"""The output limit of each alias, and which output cap a request is held to.

An alias's output limit is the smallest ``max_output_tokens`` of its chat deployments:
the figure the YAML declares in a deployment's ``model_info``, else the one LiteLLM's
public model map knows for its model (``known``, the caller's look-up; Ollama models are
not in the map, so the shipped config declares theirs). An embedding deployment has no
output. A deployment of unknown limit is left out (the alias's limit is the smallest
known one; none known: the alias has no limit, and the default cap applies).

A request's output cap (:func:`output_cap`):

- the tenant's own ``max_tokens`` (``pool tenants set --max-tokens``) when it is lower
  than the alias's limit;
- else the alias's limit: a request above what the model can produce is refused with the
  model's figure (Claude Code's default ``max_tokens: 32000`` passes on an alias of 64k
  models, whatever ``POOL_DEFAULT_MAX_TOKENS`` says);
- else, for an alias of unknown limit, the tenant's cap (its own or the default).

The default cap still bounds what the gateway writes into a request that names no limit
(:func:`proxy.admission.estimate.apply_output_limit`), so reservations stay as they were.
Nothing here imports LiteLLM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OutputCap", "alias_limits", "deployment_limit", "group_limit", "output_cap"]

Known = Callable[[str], int | None]  # a model name (prefix/name) -> its map's output limit


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def deployment_limit(deployment: Mapping[str, Any], known: Known) -> int | None:
    """One ``model_list`` entry's output limit: declared in ``model_info``, else known."""
    info = deployment.get("model_info") or {}
    if info.get("mode") == "embedding":
        return None
    declared = _positive(info.get("max_output_tokens"))
    if declared is not None:
        return declared
    model = (deployment.get("litellm_params") or {}).get("model")
    return _positive(known(str(model))) if model else None


def group_limit(deployments: Iterable[Mapping[str, Any]], known: Known) -> int | None:
    """The smallest output limit of one alias's deployments (None: none known)."""
    limits = [found for d in deployments if (found := deployment_limit(d, known)) is not None]
    return min(limits) if limits else None


def alias_limits(model_list: Iterable[Mapping[str, Any]], known: Known) -> dict[str, int]:
    """alias -> :func:`group_limit` of its deployments (aliases with none known are left
    out): what ``pool check-config`` shows."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for deployment in model_list:
        if deployment.get("model_name"):
            groups.setdefault(str(deployment["model_name"]), []).append(deployment)
    return {alias: limit for alias, members in groups.items()
            if (limit := group_limit(members, known)) is not None}


@dataclass(frozen=True)
class OutputCap:
    """The most output tokens a request may ask for, and whose figure it is."""

    limit: int
    model: bool  # True: the alias's models' own limit; False: the tenant's cap


def output_cap(tenant_cap: int, tenant_own: bool, model_limit: int | None) -> OutputCap:
    """See the module docstring."""
    if model_limit is None:
        return OutputCap(tenant_cap, model=False)
    if tenant_own and tenant_cap < model_limit:
        return OutputCap(tenant_cap, model=False)
    return OutputCap(model_limit, model=True)
