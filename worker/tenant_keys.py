"""Which proxy key the worker uses for a tenant's conversations.

So that spend lands on the right tenant, the worker calls the proxy with the
tenant's own key when it has one: ``POOL_TENANT_KEYS_FILE`` names a YAML mapping
``tenant: key`` (keep it as secret as ``.env``). Tenants not in the file use
``POOL_API_KEY`` (their spend is then recorded under that key's tenant; the audit
log still names the message's tenant).

Each key has ``GATEWAY_SHARDS`` clients (each its own HTTP connection pool), handed
out in turn: httpcore's pool scans all its connections, for each idle one all of
them again, whenever a request starts or ends, so with a hundred requests in flight
one pool cost the worker more CPU than anything else it did (bench/README.md,
benchmark 4); eight pools of about a dozen connections each scan a sixty-fourth.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import yaml

from sdk import AsyncGateway
from worker.errors import TenantKeysError

__all__ = ["GATEWAY_SHARDS", "TenantKeysError", "gateways_by_tenant", "load_tenant_keys"]

GATEWAY_SHARDS = 8  # clients (HTTP connection pools) per key, used in turn


def load_tenant_keys(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise TenantKeysError(f"cannot read tenant keys file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TenantKeysError(f"invalid tenant keys file {path}: {exc}") from exc
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()):
        raise TenantKeysError(f"{path}: expected a mapping of tenant name to API key")
    return dict(raw)


def gateways_by_tenant(proxy_url: str, default_key: str | None, keys: dict[str, str],
                       shards: int = GATEWAY_SHARDS) -> Callable[[str], AsyncGateway]:
    """``tenant -> AsyncGateway``: ``shards`` clients per key, built once and handed
    out in turn (used on the worker's event loop only; a run keeps the one it got)."""
    def clients(key: str | None) -> Callable[[], AsyncGateway]:
        turn = itertools.cycle([AsyncGateway(base_url=proxy_url, api_key=key)
                                for _ in range(shards)])
        return lambda: next(turn)

    default = clients(default_key)
    own = {tenant: clients(key) for tenant, key in keys.items()}

    def gateway_for(tenant: str) -> AsyncGateway:
        return own.get(tenant, default)()

    return gateway_for
