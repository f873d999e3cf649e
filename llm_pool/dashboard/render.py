"""The dashboard's HTML: plain pages, charts drawn as inline SVG on the server.

Why server-rendered SVG and server-side sorting rather than a JavaScript library: the
pages need one bar chart, a few progress bars and sortable tables; HTML written here needs
no vendored bundle to keep patched, no build step, no script at all (the pages are served
with a CSP that forbids scripts), and every figure is in the document, so the browser test
reads exactly what an operator sees. Auto-refresh is a ``<meta http-equiv="refresh">``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from llm_pool.dashboard.filters import PERIODS, REFRESH_CHOICES, Filters, Known
from llm_pool.dashboard.tables import Table, cell_text, html, money, usd

__all__ = ["day_chart", "detail_page", "error_page", "login_page", "page"]

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 960, 180, 28
TITLE = "llm-pool"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{padding:16px 24px;max-width:1600px}h1{font-size:20px;margin:0 0 8px}
h2{font-size:16px;margin:16px 0 8px}nav{background:#24292f;padding:8px 24px}
nav a{color:#fff;margin-right:20px;text-decoration:none}nav a.on{font-weight:bold;
border-bottom:2px solid #fff}nav form{display:inline;float:right}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;
margin-bottom:16px}.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap}
th a{color:inherit;text-decoration:none}th.num,td.num{text-align:right}td.bad{color:#cf222e}
.bar{background:#eaeef2;border-radius:3px;height:10px;width:200px;display:inline-block}
.bar span{display:block;height:10px;border-radius:3px;background:#2da44e}
.bar span.over{background:#cf222e}.muted{color:#656d76}.kpi{display:inline-block;
margin-right:32px}.kpi b{display:block;font-size:22px}form.filters label{margin-right:10px;
display:inline-block;margin-bottom:6px}.table-head{display:flex;align-items:baseline;
gap:12px}a.csv{font-size:12px}svg{width:100%;height:auto;max-height:240px}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px}dt{font-weight:bold}
dd{margin:0;white-space:pre-wrap;word-break:break-word}.note{color:#9a6700}
"""


def day_chart(days: Sequence[dict[str, Any]]) -> str:
    """Spend per day as SVG bars, one ``<title>`` per bar (hover shows the figure); the
    chart scales to the page's width (viewBox)."""
    peak = max((float(d["cost_usd"]) for d in days), default=0.0)
    scale = peak or 1.0
    width = (CHART_WIDTH - 2 * CHART_PAD) / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        height = (CHART_HEIGHT - 2 * CHART_PAD) * float(day["cost_usd"]) / scale
        x, y = CHART_PAD + i * width, CHART_HEIGHT - CHART_PAD - height
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width - 2, 1):.1f}" '
                    f'height="{height:.1f}" fill="#0969da"><title>{escape(day["day"])}: '
                    f'${usd(day["cost_usd"])}, {day["requests"]} requests</title></rect>')
    first, last = (days[0]["day"], days[-1]["day"]) if days else ("", "")
    axis = (f'<text x="{CHART_PAD}" y="{CHART_HEIGHT - 8}" font-size="11">{first}</text>'
            f'<text x="{CHART_WIDTH - CHART_PAD}" y="{CHART_HEIGHT - 8}" font-size="11" '
            f'text-anchor="end">{last}</text><text x="{CHART_PAD}" y="16" font-size="11">'
            f"max ${usd(peak)}/day</text>")
    base = CHART_HEIGHT - CHART_PAD
    line = (f'<line x1="{CHART_PAD}" y1="{base}" x2="{CHART_WIDTH - CHART_PAD}" y2="{base}" '
            'stroke="#8c959f"/>')
    return (f'<svg id="day-chart" role="img" aria-label="spend per day" '
            f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" preserveAspectRatio="xMinYMin meet">'
            f'{line}{"".join(bars)}{axis}</svg>')


def _options(name: str, label: str, values: Sequence[str], current: str | None,
             everything: str) -> str:
    options = [f'<option value="">{escape(everything)}</option>'] + [
        f'<option value="{escape(v)}"{" selected" if v == current else ""}>{escape(v)}</option>'
        for v in values]
    return (f'<label>{label} <select name="{name}" id="{name}">{"".join(options)}</select>'
            "</label>")


def _filters(path: str, filters: Filters, known: Known) -> str:
    periods = "".join(f'<option value="{k}"{" selected" if k == filters.period else ""}>'
                      f"{v}</option>" for k, v in PERIODS.items())
    refresh = "".join(f'<option value="{s}"{" selected" if s == filters.refresh else ""}>'
                      f'{"off" if not s else f"every {s} s"}</option>' for s in REFRESH_CHOICES)
    start = filters.start.isoformat() if filters.start else ""
    end = filters.end.isoformat() if filters.end else ""
    return (
        f'<form class="filters" method="get" action="{path}">'
        f'{_options("tenant", "Tenant", list(known.tenants), filters.tenant, "all tenants")}'
        f'{_options("alias", "Alias", list(known.aliases), filters.alias, "all aliases")}'
        f'{_options("deployment", "Deployment", list(known.deployments), filters.deployment, "all deployments")}'  # noqa: E501
        f'{_options("status", "Status", ["ok", "error"], filters.status, "any status")}'
        f'<label>Period <select name="period" id="period">{periods}</select></label>'
        f'<label>From <input type="date" name="from" id="from" value="{start}"></label>'
        f'<label>To <input type="date" name="to" id="to" value="{end}"></label>'
        f'<label>Auto-refresh <select name="refresh" id="refresh">{refresh}</select></label>'
        '<button type="submit" id="apply">Show</button></form>'
        '<p class="muted">From/To apply with the period "custom range"; days are UTC.</p>')


def _kpis(data: dict[str, Any]) -> str:
    t = data["total"]
    kpis = (("spend_usd", "Spend (USD)", usd(t["cost_usd"])), ("requests", "Requests",
                                                               t["requests"]),
            ("errors", "Errors", t["errors"]),
            ("error_rate", "Error rate", f'{data["error_rate"] * 100:.2f}%'))
    return "".join(f'<div class="kpi" id="kpi-{k}"><span class="muted">{label}</span>'
                   f"<b>{escape(str(v))}</b></div>" for k, label, v in kpis)


def _budget_bars(table: Table) -> str:
    bars = []
    for b in table.rows:
        if b["used"] is None:
            continue
        pct = float(b["used"]) * 100
        over = "over" if pct >= 100 else ""
        bars.append(f'<div>{escape(b["tenant"])} <span class="bar"><span class="{over}" '
                    f'style="width:{min(pct, 100.0):.1f}%"></span></span> {pct:.1f}% of '
                    f'{money(b["budget_usd"])} USD</div>')
    return "".join(bars)


def _tables(path: str, filters: Filters, tables: Sequence[Table]) -> str:
    parts = []
    for table in tables:
        def sort_href(spec: str, table_id: str = table.id) -> str:
            return f"{path}?{filters.query(sort=f'{table_id}.{spec}', page=None)}#{table_id}"

        csv = f"/export/{table.id}.csv?{filters.query(page=None)}"
        extra = _budget_bars(table) if table.id == "budgets" else ""
        parts.append(f"<section>{extra}{html(table, sort_href, csv, filters.sort_for(table.id))}"
                     "</section>")
    return "".join(parts)


def _nav(active: str, pages: dict[str, str], filters: Filters) -> str:
    links = "".join(
        f'<a id="nav-{name}" class="{"on" if name == active else ""}" '
        f'href="{"/" if name == "overview" else "/" + name}?{filters.query(sort=None, page=None)}">'
        f"{escape(label)}</a>" for name, label in pages.items())
    return (f'<nav>{links}<form method="post" action="/logout"><button type="submit" '
            'id="logout">Log out</button></form></nav>')


def _pager(path: str, filters: Filters, count: int, per_page: int) -> str:
    pages = max(1, -(-count // per_page))
    links = []
    if filters.page > 1:
        links.append(f'<a id="prev" href="{path}?{filters.query(page=filters.page - 1)}">'
                     "newer</a>")
    if filters.page < pages:
        links.append(f'<a id="next" href="{path}?{filters.query(page=filters.page + 1)}">'
                     "older</a>")
    return f'<p class="muted">page {filters.page} of {pages} {" ".join(links)}</p>'


def page(active: str, pages: dict[str, str], data: dict[str, Any], filters: Filters,
         known: Known, generated: str, per_page: int = 100) -> str:
    path = "/" if active == "overview" else f"/{active}"
    scope = escape(filters.tenant or "all tenants")
    head = (f'<h1>{escape(pages[active])}</h1><p class="muted">{scope}; generated '
            f"{escape(generated)} (UTC)</p>")
    body = [head, _filters(path, filters, known)]
    if data.get("redis") is False:
        body.append('<p class="note" id="no-redis">No POOL_REDIS_URL: live use and cooldowns '
                    "are held per proxy process and cannot be read here.</p>")
    if active == "overview":
        body.append(f"<section>{_kpis(data)}</section><section><h2>Spend per day</h2>"
                    f"{day_chart(data['days'])}</section>")
    if active == "requests":
        body.append(_pager(path, filters, data["count"], per_page))
    body.append(_tables(path, filters, data["tables"]))
    refresh = (f'<meta http-equiv="refresh" content="{filters.refresh}">'
               if filters.refresh else "")
    return _document(f"{TITLE}: {pages[active]}",
                     _nav(active, pages, filters) + f"<main>{''.join(body)}</main>", refresh)


DETAIL = (("request_id", "Request id"), ("at", "At (UTC)"), ("tenant", "Tenant"),
          ("key", "Key label"), ("call_type", "Call type"), ("alias", "Alias"),
          ("deployment", "Deployment"), ("provider_model", "Provider model"),
          ("status", "Status"), ("prompt_tokens", "Prompt tokens"),
          ("completion_tokens", "Completion tokens"), ("cost_usd", "Cost (USD)"),
          ("estimated", "Cost estimated"), ("latency_ms", "Latency (ms)"),
          ("ttfb_ms", "First token (ms)"), ("error", "Error"),
          ("error_message", "Error message"), ("tags", "Tags"))
DETAIL_KINDS = {"cost_usd": "usd", "latency_ms": "ms", "ttfb_ms": "ms", "at": "time"}


def detail_page(pages: dict[str, str], row: dict[str, Any], filters: Filters) -> str:
    items = "".join(
        f'<dt>{escape(label)}</dt><dd id="detail-{key}">'
        f"{escape(cell_text(DETAIL_KINDS.get(key, 'text'), _detail_value(row.get(key))))}</dd>"
        for key, label in DETAIL)
    body = (f'<h1>Request</h1><p><a href="/requests?{filters.query()}">back to the log</a>'
            f"</p><section><dl>{items}</dl></section>")
    return _document(f"{TITLE}: request", _nav("requests", pages, filters) +
                     f"<main>{body}</main>")


def _detail_value(value: object) -> object:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or None
    return value


def error_page(status: int, message: str) -> str:
    body = (f'<main><h1>{status}</h1><section><p id="error">{escape(message)}</p>'
            '<p><a href="/">back to the overview</a></p></section></main>')
    return _document(f"{TITLE}: {status}", body)


def login_page(message: str = "") -> str:
    note = f'<p class="muted" id="login-error">{escape(message)}</p>' if message else ""
    body = (f"<main><h1>{TITLE}</h1><section>{note}<form method=\"post\" action=\"/login\">"
            '<label>Master key <input type="password" name="key" id="key" autocomplete='
            '"current-password" required></label> <button type="submit" id="login">Log in'
            "</button></form></section></main>")
    return _document(f"{TITLE}: log in", body)


def _document(title: str, body: str, head: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}'
            f'</title><meta name="viewport" content="width=device-width">{head}<style>{STYLE}'
            f"</style></head><body>{body}</body></html>")
