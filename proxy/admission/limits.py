"""Tenant rpm/tpm limits and budget reservations: admitted before the provider call,
settled after it.

:class:`Limits` runs the atomic Lua of :mod:`proxy.admission.reservations` in Redis when
``POOL_REDIS_URL`` is set, so every process and replica shares the same windows and
reservations. Without Redis, or while Redis is unreachable, the same rules run in
this process only (:class:`LocalLimits`; the month-to-date spend then comes from
:class:`proxy.admission.budget.BudgetTracker`), unless ``POOL_LIMITS_FAIL_CLOSED=1``: then a
tenant with a budget or a limit gets 503 with ``Retry-After`` until Redis is back.

Refusals: ``429`` ``rate_limit_error`` (rpm/tpm, with ``Retry-After``) and ``429``
``budget_exceeded`` (:class:`proxy.admission.budget.BudgetExceeded`).
"""

from __future__ import annotations

import functools
import logging
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.admission.budget import BudgetExceeded, BudgetTracker
from proxy.admission.reservations import (
    ADMIT,
    SETTLE,
    WINDOW_MS,
    Admission,
    parse_admission,
    tenant_keys,
)
from proxy.errors import RequestRefused
from proxy.storage.shared import SharedDown, SharedRedis

__all__ = ["Ask", "Limits", "LimitsUnavailable", "LocalLimits", "RateLimited", "Ticket"]

log = logging.getLogger("llm_pool.limits")

SEED_TTL = 40 * 86400  # seconds: a month's spend counter outlives its month
PROVISIONAL_SEED_TTL = 30  # seconds, when PostgreSQL could not be read
UNSETTLED_MAX = 100_000  # settlements kept while Redis is down (beyond: reservations expire)
UNAVAILABLE_RETRY_AFTER = 2
RATE_LIMIT_ERROR = "rate_limit_error"  # the OpenAI error type of a 429


class RateLimited(RequestRefused):
    def __init__(self, tenant: str, kind: str, limit: int, retry_after: float) -> None:
        wait = max(1, math.ceil(retry_after))
        super().__init__(
            message=(f"Rate limit exceeded for team: {tenant}. Limit of {limit} "
                     f"{'requests' if kind == 'rpm' else 'tokens'} per minute; retry in "
                     f"{wait} s"),
            type=RATE_LIMIT_ERROR,
            param=None, code=429, headers={"retry-after": str(wait)})


class LimitsUnavailable(RequestRefused):
    def __init__(self) -> None:
        super().__init__(message="the shared limits store (Redis) is unreachable; retry shortly",
                         type="service_unavailable", param=None, code=503,
                         headers={"retry-after": str(UNAVAILABLE_RETRY_AFTER)})


@dataclass(frozen=True)
class Ask:
    """What one request asks of its tenant's limits."""

    request_id: str
    tenant_id: int
    tenant: str
    rpm: int | None
    tpm: int | None
    budget: float | None
    prompt_tokens: int
    completion_tokens: int  # its completion limit (the request's, else the tenant's cap) x n
    input_price: float  # USD per token, the dearest deployment of the alias
    output_price: float

    @property
    def limited(self) -> bool:
        return self.budget is not None or bool(self.rpm) or bool(self.tpm)


@dataclass
class Ticket:
    """An admitted request: what was reserved, and where (Redis or this process)."""

    ask: Ask
    shared: bool
    completion_tokens: int
    cost: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    settled: bool = False


def _refuse(ask: Ask, found: Admission) -> None:
    if found.kind in ("rpm", "tpm"):
        limit = ask.rpm if found.kind == "rpm" else ask.tpm
        raise RateLimited(ask.tenant, found.kind, limit or 0, found.retry_after)
    if found.kind == "budget":
        assert ask.budget is not None
        raise BudgetExceeded(ask.tenant, ask.budget, found.spent)


# ----------------------------------------------------------------- per process


class LocalLimits:
    """The rules of :data:`proxy.admission.reservations.ADMIT`, for this process only."""

    def __init__(self, reservation_ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = reservation_ttl
        self._clock = clock
        self._rpm: defaultdict[int, deque[float]] = defaultdict(deque)
        self._tpm: defaultdict[int, dict[str, tuple[float, int]]] = defaultdict(dict)
        self._res: defaultdict[int, dict[str, tuple[float, float]]] = defaultdict(dict)

    def admit(self, ask: Ask, ticket_id: str, spent: float) -> Admission:
        now, window = self._clock(), WINDOW_MS / 1000
        rpm = self._rpm[ask.tenant_id]
        while rpm and rpm[0] <= now - window:
            rpm.popleft()
        if ask.rpm and len(rpm) >= ask.rpm:
            return Admission("rpm", retry_after=rpm[0] + window - now)
        tpm = self._tpm[ask.tenant_id]
        for key in [k for k, (at, _) in tpm.items() if at <= now - window]:
            del tpm[key]
        completion = ask.completion_tokens
        tokens, used = ask.prompt_tokens + completion, sum(n for _, n in tpm.values())
        if ask.tpm and used > 0 and used + tokens > ask.tpm:
            return Admission("tpm", retry_after=min(at for at, _ in tpm.values()) + window - now)
        cost = ask.prompt_tokens * ask.input_price + completion * ask.output_price
        res = self._res[ask.tenant_id]
        for key in [k for k, (deadline, _) in res.items() if deadline <= now]:
            del res[key]
        reserved = sum(c for _, c in res.values())
        if ask.budget is not None and (spent >= ask.budget or (
                reserved > 0 and spent + reserved + cost > ask.budget)):
            return Admission("budget", spent=spent, reserved=reserved)
        rpm.append(now)
        tpm[ticket_id] = (now, tokens)
        res[ticket_id] = (now + self._ttl, cost)
        return Admission("ok", completion_tokens=completion, cost=cost)

    def settle(self, ticket: Ticket, tokens: int) -> None:
        tenant = ticket.ask.tenant_id
        counted = self._tpm[tenant].get(ticket.id)
        if counted is not None:
            self._tpm[tenant][ticket.id] = (counted[0], tokens)
        self._res[tenant].pop(ticket.id, None)

    def reserved(self, tenant_id: int) -> float:
        return sum(c for _, c in self._res[tenant_id].values())


# ----------------------------------------------------------------- shared or local


async def _run_script(script: Any, keys: list[str], args: list[Any], _: Any) -> Any:
    return await script(keys=keys, args=args)

Seed = Callable[[int], Awaitable[float | None]]  # month-to-date spend from PostgreSQL


@dataclass(frozen=True)
class Outcome:
    """What a settled request really used; ``row`` is its spend row as JSON ('' for none)."""

    tokens: int
    cost: float
    row: str = ""


class Limits:
    def __init__(self, shared: SharedRedis | None, local: LocalLimits, budget: BudgetTracker,
                 seed: Seed, *, fail_closed: bool, reservation_ttl: float) -> None:
        self.shared = shared
        self.local = local
        self._budget = budget
        self._seed = seed
        self._fail_closed = fail_closed
        self._ttl_ms = int(reservation_ttl * 1000)
        self._unsettled: deque[tuple[list[str], list[Any]]] = deque(maxlen=UNSETTLED_MAX)
        self._admit = shared.script(ADMIT) if shared is not None else None
        self._settle = shared.script(SETTLE) if shared is not None else None

    @property
    def mode(self) -> str:
        """``shared`` (Redis) or ``local`` (this process: no Redis, or Redis is down)."""
        return "shared" if self.shared is not None and not self.shared.degraded else "local"

    async def admit(self, ask: Ask) -> Ticket:
        if self.shared is not None:
            try:
                return await self._admit_shared(ask)
            except SharedDown:
                if self._fail_closed and ask.limited:
                    raise LimitsUnavailable() from None
        return await self._admit_local(ask)

    async def _admit_shared(self, ask: Ask) -> Ticket:
        assert self.shared is not None and self._admit is not None
        ticket = Ticket(ask=ask, shared=True, completion_tokens=0, cost=0.0)
        keys = tenant_keys(self.shared.prefix, ask.tenant_id)
        args = [ticket.id, ask.rpm or 0, ask.tpm or 0,
                -1 if ask.budget is None else repr(float(ask.budget)), ask.prompt_tokens,
                ask.completion_tokens, repr(ask.input_price), repr(ask.output_price),
                self._ttl_ms, WINDOW_MS]
        order = [keys[k] for k in ("rpm", "tpm", "tpm:n", "tpm:sum", "res", "res:exp",
                                   "res:sum", "spent")]
        script = self._admit
        found = parse_admission(await self.shared.call(lambda _: script(keys=order, args=args)))
        if found.kind == "unseeded":
            await self._seed_spent(ask.tenant_id, keys["spent"])
            found = parse_admission(await self.shared.call(
                lambda _: script(keys=order, args=args)))
        _refuse(ask, found)
        ticket.completion_tokens, ticket.cost = found.completion_tokens, found.cost
        return ticket

    async def _seed_spent(self, tenant_id: int, key: str) -> None:
        assert self.shared is not None
        total = await self._seed(tenant_id)
        ttl = SEED_TTL
        if total is None:
            total, ttl = await self._budget.spent(tenant_id), PROVISIONAL_SEED_TTL
            log.warning("limits: month-to-date spend of tenant %d unreadable from PostgreSQL; "
                        "using %.6f for %d s", tenant_id, total, ttl)
        await self.shared.call(lambda r: r.set(key, repr(float(total)), nx=True, ex=ttl))

    async def _admit_local(self, ask: Ask) -> Ticket:
        ticket = Ticket(ask=ask, shared=False, completion_tokens=0, cost=0.0)
        spent = await self._budget.spent(ask.tenant_id) if ask.budget is not None else 0.0
        found = self.local.admit(ask, ticket.id, spent)
        _refuse(ask, found)
        ticket.completion_tokens, ticket.cost = found.completion_tokens, found.cost
        return ticket

    async def settle(self, ticket: Ticket | None, tenant_id: int | None, outcome: Outcome
                     ) -> bool:
        """Release the reservation, count what was used and journal the row; True when
        that happened in Redis (the row is journaled), False when the caller must keep
        the row itself (no Redis, or Redis is down)."""
        if ticket is not None:
            self.local.settle(ticket, outcome.tokens)
        if self.shared is None or self._settle is None:
            return False
        keys = self._settle_keys(tenant_id)
        args = [ticket.id if ticket is not None and ticket.shared else "", outcome.tokens,
                repr(outcome.cost), outcome.row]
        script = self._settle
        try:
            await self.shared.call(lambda _: script(keys=keys, args=args))
        except SharedDown:
            if args[0] or args[2] != repr(0.0):  # a reservation or a cost: settle it later
                self._unsettled.append((keys, [*args[:3], ""]))
            return False
        await self._settle_late()
        return True

    async def _settle_late(self) -> None:
        """Settle in Redis what could not be while it was down (the rows themselves went
        to the in-process writer): reservations are released, spend counted."""
        assert self.shared is not None and self._settle is not None
        script = self._settle
        while self._unsettled:
            keys, args = self._unsettled[0]
            try:
                await self.shared.call(functools.partial(_run_script, script, keys, args))
            except SharedDown:
                return
            self._unsettled.popleft()

    def _settle_keys(self, tenant_id: int | None) -> list[str]:
        assert self.shared is not None
        stream = self.shared.key("spend")
        if tenant_id is None:  # the master key: only the journal entry matters
            unused = self.shared.key("none")
            return [unused] * 7 + [stream]
        keys = tenant_keys(self.shared.prefix, tenant_id)
        return [keys[k] for k in ("tpm", "tpm:n", "tpm:sum", "res", "res:exp", "res:sum",
                                  "spent")] + [stream]

    async def reserved(self, tenant_id: int) -> float:
        """The tenant's reservations in flight (Redis, else this process)."""
        if self.shared is not None:
            key = tenant_keys(self.shared.prefix, tenant_id)["res:sum"]
            try:
                value: Any = await self.shared.call(lambda r: r.get(key))
                return float(value or 0.0)
            except SharedDown:
                pass
        return self.local.reserved(tenant_id)
