"""The shared key cache: key lookups that other proxy processes (and this one, after a
restart) may use while PostgreSQL is unreachable.

A successful lookup in PostgreSQL is copied to Redis (``<ns>:gw:key:<sha256>``,
expiring after ``POOL_AUTH_MAX_STALE``); only when PostgreSQL cannot answer does
:class:`proxy.plugin.auth.KeyResolver` read it, so a known key keeps working across a
proxy restart during an outage, while a never-seen key still gets 503. While
PostgreSQL answers, every process re-reads it after ``POOL_AUTH_CACHE_TTL``: a
revocation or a ``pool tenants set`` shows within that TTL everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from typing import Any

from proxy.storage.shared import SharedDown, SharedRedis
from proxy.storage.tenants import KeyIdentity

__all__ = ["RedisKeyCache", "identity_from_json"]

log = logging.getLogger("llm_pool.keycache")


def _is_dataclass_type(candidate: Any) -> bool:
    return isinstance(candidate, type) and dataclasses.is_dataclass(candidate)


def identity_from_json(raw: str | bytes) -> KeyIdentity:
    """The inverse of ``json.dumps(dataclasses.asdict(identity))``, nested dataclasses
    (e.g. the tenant's caps) included."""
    values = json.loads(raw)
    for spec in dataclasses.fields(KeyIdentity):
        value = values.get(spec.name)
        factory: Any = type(spec.default)
        if isinstance(value, dict) and _is_dataclass_type(factory):
            values[spec.name] = factory(**value)
    return KeyIdentity(**values)


class RedisKeyCache:
    def __init__(self, shared: SharedRedis, max_stale: float) -> None:
        self._shared = shared
        self._ttl = max(1, int(max_stale))

    def _key(self, key_hash: str) -> str:
        return self._shared.key("key", key_hash)

    async def store(self, key_hash: str, identity: KeyIdentity) -> None:
        value = json.dumps(dataclasses.asdict(identity))
        with contextlib.suppress(SharedDown):  # the local cache still has it
            await self._shared.call(lambda r: r.set(self._key(key_hash), value, ex=self._ttl))

    async def load(self, key_hash: str) -> KeyIdentity | None:
        try:
            raw = await self._shared.call(lambda r: r.get(self._key(key_hash)))
        except SharedDown:
            return None
        if raw is None:
            return None
        try:
            return identity_from_json(raw)
        except (TypeError, ValueError):  # written by another version of the gateway
            log.warning("key cache: unreadable entry for a key; ignored")
            return None
