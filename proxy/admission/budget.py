"""Monthly budgets: month-to-date spend per tenant, kept in memory.

The request path never sums spend rows. A background task re-reads the
month-to-date totals from PostgreSQL every ``refresh_seconds``; between two
reads, the spend this process has seen since the last read started (rows still
buffered, and rows committed since) is added on top, so a tenant is stopped
within about one request of crossing its budget in this process, and within
one refresh of crossing it through other proxy processes. A row committed while
a read runs may be counted twice until the next read: the estimate errs high,
never low. If PostgreSQL is away the last totals are kept (and the local spend
keeps adding up).

Over budget, :func:`check_budget` raises :class:`BudgetExceeded`, which the proxy
turns into HTTP 429 with ``error.type == "budget_exceeded"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from proxy.errors import BUDGET_EXCEEDED, RequestRefused
from proxy.spend.rows import SpendRow

__all__ = ["BudgetExceeded", "BudgetTracker", "format_usd", "month_spend"]

log = logging.getLogger("llm_pool.budget")

MONTH_TO_DATE = """
SELECT tenant_id, sum(cost_usd)::float8 FROM spend
 WHERE tenant_id IS NOT NULL
   AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
 GROUP BY tenant_id"""

TENANT_MONTH_TO_DATE = """
SELECT COALESCE(sum(cost_usd), 0)::float8 FROM spend
 WHERE tenant_id = %s
   AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"""

BUDGET_HEADERS = {"x-should-retry": "false"}  # the openai client must not retry it


def format_usd(amount: float) -> str:
    """``$50.00``; sub-cent amounts keep enough digits to be told apart from zero."""
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.6f}".rstrip("0")


class BudgetExceeded(RequestRefused):
    """HTTP 429, ``error.type`` ``budget_exceeded``, a message naming the budget."""

    def __init__(self, tenant: str, budget: float, spent: float) -> None:
        super().__init__(
            message=(f"tenant {tenant} has reached its monthly budget of {format_usd(budget)} "
                     f"(spent {format_usd(spent)})"),
            type=BUDGET_EXCEEDED,
            param=None,
            code=429,
            headers=dict(BUDGET_HEADERS),
        )
        self.tenant = tenant
        self.budget = budget
        self.spent = spent


async def month_spend(pool: AsyncConnectionPool, tenant_id: int) -> float:
    """One tenant's month-to-date spend, from its spend rows."""
    async with pool.connection() as conn:
        row = await (await conn.execute(TENANT_MONTH_TO_DATE, (tenant_id,))).fetchone()
    return float(row[0]) if row else 0.0


PoolSource = Callable[[], Awaitable[AsyncConnectionPool]]


class BudgetTracker:
    def __init__(self, pool: PoolSource, refresh_seconds: float, first_read_timeout: float
                 ) -> None:
        self._pool = pool
        self._refresh = refresh_seconds
        self._first_read_timeout = first_read_timeout
        self._db_totals: dict[int, float] = {}
        self._pending: defaultdict[int, float] = defaultdict(float)  # buffered, not yet written
        self._committed: defaultdict[int, float] = defaultdict(float)  # written since last read
        self._during_read: defaultdict[int, float] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None

    # -- request path
    async def spent(self, tenant_id: int) -> float:
        if self._started is None:
            await self._start()
        return (self._db_totals.get(tenant_id, 0.0) + self._pending.get(tenant_id, 0.0)
                + self._committed.get(tenant_id, 0.0))

    async def check(self, tenant: str, tenant_id: int, budget: float | None) -> None:
        if budget is None:
            return
        spent = await self.spent(tenant_id)
        if spent >= budget:
            raise BudgetExceeded(tenant, budget, spent)

    # -- fed by the spend writer
    def queued(self, row: SpendRow) -> None:
        if row.tenant_id is not None and row.cost_usd:
            self._pending[row.tenant_id] += row.cost_usd

    def committed(self, rows: Sequence[SpendRow]) -> None:
        for row in rows:
            if row.tenant_id is None or not row.cost_usd:
                continue
            self._pending[row.tenant_id] -= row.cost_usd
            self._committed[row.tenant_id] += row.cost_usd
            if self._during_read is not None:
                self._during_read[row.tenant_id] += row.cost_usd

    # -- background
    async def _start(self) -> None:
        if self._started is not None:
            return await asyncio.shield(self._started)
        self._started = asyncio.get_running_loop().create_future()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._first_read_timeout):
                    await self.refresh()
        finally:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="budget-refresh")
            self._started.set_result(None)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self.refresh()

    async def refresh(self) -> bool:
        """Re-read the month-to-date totals; False (totals kept) if PostgreSQL failed."""
        self._during_read = defaultdict(float)
        try:
            pool = await self._pool()
            async with pool.connection() as conn:
                rows = await (await conn.execute(MONTH_TO_DATE)).fetchall()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("budget: cannot read month-to-date spend (%s); keeping last totals", exc)
            self._during_read = None
            return False
        self._db_totals = {int(tenant): float(total) for tenant, total in rows}
        self._committed, self._during_read = self._during_read, None
        return True
