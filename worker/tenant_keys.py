"""Which proxy key the worker uses for a tenant's conversations.

So that spend lands on the right tenant, the worker calls the proxy with the
tenant's own key when it has one: ``POOL_TENANT_KEYS_FILE`` names a YAML mapping
``tenant: key`` (keep it as secret as ``.env``). Tenants not in the file use
``POOL_API_KEY`` (their spend is then recorded under that key's tenant; the audit
log still names the message's tenant).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from sdk import AsyncGateway
from worker.errors import TenantKeysError

__all__ = ["TenantKeysError", "gateways_by_tenant", "load_tenant_keys"]


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


def gateways_by_tenant(proxy_url: str, default_key: str | None,
                       keys: dict[str, str]) -> Callable[[str], AsyncGateway]:
    """``tenant -> AsyncGateway``: one client per key, built once (used on the
    worker's event loop only)."""
    default = AsyncGateway(base_url=proxy_url, api_key=default_key)
    own = {tenant: AsyncGateway(base_url=proxy_url, api_key=key) for tenant, key in keys.items()}

    def gateway_for(tenant: str) -> AsyncGateway:
        return own.get(tenant, default)

    return gateway_for
