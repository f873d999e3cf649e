"""Who a request is for, as ``custom_auth`` hands it to the hooks: one typed object.

``custom_auth`` (:mod:`proxy.plugin.auth`) returns LiteLLM a ``UserAPIKeyAuth`` whose
``metadata`` LiteLLM passes to the pre-call hook and the response-headers hook, and
copies into each logging payload (``user_api_key_auth_metadata``, read by
:mod:`proxy.spend.rows`). What the gateway puts there is a :class:`TenantContext` (a
tenant key: its tenant, budget, rpm/tpm, caps, whether the client chose the request id)
or :data:`MASTER` (the operator's key), written by :func:`to_metadata` under the one key
:data:`METADATA_KEY` and read back by :func:`from_metadata`; nothing else reads or
writes that key.

A context that is there but malformed raises :class:`ContextError` (500): a tenant's
request is never served without its limits. For the hooks, a missing one is that error
too (:func:`require`): every request LiteLLM admits went through ``custom_auth``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from proxy.edge.caps import Limits
from proxy.errors import RequestRefused
from proxy.storage.tenants import KeyIdentity

__all__ = ["MASTER", "METADATA_KEY", "Context", "ContextError", "Master", "TenantContext",
           "from_metadata", "require", "to_metadata"]

METADATA_KEY: Final = "pool_context"  # in UserAPIKeyAuth.metadata
TENANT, MASTER_KEY = "tenant", "master"  # the principal, as written


class ContextError(RequestRefused):
    """500: the context ``custom_auth`` wrote is missing or not what it writes."""

    def __init__(self, why: str) -> None:
        super().__init__(message=f"gateway request context {why}; the request was not sent",
                         type="internal_server_error", param=None, code=500)


@dataclass(frozen=True)
class TenantContext:
    """A tenant key's request: what its limits and spend row need."""

    tenant_id: int
    tenant: str
    budget_usd: float | None  # monthly; None: no budget
    rpm: int | None  # None: no limit
    tpm: int | None
    caps: Limits  # the tenant's caps, else the gateway's defaults
    client_call_id: bool = False  # the client chose the request id (x-litellm-call-id)

    @classmethod
    def of(cls, identity: KeyIdentity, caps: Limits, client_call_id: bool = False
           ) -> TenantContext:
        return cls(tenant_id=identity.tenant_id, tenant=identity.tenant,
                   budget_usd=identity.monthly_budget_usd, rpm=identity.rpm_limit,
                   tpm=identity.tpm_limit, caps=caps, client_call_id=client_call_id)


@dataclass(frozen=True)
class Master:
    """The operator's key: no tenant, no limits."""


MASTER: Final = Master()
Context = TenantContext | Master


def to_metadata(context: Context) -> dict[str, Any]:
    """The ``UserAPIKeyAuth.metadata`` carrying ``context`` (JSON types only: LiteLLM
    copies it into logging payloads)."""
    if isinstance(context, Master):
        return {METADATA_KEY: {"principal": MASTER_KEY}}
    caps = context.caps
    return {METADATA_KEY: {
        "principal": TENANT, "tenant_id": context.tenant_id, "tenant": context.tenant,
        "budget_usd": context.budget_usd, "rpm": context.rpm, "tpm": context.tpm,
        "caps": {"max_n": caps.max_n, "max_tokens": caps.max_tokens,
                 "max_prompt_tokens": caps.max_prompt_tokens,
                 "max_tokens_own": caps.max_tokens_own},
        "client_call_id": context.client_call_id}}


def _int(found: Mapping[str, Any], name: str, optional: bool = False) -> Any:
    value = found.get(name)
    if (value is None and optional) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ContextError(f"has no valid {name!r}")


def _tenant(found: Mapping[str, Any]) -> TenantContext:
    budget, tenant = found.get("budget_usd"), found.get("tenant")
    caps, chosen = found.get("caps"), found.get("client_call_id")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float)):
        raise ContextError("has no valid 'budget_usd'")
    if not isinstance(tenant, str) or not isinstance(chosen, bool):
        raise ContextError("has no valid 'tenant' or 'client_call_id'")
    if not isinstance(caps, Mapping):
        raise ContextError("has no 'caps'")
    return TenantContext(
        tenant_id=_int(found, "tenant_id"), tenant=tenant,
        budget_usd=None if budget is None else float(budget),
        rpm=_int(found, "rpm", optional=True), tpm=_int(found, "tpm", optional=True),
        caps=Limits(max_n=_int(caps, "max_n"), max_tokens=_int(caps, "max_tokens"),
                    max_prompt_tokens=_int(caps, "max_prompt_tokens"),
                    max_tokens_own=caps.get("max_tokens_own") is True),
        client_call_id=chosen)


def from_metadata(metadata: Mapping[str, Any] | None) -> Context | None:
    """The context in ``metadata``; None when there is none (not a request of ours);
    :class:`ContextError` when it is malformed."""
    found = (metadata or {}).get(METADATA_KEY)
    if found is None:
        return None
    principal = found.get("principal") if isinstance(found, Mapping) else None
    if principal == MASTER_KEY:
        return MASTER
    if principal == TENANT:
        return _tenant(found)
    raise ContextError("names no principal")


def require(metadata: Mapping[str, Any] | None) -> Context:
    """:func:`from_metadata` for a request LiteLLM admitted: a missing context is a
    :class:`ContextError` too (fail closed)."""
    context = from_metadata(metadata)
    if context is None:
        raise ContextError("is missing")
    return context
