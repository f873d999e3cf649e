"""``custom_auth`` for the stock proxy: a tenant API key -> ``UserAPIKeyAuth``.

Loaded by name from the YAML (``general_settings.custom_auth: proxy.plugin.auth.custom_auth``).
LiteLLM then calls it for every authenticated route, the master key included.

- The master key (``LITELLM_MASTER_KEY``) is the admin key, as without custom auth.
- A tenant key maps to ``team_id``/``team_alias`` = the tenant name (the ``team`` and
  ``team_alias`` labels of LiteLLM's metrics), ``key_alias`` = the key label. Its
  ``team_metadata`` says the team has no logging callbacks of its own (``logging: []``,
  LiteLLM's team-based logging setting): else, for every request of a key with a
  ``team_id``, LiteLLM looked for team callbacks in the YAML's
  ``default_team_settings`` by deep-copying the whole loaded config. The tenant id,
  budget, rpm/tpm limits and caps travel in ``metadata``
  as one :class:`proxy.context.TenantContext` to the limits hook
  (:mod:`proxy.admission.limits`, per tenant across all its keys and every proxy
  process) and the spend rows.
- Tenant keys may call the tenant routes of :data:`proxy.edge.routes.ROUTES` only: 403
  elsewhere (:mod:`proxy.edge.guard` refuses the others before LiteLLM sees them; the same
  check here covers a tenant key sent beside the master key in another header).
- Tenant requests on model routes: LiteLLM's control headers and a second credential
  are refused and every header off the allowlist removed (:mod:`proxy.edge.headers`);
  ``model`` must be one alias (:mod:`proxy.edge.models`); the body is checked
  (:mod:`proxy.edge.validation`): 413 when too large, 400 naming the field when malformed,
  unknown or carrying credentials, tags bounded (:mod:`proxy.edge.tags`), and against the
  tenant's consumption caps (:mod:`proxy.edge.caps`), before any provider call. The caps
  travel in the context to the pre-call hook, which checks the request again as
  LiteLLM merged it (:mod:`proxy.edge.merged`). ``/v1/messages/count_tokens`` counts
  toward the tenant's rpm and tpm here (LiteLLM runs no pre-call hook for it).
- Unknown, revoked or missing key: HTTP 401 ``{"error": {"type": "auth_error", ...}}``.
  A key that is not of the gateway's format (prefix, length, and an HMAC checksum
  keyed with the server secret; see :func:`proxy.storage.tenants.key_format`) is
  refused without a lookup; a key of an older shape (CRC32 checksum, legacy) is looked
  up only while an active key of that format exists (:class:`KeyFormats`).

Lookups are cached in memory (:class:`KeyCache`) for ``POOL_AUTH_CACHE_TTL`` seconds,
unknown keys included, so a request costs a dict lookup and a revocation shows
within that TTL. While PostgreSQL is unreachable, keys seen before keep working
for ``POOL_AUTH_MAX_STALE`` seconds, also in a process that never saw them (a
restart) when Redis is configured (:mod:`proxy.admission.keycache`); a never-seen key gets 503.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth

from proxy import context
from proxy.admission.estimate import alias_output_limit
from proxy.edge import guard as edge
from proxy.edge.caps import Limits, check_caps
from proxy.edge.headers import allowed_headers, check_tenant_headers
from proxy.edge.models import check_model
from proxy.edge.routes import route_of
from proxy.edge.tags import TAG_HEADER, check_tags
from proxy.edge.validation import check_body
from proxy.errors import AUTH_ERROR, RequestRefused
from proxy.plugin import internals
from proxy.plugin.refusals import to_litellm
from proxy.settings import DEFAULT_CAPS, DEFAULT_TAG_LIMITS, ProxySettings, TagLimits
from proxy.storage.tenants import (
    KEY_FORMAT_HMAC,
    KEY_PREFIX,
    Caps,
    KeyGate,
    KeyIdentity,
    hash_key,
    key_format,
)

__all__ = ["AuthFailed", "Forbidden", "KeyCache", "KeyFormats", "KeyResolver", "NotStarted",
           "StoreDown", "Unauthorized", "custom_auth", "identity_auth", "wire"]

log = logging.getLogger("llm_pool.auth")

CACHE_MAX_ENTRIES = 50_000
DB_RETRY_AFTER = 1.0  # seconds without trying PostgreSQL again after a failed lookup


class Unauthorized(RequestRefused):
    def __init__(self, message: str) -> None:
        super().__init__(message=message, type=AUTH_ERROR,
                         param="api_key", code=401)


class Forbidden(RequestRefused):
    def __init__(self, message: str) -> None:
        super().__init__(message=message, type=AUTH_ERROR,
                         param=None, code=403)


class StoreDown(RequestRefused):
    def __init__(self) -> None:
        super().__init__(message="the key store (PostgreSQL) is unreachable and this key has "
                                 "not been seen recently; retry shortly",
                         type="service_unavailable", param=None, code=503,
                         headers={"retry-after": "2"})


class AuthFailed(RequestRefused):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(message=f"gateway auth failed: {type(cause).__name__}",
                         type="internal_server_error", param=None, code=500)


@dataclass
class _Entry:
    identity: KeyIdentity | None  # None: no such key
    auth: UserAPIKeyAuth | None
    fetched_at: float


class KeyCache:
    """Lookups by key hash, oldest evicted first; O(1) per request."""

    def __init__(self, max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self._entries: dict[str, _Entry] = {}
        self._max = max_entries

    def get(self, key_hash: str) -> _Entry | None:
        return self._entries.get(key_hash)

    def put(self, key_hash: str, entry: _Entry) -> None:
        self._entries.pop(key_hash, None)
        if len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = entry

    def clear(self) -> None:
        self._entries.clear()


Lookup = Callable[[str], Awaitable[KeyIdentity | None]]


class SharedKeys(Protocol):
    """Lookups shared by every proxy process (:class:`proxy.admission.keycache.RedisKeyCache`)."""

    async def store(self, key_hash: str, identity: KeyIdentity) -> None: ...

    async def load(self, key_hash: str) -> KeyIdentity | None: ...


STORE_ERRORS = (psycopg.Error, OSError, TimeoutError)  # psycopg_pool.PoolTimeout included
STALE_REFRESH_WAIT = 0.05  # seconds a request waits for a refresh before using its cached entry


class KeyResolver:
    """Key hash -> cache entry. A fresh entry is a dict lookup; an expired one is
    refreshed from PostgreSQL (one query per key, however many requests wait). When
    PostgreSQL is slow or away and the key was seen within ``max_stale``, the request
    goes on with the cached entry and the refresh continues in the background, so an
    outage neither fails nor slows requests of known keys."""

    def __init__(self, lookup: Lookup, *, ttl: float, max_stale: float,
                 clock: Callable[[], float] = time.monotonic,
                 shared: SharedKeys | None = None) -> None:
        self._lookup = lookup
        self._shared = shared
        self._ttl = ttl
        self._max_stale = max_stale
        self._clock = clock
        self._cache = KeyCache()
        self._inflight: dict[str, asyncio.Task[_Entry]] = {}
        self._store_failing = False
        self._retry_at = 0.0

    async def resolve(self, key_hash: str) -> _Entry:
        now = self._clock()
        entry = self._cache.get(key_hash)
        if entry is not None and now - entry.fetched_at < self._ttl:
            return entry
        stale = entry if entry is not None and now - entry.fetched_at < self._max_stale else None
        if self._store_failing and now < self._retry_at:
            return stale if stale is not None else await self._from_shared(key_hash)
        task = self._fetch_task(key_hash)
        if stale is not None:
            wait = 0.0 if self._store_failing else STALE_REFRESH_WAIT
            done, _ = await asyncio.wait({task}, timeout=wait)
            if not done:
                return stale
        try:
            return await asyncio.shield(task)
        except STORE_ERRORS:
            return stale if stale is not None else await self._from_shared(key_hash)

    async def _from_shared(self, key_hash: str) -> _Entry:
        """PostgreSQL is away and this process has no entry: another process's (or an
        earlier run's) lookup from Redis, if one is recent enough; else 503."""
        identity = await self._shared.load(key_hash) if self._shared is not None else None
        if identity is None:
            raise StoreDown()
        usable = not identity.revoked
        entry = _Entry(identity=identity, auth=identity_auth(identity, key_hash) if usable
                       else None, fetched_at=self._clock() - self._ttl)  # refreshed when it can
        self._cache.put(key_hash, entry)
        return entry

    def _fetch_task(self, key_hash: str) -> asyncio.Task[_Entry]:
        task = self._inflight.get(key_hash)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key_hash))
            self._inflight[key_hash] = task
            task.add_done_callback(lambda done: self._fetched(key_hash, done))
        return task

    def _fetched(self, key_hash: str, task: asyncio.Task[_Entry]) -> None:
        self._inflight.pop(key_hash, None)
        if not task.cancelled():
            task.exception()  # retrieved here: a background refresh may have no awaiter

    async def _fetch(self, key_hash: str) -> _Entry:
        try:
            identity = await self._lookup(key_hash)
        except STORE_ERRORS as exc:
            if not self._store_failing:
                log.warning("auth: key store unreachable (%s: %s); known keys are served from "
                            "the cache", type(exc).__name__, exc)
            self._store_failing = True
            self._retry_at = self._clock() + DB_RETRY_AFTER
            raise
        if self._store_failing:
            log.warning("auth: key store reachable again")
        self._store_failing = False
        usable = identity is not None and not identity.revoked
        auth = identity_auth(identity, key_hash) if identity is not None and usable else None
        entry = _Entry(identity=identity, auth=auth, fetched_at=self._clock())
        self._cache.put(key_hash, entry)
        if identity is not None and self._shared is not None:
            await self._shared.store(key_hash, identity)
        return entry


def identity_auth(identity: KeyIdentity, key_hash: str) -> UserAPIKeyAuth:
    """The key's ``UserAPIKeyAuth`` (cached); :func:`authenticate` adds each request's
    :class:`~proxy.context.TenantContext` (budget, rpm/tpm: enforced by
    :mod:`proxy.admission.limits`, shared through Redis, not by the stock limiter)."""
    auth = UserAPIKeyAuth(
        key_alias=identity.label,
        team_id=identity.tenant,
        team_alias=identity.tenant,
        team_metadata={"logging": []},  # no team callbacks: no YAML lookup (docstring)
        user_role=LitellmUserRoles.INTERNAL_USER,
    )
    auth.api_key = auth.token = key_hash  # what LiteLLM logs as user_api_key_hash
    return auth


def _master_auth(master_key: str) -> UserAPIKeyAuth:
    return UserAPIKeyAuth(api_key=master_key, user_role=LitellmUserRoles.PROXY_ADMIN,
                          metadata=context.to_metadata(context.MASTER))


def _shown(api_key: str) -> str:
    return api_key[: len(KEY_PREFIX) + 4] + "..." if api_key.startswith(KEY_PREFIX) else "the key"


class KeyFormats:
    """The :class:`~proxy.storage.tenants.KeyGate` (server secret, formats of the active
    keys), re-read at most every ``ttl`` seconds. While PostgreSQL cannot say, the last
    one read stays (keys are only made in format 3, so the older formats' set only
    shrinks); before any was read, a key's shape is enough and the lookup decides."""

    def __init__(self, read: Callable[[], Awaitable[KeyGate]], ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._known: KeyGate | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def gate(self) -> KeyGate | None:
        """The gate; the caller that finds it due starts a re-read in the background and
        goes on with the gate it knows (a PostgreSQL outage never slows a request), and
        until a first one is known every caller waits for that read (a burst of forged
        keys at start-up is refused by the gate too, not looked up)."""
        now = self._clock()
        reading = self._reading
        if reading is None or (reading.done() and now - self._read_at >= self._ttl):
            self._read_at = now
            reading = self._reading = asyncio.get_running_loop().create_task(self._refresh())
        if self._known is None and not reading.done():
            await asyncio.shield(reading)  # a known gate is used while it is re-read
        return self._known

    async def _refresh(self) -> None:
        try:
            known = await self._read()
        except STORE_ERRORS:
            return  # the last gate read stays
        self._announce(known)
        self._known = known

    def _announce(self, gate: KeyGate) -> None:
        """Log what changed: older formats now active, a missing secret."""
        before = self._known
        old = sorted(gate.active_formats - {KEY_FORMAT_HMAC})
        if old and (before is None or old != sorted(before.active_formats - {KEY_FORMAT_HMAC})):
            log.warning("auth: active keys of older formats %s: a forged key of such a shape "
                        "costs a key lookup; replace them (`pool keys create`, then `pool keys "
                        "revoke`)", old)
        if gate.secret is None and (before is None or before.secret is not None):
            log.warning("auth: no key secret in the database (run `pool db migrate`): keys "
                        "are checked by their shape only")


async def _check_request(request: Request, route: str, max_bytes: int) -> Any:
    """The parsed body of a route with a schema, after the size and schema checks."""
    found = route_of(route)
    if found is None or found.schema is None:
        return None
    length = request.headers.get("content-length")
    size = int(length) if length and length.isdigit() else len(await request.body())
    body = await internals.read_request_body(request) if size <= max_bytes else None
    check_body(route, body, size, max_bytes)
    return body


async def _known_format(api_key: str, formats: KeyFormats | None) -> None:
    gate = await formats.gate() if formats is not None else None
    if not (gate.admits(api_key) if gate is not None else key_format(api_key) is not None):
        raise Unauthorized(f"invalid API key: {_shown(api_key)} is not a valid key")


async def authenticate(resolver: KeyResolver, master_key: str | None, request: Request,
                       api_key: str, max_request_bytes: int = 4_000_000, *,
                       default_caps: Caps = DEFAULT_CAPS, formats: KeyFormats | None = None,
                       tags: TagLimits = DEFAULT_TAG_LIMITS) -> UserAPIKeyAuth:
    route = internals.request_route(request)
    if master_key and secrets.compare_digest(api_key.encode(), master_key.encode()):
        await _check_request(request, route, max_request_bytes)
        return _master_auth(master_key)
    if not api_key:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    await _known_format(api_key, formats)
    entry = await resolver.resolve(hash_key(api_key))
    if entry.identity is None or entry.auth is None:
        reason = "was revoked" if entry.identity is not None else "is not a valid key"
        raise Unauthorized(f"invalid API key: {_shown(api_key)} {reason}")
    if not edge.tenant_may_call(request.method, route):
        raise Forbidden(f"{request.method} {route} is not available to tenant keys; they may "
                        "call the model endpoints only")
    _check_tenant_headers(request)
    body = await _check_request(request, route, max_request_bytes)
    if isinstance(body, dict):
        check_model(body, internals.router_aliases)
    check_tags(body, request.headers.getlist(TAG_HEADER), tags)
    limits = Limits.of(entry.identity.caps, default_caps)
    check_caps(route, body, limits, entry.identity.tenant, alias_output_limit)
    auth = entry.auth.model_copy(deep=False)  # LiteLLM sets per-request fields on it
    auth.metadata = context.to_metadata(context.TenantContext.of(
        entry.identity, limits,
        client_call_id=request.headers.get("x-litellm-call-id") is not None))
    return auth


def _check_tenant_headers(request: Request) -> None:
    """400/401 for LiteLLM control headers, a query or two keys; then only the allowed
    headers reach LiteLLM (:mod:`proxy.edge.headers`)."""
    headers = list(request.scope.get("headers") or [])
    check_tenant_headers(headers, request.scope.get("query_string") or b"")
    internals.replace_request_headers(request, allowed_headers(headers))


class AuthState(Protocol):
    """What ``custom_auth`` reads of the process state (``ProxyState``)."""

    @property
    def settings(self) -> ProxySettings: ...

    @property
    def keys(self) -> KeyResolver: ...

    @property
    def key_formats(self) -> KeyFormats: ...


CountTokens = Callable[[context.TenantContext, Any], Awaitable[None]]


@dataclass(frozen=True)
class _Wiring:
    state: Callable[[], AuthState]
    count_tokens: CountTokens


_wiring: _Wiring | None = None
_refused_unwired: list[bool] = []  # the log line is said once
NOT_STARTED = ("the gateway was not started by `pool proxy` (a bare `litellm --config` runs "
               "without its edge and patches): every request is refused; run `pool proxy`")


class NotStarted(RequestRefused):
    def __init__(self) -> None:
        super().__init__(message=NOT_STARTED, type="service_unavailable", param=None, code=503)


def wire(state: Callable[[], AuthState], count_tokens: CountTokens) -> None:
    """Hand ``custom_auth`` the process state and the count-tokens admission; called by
    the start-up (:mod:`proxy.plugin.startup`) in every worker process."""
    global _wiring
    _wiring = _Wiring(state, count_tokens)


async def custom_auth(request: Request, api_key: str | None) -> UserAPIKeyAuth:
    """The function named in ``general_settings.custom_auth``.

    Only ``ProxyException`` may leave it: LiteLLM turns any other exception from
    custom auth into a bare 500 (it probes it for Prisma errors, and Prisma is absent),
    so the gateway's refusals leave through :func:`proxy.plugin.refusals.to_litellm`.
    Without the start-up (:func:`wire` not called) it refuses every request, fail closed.
    """
    wiring = _wiring
    if wiring is None:
        if not _refused_unwired:
            _refused_unwired.append(True)
            log.error("auth: %s", NOT_STARTED)
        raise to_litellm(NotStarted())
    try:
        gw = wiring.state()
        auth = await authenticate(gw.keys, gw.settings.master_key, request, api_key or "",
                                  gw.settings.max_request_bytes,
                                  default_caps=gw.settings.default_caps,
                                  formats=gw.key_formats, tags=gw.settings.tag_limits)
        tenant = context.from_metadata(auth.metadata)
        route = route_of(internals.request_route(request))
        if isinstance(tenant, context.TenantContext) and route is not None and route.count_tokens:
            await wiring.count_tokens(tenant, await internals.read_request_body(request))
        return auth
    except RequestRefused as exc:
        raise to_litellm(exc) from exc
    except ProxyException:
        raise
    except Exception as exc:
        log.exception("auth: unexpected error")
        raise to_litellm(AuthFailed(exc)) from exc
