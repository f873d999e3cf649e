"""Every route the gateway treats specially, in one table (:data:`ROUTES`).

For each path: the methods it is open for and to whom (:class:`Access`), the schema its
body is checked against (:mod:`proxy.edge.validation`), which of a tenant's caps apply
(:mod:`proxy.edge.caps`), the shape its errors leave in (OpenAI's, or Anthropic's:
:mod:`proxy.edge.anthropic_errors`, :mod:`proxy.edge.errors_shape`) and whether it is a
token count (admitted in ``custom_auth``: LiteLLM runs no pre-call hook for it). The
edge (:mod:`proxy.edge.guard`), ``custom_auth`` and the hooks read this table and keep no
list of their own; ``tests/gateway/test_routes_units.py`` holds them to it.

A path that is not here, or a method not listed for it, is the operator's only (the
master key): :mod:`proxy.edge.guard` answers it 401/403 for anyone else. A path open to
the master key only may still have a schema (LiteLLM's ``/openai/v1/...`` and
``/messages`` aliases of the model routes): the operator's bodies are checked too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from proxy.edge.schemas import (
    ChatRequest,
    CountTokensRequest,
    EmbeddingRequest,
    MessagesRequest,
    ResponsesRequest,
)

__all__ = ["ALL_CAPS", "METRICS_ROUTES", "PUBLIC_ROUTES", "ROUTES", "SCHEMAS", "TENANT_ROUTES",
           "Access", "Cap", "Route", "Shape", "access_of", "anthropic_shaped", "route_of",
           "tenant_may_call"]

Cap = Literal["max_n", "max_tokens", "max_prompt_tokens"]
ALL_CAPS: frozenset[Cap] = frozenset({"max_n", "max_tokens", "max_prompt_tokens"})
OUTPUT_CAPS: frozenset[Cap] = frozenset({"max_tokens", "max_prompt_tokens"})
PROMPT_CAP: frozenset[Cap] = frozenset({"max_prompt_tokens"})


class Access(StrEnum):
    PUBLIC = "public"  # anyone, no key (liveness)
    TENANT = "tenant"  # tenant keys (and the master key)
    METRICS = "metrics"  # POOL_METRICS_KEY (and the master key)
    MASTER = "master"  # the master key only


class Shape(StrEnum):
    OPENAI = "openai"  # {"error": {"message", "type", "param", "code"}}
    ANTHROPIC = "anthropic"  # {"type": "error", "error": {"type", "message"}}


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    access: Access
    schema: type[BaseModel] | None = None  # the body's, checked for every caller
    caps: frozenset[Cap] = frozenset()  # the tenant's caps checked on the body
    shape: Shape = Shape.OPENAI
    count_tokens: bool = False


POST, GET = frozenset({"POST"}), frozenset({"GET"})
GET_HEAD = frozenset({"GET", "HEAD"})


def _model_route(path: str, schema: type[BaseModel], caps: frozenset[Cap], *,
                 tenant_prefixes: tuple[str, ...] = ("", "/v1"), shape: Shape = Shape.OPENAI,
                 count_tokens: bool = False) -> dict[str, Route]:
    """``path`` under each prefix LiteLLM serves it at ("", ``/v1``, ``/openai/v1``);
    tenants may call it under ``tenant_prefixes``. The Anthropic shape is LiteLLM's on
    the Anthropic paths it serves itself (not under ``/openai/v1``)."""
    return {f"{prefix}{path}": Route(
        POST, Access.TENANT if prefix in tenant_prefixes else Access.MASTER, schema,
        caps if prefix in tenant_prefixes else frozenset(),
        shape if prefix != "/openai/v1" else Shape.OPENAI, count_tokens)
        for prefix in ("", "/v1", "/openai/v1")}


ROUTES: dict[str, Route] = {
    **_model_route("/chat/completions", ChatRequest, ALL_CAPS),
    **_model_route("/embeddings", EmbeddingRequest, PROMPT_CAP),
    **_model_route("/responses", ResponsesRequest, OUTPUT_CAPS),
    **_model_route("/messages", MessagesRequest, OUTPUT_CAPS, tenant_prefixes=("/v1",),
                   shape=Shape.ANTHROPIC),
    **_model_route("/messages/count_tokens", CountTokensRequest, PROMPT_CAP,
                   tenant_prefixes=("/v1",), shape=Shape.ANTHROPIC, count_tokens=True),
    "/v1/models": Route(GET, Access.TENANT),
    "/models": Route(GET, Access.TENANT),
    "/health/liveliness": Route(GET_HEAD, Access.PUBLIC),
    "/health/liveness": Route(GET_HEAD, Access.PUBLIC),
    "/metrics": Route(GET, Access.METRICS),
    "/metrics/": Route(GET, Access.METRICS),  # where LiteLLM mounts it
}


def _pairs(access: Access) -> frozenset[tuple[str, str]]:
    return frozenset((method, path) for path, route in ROUTES.items()
                     if route.access is access for method in route.methods)


# views of the table (for tests and docs; the code reads ROUTES itself)
TENANT_ROUTES = _pairs(Access.TENANT)
PUBLIC_ROUTES = _pairs(Access.PUBLIC)
METRICS_ROUTES = _pairs(Access.METRICS)
SCHEMAS: dict[str, type[BaseModel]] = {path: route.schema for path, route in ROUTES.items()
                                       if route.schema is not None}


def route_of(path: str) -> Route | None:
    return ROUTES.get(path)


def access_of(method: str, path: str) -> Access | None:
    """Who may call ``method path`` besides the master key; None: the master key only."""
    route = ROUTES.get(path)
    return route.access if route is not None and method in route.methods else None


def tenant_may_call(method: str, path: str) -> bool:
    """True when a tenant key may call ``method path`` (CORS preflights included)."""
    if method == "OPTIONS":
        route = ROUTES.get(path)
        return route is not None and route.access is Access.TENANT
    return access_of(method, path) is Access.TENANT


def anthropic_shaped(path: str) -> bool:
    """True when errors on ``path`` (a trailing ``/`` ignored) leave in Anthropic's shape."""
    route = ROUTES.get(path.rstrip("/"))
    return route is not None and route.shape is Shape.ANTHROPIC
