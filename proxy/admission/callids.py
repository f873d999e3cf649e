"""Request ids a tenant chooses (``x-litellm-call-id``): one row per admitted request, never
shared.

LiteLLM takes a client's ``x-litellm-call-id`` as the request's id, and the spend row is
keyed by it. The SDK sends one per LLM call on purpose (the worker journals it before the
call, so a call a crash interrupts can be matched with its row). But a reused id made
requests share a row: ten answers under one id left one row, and another tenant's id
left the request with no row at all. So each id is claimed when its request is admitted
(:class:`CallIds`, in Redis when configured, shared by every process; else in this
process), and a request is refused (**409**, nothing sent) when its id:

- belongs to another tenant's request, or
- belongs to a request of the same tenant that was answered, or is still in flight.

The one reuse that stays allowed is the client's retry of its own failed request (the
OpenAI SDK retries a 5xx with the same headers): its answer replaces the error row. Only
ids a client chose are claimed (``custom_auth`` flags them): LiteLLM's own are unique
already. A claim costs one Redis script at admission and one ``SET`` at the end, and
keeps a key of about 100 bytes for :data:`DONE_TTL_MS`.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict

from proxy.errors import RequestRefused
from proxy.storage.shared import SharedDown, SharedRedis

__all__ = ["CLAIM", "CallIdTaken", "CallIds"]

INFLIGHT_TTL_MS = 15 * 60 * 1000  # a claim whose process died is freed after this
DONE_TTL_MS = 35 * 86400 * 1000  # an answered or failed id stays claimed for the month
LOCAL_MAX = 200_000

CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] .. ':failed' then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ':inflight', 'PX', ARGV[2])
return 1
"""


class CallIdTaken(RequestRefused):
    def __init__(self, call_id: str) -> None:
        super().__init__(message=f"request id {call_id[:128]!r} (x-litellm-call-id) is already "
                                 "used by another request; send a new id per request, or none",
                         type="invalid_request_error", param="x-litellm-call-id", code=409)


class _Local:
    """The same rules for one process (no Redis, or Redis is down)."""

    def __init__(self) -> None:
        self._ids: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def claim(self, call_id: str, owner: str) -> bool:
        now = time.monotonic()
        found = self._ids.get(call_id)
        if found is not None and found[1] > now and found[0] != f"{owner}:failed":
            return False
        self.mark(call_id, owner, "inflight")
        return True

    def mark(self, call_id: str, owner: str, state: str) -> None:
        ttl = INFLIGHT_TTL_MS if state == "inflight" else DONE_TTL_MS
        self._ids.pop(call_id, None)
        self._ids[call_id] = (f"{owner}:{state}", time.monotonic() + ttl / 1000)
        while len(self._ids) > LOCAL_MAX:
            self._ids.popitem(last=False)


class CallIds:
    def __init__(self, shared: SharedRedis | None) -> None:
        self._shared = shared
        self._local = _Local()
        # ids this process claimed, by tenant: only their requests' outcomes settle them
        # (a request refused for its id is logged as a failure too, and must not)
        self._mine: OrderedDict[str, str] = OrderedDict()
        self._claim = shared.script(CLAIM) if shared is not None else None

    def _key(self, call_id: str) -> str:
        assert self._shared is not None
        return self._shared.key("callid", call_id)

    async def claim(self, call_id: str, tenant_id: int) -> None:
        """Claim ``call_id`` for a request of ``tenant_id``, or raise :class:`CallIdTaken`."""
        owner = str(tenant_id)
        if self._shared is not None and self._claim is not None:
            script, keys = self._claim, [self._key(call_id)]
            try:
                taken = not await self._shared.call(
                    lambda _: script(keys=keys, args=[owner, INFLIGHT_TTL_MS]))
            except SharedDown:
                taken = not self._local.claim(call_id, owner)
        else:
            taken = not self._local.claim(call_id, owner)
        if taken:
            raise CallIdTaken(call_id)
        self._mine[call_id] = owner
        while len(self._mine) > LOCAL_MAX:
            self._mine.popitem(last=False)

    async def settle(self, call_id: str, tenant_id: int, answered: bool) -> None:
        """The request is over: its id stays taken (answered), or may be retried (failed)."""
        owner, state = str(tenant_id), "ok" if answered else "failed"
        if self._mine.get(call_id) != owner:
            return  # not a request this process admitted under that id
        if answered:
            del self._mine[call_id]
        self._local.mark(call_id, owner, state)
        if self._shared is not None:
            key = self._key(call_id)
            with contextlib.suppress(SharedDown):  # the local mark holds meanwhile
                await self._shared.call(lambda r: r.set(key, f"{owner}:{state}", px=DONE_TTL_MS))
