"""The dashboard's SQL over the gateway's tables (``spend``, ``tenants``), every query
under the same filters (:class:`~llm_pool.dashboard.filters.Filters`). Grouped figures
count exactly what ``pool spend`` counts (one row per request, errors included)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from llm_pool.dashboard.filters import Filters, Known

__all__ = ["GROUPS", "LOG_PAGE", "grouped", "known", "latency", "recent_failures",
           "request_detail", "request_log"]

Conn = psycopg.Connection[tuple[object, ...]]

MASTER = "(master key)"
GROUPS = {"tenant": "''", "model": "COALESCE(s.model_alias, '-')",
          "deployment": "COALESCE(s.deployment, '-')", "key": "COALESCE(s.key_label, '-')",
          "day": "to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}
LOG_PAGE = 100
FROM = "FROM spend s LEFT JOIN tenants t ON t.id = s.tenant_id"
WHERE = """
 WHERE s.created_at >= %(since)s AND s.created_at < %(until)s
   AND (%(tenant)s::text IS NULL OR t.name = %(tenant)s)
   AND (%(alias)s::text IS NULL OR s.model_alias = %(alias)s)
   AND (%(deployment)s::text IS NULL OR s.deployment = %(deployment)s)
   AND (%(status)s::text IS NULL OR s.status = %(status)s)"""


def _params(filters: Filters, now: datetime) -> dict[str, Any]:
    since, until = filters.window(now)
    return {"since": since, "until": until, "tenant": filters.tenant, "alias": filters.alias,
            "deployment": filters.deployment, "status": filters.status}


def known(conn: Conn, config_aliases: dict[str, str] | None = None) -> Known:
    """Tenants, and the aliases and deployments of the spend rows and of the config."""
    tenants = [str(r[0]) for r in conn.execute("SELECT name FROM tenants ORDER BY name")]
    aliases = {str(r[0]) for r in conn.execute(
        "SELECT DISTINCT model_alias FROM spend WHERE model_alias IS NOT NULL")}
    deployments = {str(r[0]) for r in conn.execute(
        "SELECT DISTINCT deployment FROM spend WHERE deployment IS NOT NULL")}
    config = config_aliases or {}
    return Known(tenants=tenants, aliases=sorted(aliases | set(config.values())),
                 deployments=sorted(deployments | set(config)))


def grouped(conn: Conn, filters: Filters, by: str, now: datetime) -> list[dict[str, Any]]:
    """Requests, errors, tokens and cost per tenant (and ``by``), as ``pool spend``."""
    query = f"""
        SELECT COALESCE(t.name, '{MASTER}') AS tenant, {GROUPS[by]} AS grp,
               count(*)::int, (count(*) FILTER (WHERE s.status = 'error'))::int,
               COALESCE(sum(s.prompt_tokens), 0)::bigint,
               COALESCE(sum(s.completion_tokens), 0)::bigint, COALESCE(sum(s.cost_usd), 0)
          {FROM} {WHERE} GROUP BY 1, 2 ORDER BY 1, 2"""
    rows = conn.execute(query, _params(filters, now)).fetchall()
    return [{"tenant": tenant, **({by: group} if by != "tenant" else {}), "requests": requests,
             "errors": errors, "prompt_tokens": int(str(prompt)),
             "completion_tokens": int(str(completion)), "cost_usd": cost}
            for tenant, group, requests, errors, prompt, completion, cost in rows]


def latency(conn: Conn, filters: Filters, by: str, now: datetime) -> list[dict[str, Any]]:
    """Latency and time to first token (p50, p95, in ms) of the answered requests per
    alias (``by="model"``) or deployment, next to the error rate of all of them."""
    column = GROUPS[by]
    query = f"""
        SELECT {column} AS grp, count(*)::int AS requests,
               (count(*) FILTER (WHERE s.status = 'error'))::int AS errors,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY s.latency_ms)
                 FILTER (WHERE s.status = 'ok'),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY s.latency_ms)
                 FILTER (WHERE s.status = 'ok'),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY s.ttfb_ms)
                 FILTER (WHERE s.status = 'ok'),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY s.ttfb_ms)
                 FILTER (WHERE s.status = 'ok')
          {FROM} {WHERE} GROUP BY 1 ORDER BY 1"""
    rows = conn.execute(query, _params(filters, now)).fetchall()
    return [{by: group, "requests": requests, "errors": errors,
             "error_rate": int(str(errors)) / int(str(requests)) if requests else 0.0,
             "latency_p50_ms": p50, "latency_p95_ms": p95, "ttfb_p50_ms": t50,
             "ttfb_p95_ms": t95}
            for group, requests, errors, p50, p95, t50, t95 in rows]


LOG_COLUMNS = """s.request_id, s.created_at, COALESCE(t.name, '(master key)'), s.key_label,
                 s.call_type, s.model_alias, s.deployment, s.status, s.prompt_tokens,
                 s.completion_tokens, s.cost_usd, s.latency_ms, s.ttfb_ms, s.error_class"""
LOG_KEYS = ("request_id", "at", "tenant", "key", "call_type", "alias", "deployment", "status",
            "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttfb_ms", "error")


def request_log(conn: Conn, filters: Filters, now: datetime, limit: int = LOG_PAGE
                ) -> tuple[list[dict[str, Any]], int]:
    """One page of requests (``filters.page``, ``limit`` a page), newest first, and how
    many match the filters."""
    params = _params(filters, now)
    count = conn.execute(f"SELECT count(*) {FROM} {WHERE}", params).fetchone()
    rows = conn.execute(
        f"SELECT {LOG_COLUMNS} {FROM} {WHERE} ORDER BY s.created_at DESC, s.id DESC "
        "LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit, "offset": (filters.page - 1) * limit}).fetchall()
    return [dict(zip(LOG_KEYS, row, strict=True)) for row in rows], int(str(count[0])) \
        if count else 0


def request_detail(conn: Conn, request_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {LOG_COLUMNS}, s.provider_model, s.tags, s.estimated, s.error_message, "
        f"s.id {FROM} WHERE s.request_id = %s", (request_id,)).fetchone()
    if row is None:
        return None
    keys = (*LOG_KEYS, "provider_model", "tags", "estimated", "error_message", "row_id")
    return dict(zip(keys, row, strict=True))


def recent_failures(conn: Conn, now: datetime) -> list[dict[str, Any]]:
    """Per deployment: requests and errors in the last hour and day, the last error."""
    rows = conn.execute("""
        SELECT s.deployment,
               (count(*) FILTER (WHERE s.created_at >= %(hour)s))::int,
               (count(*) FILTER (WHERE s.created_at >= %(hour)s AND s.status = 'error'))::int,
               count(*)::int, (count(*) FILTER (WHERE s.status = 'error'))::int,
               max(s.created_at) FILTER (WHERE s.status = 'error')
          FROM spend s
         WHERE s.created_at >= %(day)s AND s.deployment IS NOT NULL
         GROUP BY 1 ORDER BY 1""", {"hour": now - timedelta(hours=1),
                                    "day": now - timedelta(days=1)}).fetchall()
    found = []
    for deployment, hour, hour_errors, day, day_errors, last_at in rows:
        last = conn.execute(
            "SELECT error_class, error_message FROM spend WHERE deployment = %s AND "
            "status = 'error' AND created_at = %s LIMIT 1", (deployment, last_at)
        ).fetchone() if last_at else None
        found.append({"deployment": deployment, "requests_1h": hour, "errors_1h": hour_errors,
                      "requests_24h": day, "errors_24h": day_errors, "last_error_at": last_at,
                      "last_error": " ".join(str(x) for x in last if x) if last else None})
    return found
