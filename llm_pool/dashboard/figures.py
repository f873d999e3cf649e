"""The dashboard's figures, page by page, as :class:`~llm_pool.dashboard.tables.Table`
objects (the HTML, the CSV export and ``/api/figures`` all come from these).

- overview: month-to-date spend against each budget, spend per day, per tenant, alias,
  deployment and key label, the latest errors (the figures of ``pool spend``);
- requests: the request log (filters, pages of 100, newest first) and one request's row;
- latency: p50/p95 latency and time to first token per alias and per deployment;
- health: each deployment's cooldown now (LiteLLM's router state in Redis) and its
  requests and failures in the last hour and day (spend rows);
- live: each tenant's rpm, tpm and budget use now, with what is reserved in flight.

Keys are shown by label only; key secrets are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from redis import RedisError

from llm_pool.dashboard import queries
from llm_pool.dashboard.filters import Filters, Known
from llm_pool.dashboard.live import Live, cooldowns, tenant_use
from llm_pool.dashboard.tables import Column, Table
from proxy.storage.tenants import list_tenants

__all__ = ["PAGES", "Context", "page_tables", "request_row", "requests", "spend_json",
           "table_page"]

Conn = psycopg.Connection[tuple[object, ...]]
RECENT_ERRORS = 20
EXPORT_MAX = 10_000

SPEND = (Column("requests", "Requests", "int"), Column("errors", "Errors", "int"),
         Column("prompt_tokens", "Prompt tokens", "int"),
         Column("completion_tokens", "Completion tokens", "int"),
         Column("cost_usd", "Cost (USD)", "usd"))
GROUP_LABELS = {"model": "Alias", "deployment": "Deployment", "key": "Key label"}
PAGES = {"overview": "Overview", "requests": "Requests", "latency": "Latency",
         "health": "Deployment health", "live": "Live use"}


@dataclass
class Context:
    """Everything a page reads: PostgreSQL, Redis (``live.client`` None without
    POOL_REDIS_URL), the config's deployments (``{deployment id: alias}``), now."""

    conn: Conn
    live: Live
    config_deployments: dict[str, str]
    now: datetime

    def known(self) -> Known:
        return queries.known(self.conn, self.config_deployments)


def _spend_table(id_: str, title: str, lines: list[dict[str, Any]], by: str | None) -> Table:
    columns = [Column("tenant", "Tenant"), *([Column(by, GROUP_LABELS[by])] if by else []),
               *SPEND]
    return Table(id_, title, columns, lines)


def _budgets(ctx: Context, tenant: str | None) -> Table:
    rows = []
    for summary in list_tenants(ctx.conn):
        if tenant is not None and summary.name != tenant:
            continue
        budget = summary.monthly_budget_usd
        used = float(summary.month_spend_usd / budget) if budget else None
        rows.append({"tenant": summary.name, "month_spend_usd": summary.month_spend_usd,
                     "budget_usd": budget, "used": used})
    return Table("budgets", "Month to date against budget", [
        Column("tenant", "Tenant"), Column("month_spend_usd", "Month to date (USD)", "usd"),
        Column("budget_usd", "Budget (USD)", "money"), Column("used", "Used", "pct")], rows)


def _recent_errors(ctx: Context, filters: Filters) -> Table:
    errors = filters.but(status="error", page=1)
    rows, _ = queries.request_log(ctx.conn, errors, ctx.now, limit=RECENT_ERRORS)
    return Table("recent-errors", "Latest errors", [
        Column("at", "At (UTC)", "time"), Column("tenant", "Tenant"), Column("key", "Key label"),
        Column("alias", "Alias"), Column("deployment", "Deployment"),
        Column("error", "Error"), Column("request_id", "Request", "link")], rows,
        empty="no errors in this period", link=_request_href)


def _request_href(row: dict[str, Any]) -> str:
    from urllib.parse import quote

    return "/requests/" + quote(str(row["request_id"]), safe="")


def _days(lines: list[dict[str, Any]], filters: Filters, now: datetime) -> list[dict[str, Any]]:
    since, until = filters.window(now)
    per_day: dict[str, dict[str, Any]] = {}
    day: date = since.date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < until:
        per_day[day.isoformat()] = {"day": day.isoformat(), "requests": 0, "errors": 0,
                                    "cost_usd": Decimal(0)}
        day += timedelta(days=1)
    for line in lines:
        entry = per_day.setdefault(line["day"], {"day": line["day"], "requests": 0,
                                                 "errors": 0, "cost_usd": Decimal(0)})
        for name in ("requests", "errors", "cost_usd"):
            entry[name] += line[name]
    return list(per_day.values())


def overview(ctx: Context, filters: Filters) -> dict[str, Any]:
    def by(group: str) -> list[dict[str, Any]]:
        return queries.grouped(ctx.conn, filters, group, ctx.now)

    tenants = by("tenant")
    total = {"tenant": "TOTAL", **{c.key: sum(x[c.key] for x in tenants) for c in SPEND}}
    return {
        "total": total,
        "error_rate": total["errors"] / total["requests"] if total["requests"] else 0.0,
        "days": _days(by("day"), filters, ctx.now),
        "tables": [_budgets(ctx, filters.tenant),
                   _spend_table("per-tenant", "Per tenant", tenants, None),
                   _spend_table("per-model", "Per alias", by("model"), "model"),
                   _spend_table("per-deployment", "Per deployment", by("deployment"),
                                "deployment"),
                   _spend_table("per-key", "Per key label", by("key"), "key"),
                   _recent_errors(ctx, filters)],
    }


LOG = (Column("at", "At (UTC)", "time"), Column("tenant", "Tenant"), Column("key", "Key label"),
       Column("alias", "Alias"), Column("deployment", "Deployment"),
       Column("status", "Status"), Column("prompt_tokens", "Prompt tokens", "int"),
       Column("completion_tokens", "Completion tokens", "int"),
       Column("cost_usd", "Cost (USD)", "usd"), Column("latency_ms", "Latency (ms)", "ms"),
       Column("ttfb_ms", "First token (ms)", "ms"), Column("error", "Error"),
       Column("request_id", "Request", "link"))


def requests(ctx: Context, filters: Filters, export: bool = False) -> dict[str, Any]:
    if export:
        rows, count = queries.request_log(ctx.conn, filters.but(page=1), ctx.now,
                                          limit=EXPORT_MAX)
    else:
        rows, count = queries.request_log(ctx.conn, filters, ctx.now)
    return {"count": count, "tables": [Table("requests", f"Requests ({count})", LOG, rows,
                                             empty="no request matches",
                                             link=_request_href)]}


def _latency_table(id_: str, title: str, rows: list[dict[str, Any]], by: str) -> Table:
    return Table(id_, title, [
        Column(by, GROUP_LABELS[by]), Column("requests", "Requests", "int"),
        Column("error_rate", "Error rate", "pct"),
        Column("latency_p50_ms", "Latency p50 (ms)", "ms"),
        Column("latency_p95_ms", "Latency p95 (ms)", "ms"),
        Column("ttfb_p50_ms", "First token p50 (ms)", "ms"),
        Column("ttfb_p95_ms", "First token p95 (ms)", "ms")], rows)


def latency(ctx: Context, filters: Filters) -> dict[str, Any]:
    return {"tables": [
        _latency_table("latency-alias", "Per alias",
                       queries.latency(ctx.conn, filters, "model", ctx.now), "model"),
        _latency_table("latency-deployment", "Per deployment",
                       queries.latency(ctx.conn, filters, "deployment", ctx.now),
                       "deployment")]}


def health(ctx: Context, filters: Filters) -> dict[str, Any]:
    try:
        cooling = {c["deployment"]: c for c in cooldowns(ctx.live)} if ctx.live.client else {}
    except RedisError:
        return {"redis": False, "tables": []} | _health_tables(ctx, {})
    return {"redis": ctx.live.client is not None} | _health_tables(ctx, cooling)


def _health_tables(ctx: Context, cooling: dict[str, dict[str, Any]]) -> dict[str, Any]:
    failures = {f["deployment"]: f for f in queries.recent_failures(ctx.conn, ctx.now)}
    names = sorted(set(ctx.config_deployments) | set(cooling) | set(failures))
    rows = []
    for name in names:
        cool, fail = cooling.get(name, {}), failures.get(name, {})
        state = "cooling down" if cool else ("failing" if fail.get("errors_1h") else "ok")
        rows.append({"deployment": name, "alias": ctx.config_deployments.get(name),
                     "state": state, "cooldown_remaining_s": cool.get("remaining_s"),
                     "cooldown_status": cool.get("status_code"),
                     "cooldown_error": cool.get("error"),
                     **{k: fail.get(k, 0) for k in ("requests_1h", "errors_1h",
                                                     "requests_24h", "errors_24h")},
                     "last_error_at": fail.get("last_error_at"),
                     "last_error": fail.get("last_error")})
    return {"tables": [Table("health", "Deployments", [
        Column("deployment", "Deployment"), Column("alias", "Alias"), Column("state", "State"),
        Column("cooldown_remaining_s", "Cooldown left (s)", "int"),
        Column("cooldown_status", "Cooldown status"), Column("cooldown_error", "Cooldown cause"),
        Column("requests_1h", "Requests 1 h", "int"), Column("errors_1h", "Errors 1 h", "int"),
        Column("requests_24h", "Requests 24 h", "int"),
        Column("errors_24h", "Errors 24 h", "int"),
        Column("last_error_at", "Last error (UTC)", "time"),
        Column("last_error", "Last error")], rows, empty="no deployments known")]}


def live(ctx: Context, filters: Filters) -> dict[str, Any]:
    rows = []
    redis_ok = ctx.live.client is not None
    for summary in list_tenants(ctx.conn):
        if filters.tenant is not None and summary.name != filters.tenant:
            continue
        tenant_id = ctx.conn.execute("SELECT id FROM tenants WHERE name = %s",
                                     (summary.name,)).fetchone()
        try:
            use = tenant_use(ctx.live, int(str(tenant_id[0]))) if ctx.live.client and \
                tenant_id else {}
        except RedisError:
            use, redis_ok = {}, False
        budget = summary.monthly_budget_usd
        reserved = use.get("reserved_usd")
        committed = summary.month_spend_usd + Decimal(str(reserved or 0))
        rows.append({"tenant": summary.name, "rpm_used": use.get("rpm_used"),
                     "rpm_limit": summary.rpm_limit, "tpm_used": use.get("tpm_used"),
                     "tpm_limit": summary.tpm_limit,
                     "month_spend_usd": summary.month_spend_usd, "reserved_usd": reserved,
                     "budget_usd": budget,
                     "budget_used": float(committed / budget) if budget else None,
                     "max_n": summary.max_n, "max_tokens": summary.max_tokens,
                     "max_prompt_tokens": summary.max_prompt_tokens})
    return {"redis": redis_ok, "tables": [Table("live", "Tenants now", [
        Column("tenant", "Tenant"), Column("rpm_used", "Requests, last 60 s", "int"),
        Column("rpm_limit", "rpm limit", "int"), Column("tpm_used", "Tokens, last 60 s", "int"),
        Column("tpm_limit", "tpm limit", "int"),
        Column("month_spend_usd", "Month to date (USD)", "usd"),
        Column("reserved_usd", "Reserved now (USD)", "usd"),
        Column("budget_usd", "Budget (USD)", "money"),
        Column("budget_used", "Budget used incl. reserved", "pct"),
        Column("max_n", "Cap n", "int"), Column("max_tokens", "Cap max_tokens", "int"),
        Column("max_prompt_tokens", "Cap prompt tokens", "int")], rows,
        empty="no tenants")]}


BUILDERS = {"overview": overview, "requests": requests, "latency": latency, "health": health,
            "live": live}


def page_tables(ctx: Context, page: str, filters: Filters) -> dict[str, Any]:
    return BUILDERS[page](ctx, filters)


def table_page(table_id: str) -> str | None:
    """The page that draws table ``table_id``."""
    owners = {"budgets": "overview", "per-tenant": "overview", "per-model": "overview",
              "per-deployment": "overview", "per-key": "overview",
              "recent-errors": "overview", "requests": "requests",
              "latency-alias": "latency", "latency-deployment": "latency", "health": "health",
              "live": "live"}
    return owners.get(table_id)


def request_row(ctx: Context, request_id: str) -> dict[str, Any] | None:
    return queries.request_detail(ctx.conn, request_id)


def _line(line: dict[str, Any]) -> dict[str, Any]:
    return {**line, "cost_usd": float(line["cost_usd"])}


def spend_json(data: dict[str, Any]) -> dict[str, Any]:
    """The overview in the shape of ``pool spend --json`` lines (``/api/figures``)."""
    tables = {t.id: t for t in data["tables"]}
    return {
        "tenants": [_line(x) for x in tables["per-tenant"].rows],
        "total": _line(data["total"]),
        "error_rate": round(data["error_rate"], 4),
        "models": [_line(x) for x in tables["per-model"].rows],
        "deployments": [_line(x) for x in tables["per-deployment"].rows],
        "keys": [_line(x) for x in tables["per-key"].rows],
        "days": [_line(x) for x in data["days"]],
        "budgets": [{"tenant": b["tenant"], "month_spend_usd": float(b["month_spend_usd"]),
                     "budget_usd": None if b["budget_usd"] is None else float(b["budget_usd"]),
                     "used_pct": None if b["used"] is None else round(b["used"] * 100, 1)}
                    for b in tables["budgets"].rows],
        "recent_errors": [{"at": e["at"].isoformat(timespec="seconds"),
                           "tenant": e["tenant"], "key_label": e["key"],
                           "model_alias": e["alias"], "deployment": e["deployment"],
                           "error_class": e["error"], "request_id": e["request_id"]}
                          for e in tables["recent-errors"].rows],
    }

