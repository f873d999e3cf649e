"""The dashboard's figures, read from PostgreSQL (tables ``spend``, ``tenants``).

Per-tenant, per-alias, per-deployment, per-key and per-day lines come from
:func:`proxy.storage.reports.spend_report`, the query behind ``pool spend``, so the two
always agree. Key secrets never appear: keys are shown by label only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from proxy.storage.reports import SpendLine, month_start, spend_report, total
from proxy.storage.tenants import list_tenants

__all__ = ["PERIODS", "Filters", "figures"]

PERIODS = {"month": "this month", "7d": "last 7 days", "30d": "last 30 days",
           "90d": "last 90 days"}
RECENT_ERRORS = 20

RECENT_ERRORS_SQL = """
SELECT s.created_at, COALESCE(t.name, '(master key)') AS tenant, s.key_label, s.model_alias,
       s.deployment, s.error_class
  FROM spend s LEFT JOIN tenants t ON t.id = s.tenant_id
 WHERE s.status = 'error' AND s.created_at >= %(since)s
   AND (%(tenant)s::text IS NULL OR t.name = %(tenant)s)
 ORDER BY s.created_at DESC, s.id DESC LIMIT %(limit)s"""


@dataclass(frozen=True)
class Filters:
    period: str = "month"
    tenant: str | None = None

    @classmethod
    def parse(cls, period: str | None, tenant: str | None) -> Filters:
        return cls(period if period in PERIODS else "month", tenant or None)

    def since(self, now: datetime | None = None) -> datetime:
        now = now or datetime.now(UTC)
        if self.period == "month":
            return month_start(now)
        start = (now - timedelta(days=int(self.period.removesuffix("d")) - 1)).date()
        return datetime(start.year, start.month, start.day, tzinfo=UTC)


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _line(line: SpendLine, by: str | None = None) -> dict[str, Any]:
    """One line, in the shape of ``pool spend --json``."""
    out: dict[str, Any] = {"tenant": line.tenant}
    if by is not None:
        out[by] = line.group
    out.update(requests=line.requests, errors=line.errors, prompt_tokens=line.prompt_tokens,
               completion_tokens=line.completion_tokens, cost_usd=float(line.cost_usd))
    return out


def _days(lines: list[SpendLine], since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Every day of the period (empty days included), all selected tenants added up."""
    per_day: dict[str, dict[str, Any]] = {}
    day: date = since.date()
    while day <= now.date():
        per_day[day.isoformat()] = {"day": day.isoformat(), "requests": 0, "errors": 0,
                                    "cost_usd": Decimal(0)}
        day += timedelta(days=1)
    for line in lines:
        entry = per_day.setdefault(line.group, {"day": line.group, "requests": 0, "errors": 0,
                                                "cost_usd": Decimal(0)})
        entry["requests"] += line.requests
        entry["errors"] += line.errors
        entry["cost_usd"] += line.cost_usd
    return [{**d, "cost_usd": float(d["cost_usd"])} for d in per_day.values()]


def _budgets(conn: psycopg.Connection[tuple[object, ...]], tenant: str | None
             ) -> list[dict[str, Any]]:
    found = []
    for summary in list_tenants(conn):
        if tenant is not None and summary.name != tenant:
            continue
        budget = summary.monthly_budget_usd
        used = (float(summary.month_spend_usd / budget * 100) if budget else None)
        found.append({"tenant": summary.name, "budget_usd": _usd(budget),
                      "month_spend_usd": float(summary.month_spend_usd),
                      "used_pct": None if used is None else round(used, 1)})
    return found


def _iso(at: object) -> str:
    return at.isoformat(timespec="seconds") if isinstance(at, datetime) else str(at)


def _recent_errors(conn: psycopg.Connection[tuple[object, ...]], since: datetime,
                   tenant: str | None) -> list[dict[str, Any]]:
    rows = conn.execute(RECENT_ERRORS_SQL, {"since": since, "tenant": tenant,
                                            "limit": RECENT_ERRORS}).fetchall()
    return [{"at": _iso(at), "tenant": name, "key_label": label,
             "model_alias": alias, "deployment": deployment, "error_class": error}
            for at, name, label, alias, deployment, error in rows]


def figures(conn: psycopg.Connection[tuple[object, ...]], filters: Filters,
            now: datetime | None = None) -> dict[str, Any]:
    """Everything the page shows, JSON-ready (also served as ``/api/figures``)."""
    now = now or datetime.now(UTC)
    since = filters.since(now)

    def report(by: str) -> list[SpendLine]:
        return spend_report(conn, since=since, tenant=filters.tenant, by=by)

    tenants = report("tenant")
    overall = total(tenants)
    return {
        "since": since.date().isoformat(), "period": filters.period, "tenant": filters.tenant,
        "generated_at": now.isoformat(timespec="seconds"),
        "tenants": [_line(x) for x in tenants],
        "total": _line(overall),
        "error_rate": round(overall.errors / overall.requests, 4) if overall.requests else 0.0,
        "budgets": _budgets(conn, filters.tenant),
        "days": _days(report("day"), since, now),
        "models": [_line(x, "model") for x in report("model")],
        "deployments": [_line(x, "deployment") for x in report("deployment")],
        "keys": [_line(x, "key") for x in report("key")],
        "recent_errors": _recent_errors(conn, since, filters.tenant),
        "tenant_names": [b["tenant"] for b in _budgets(conn, None)],
    }
