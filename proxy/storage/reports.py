"""Spend reports (``pool spend``): requests, errors, tokens and cost per tenant,
optionally split by model alias, day (UTC) or key label."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

from proxy.errors import InvalidInput
from proxy.storage.tenants import get_tenant

__all__ = ["GROUPINGS", "SpendLine", "month_start", "parse_since", "spend_report", "total"]

GROUPINGS: dict[str, str] = {
    "tenant": "''",
    "model": "COALESCE(s.model_alias, '-')",
    "day": "to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "key": "COALESCE(s.key_label, '-')",
    "deployment": "COALESCE(s.deployment, '-')",
}
MASTER_KEY_TENANT = "(master key)"


@dataclass(frozen=True)
class SpendLine:
    tenant: str
    group: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def parse_since(raw: str | None) -> datetime:
    """``YYYY-MM-DD`` (UTC midnight); default: the first day of this month."""
    if raw is None:
        return month_start()
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("since", f"expected a date YYYY-MM-DD, got {raw!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def spend_report(conn: psycopg.Connection[tuple[object, ...]], *, since: datetime,
                 tenant: str | None = None, by: str = "tenant") -> list[SpendLine]:
    if by not in GROUPINGS:
        raise InvalidInput("by", f"expected one of {', '.join(GROUPINGS)}, got {by!r}")
    if tenant is not None:
        get_tenant(conn, tenant)
    query = f"""
        SELECT COALESCE(t.name, '{MASTER_KEY_TENANT}') AS tenant, {GROUPINGS[by]} AS "group",
               count(*)::int AS requests,
               (count(*) FILTER (WHERE s.status = 'error'))::int AS errors,
               COALESCE(sum(s.prompt_tokens), 0)::int AS prompt_tokens,
               COALESCE(sum(s.completion_tokens), 0)::int AS completion_tokens,
               COALESCE(sum(s.cost_usd), 0) AS cost_usd
          FROM spend s LEFT JOIN tenants t ON t.id = s.tenant_id
         WHERE s.created_at >= %(since)s AND (%(tenant)s::text IS NULL OR t.name = %(tenant)s)
         GROUP BY 1, 2 ORDER BY 1, 2"""
    with conn.cursor(row_factory=class_row(SpendLine)) as cur:
        return cur.execute(query, {"since": since, "tenant": tenant}).fetchall()


def total(lines: list[SpendLine]) -> SpendLine:
    return SpendLine(
        tenant="TOTAL", group="",
        requests=sum(x.requests for x in lines), errors=sum(x.errors for x in lines),
        prompt_tokens=sum(x.prompt_tokens for x in lines),
        completion_tokens=sum(x.completion_tokens for x in lines),
        cost_usd=sum((x.cost_usd for x in lines), Decimal(0)),
    )
