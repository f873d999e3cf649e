"""The dashboard page: plain HTML with charts drawn as inline SVG, on the server.

Why server-rendered SVG rather than a JavaScript chart library: the page needs one
bar chart and a few progress bars; SVG written here needs no vendored bundle to keep
up to date, no build step, no script at all (the page is served with a CSP that
forbids scripts), renders the same in any browser, and its figures are in the
document, so the browser test reads exactly what an operator sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from llm_pool.dashboard.figures import PERIODS

__all__ = ["login_page", "page", "usd"]

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 180, 28

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#f6f8fa}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:24px 0 8px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;
margin-bottom:16px}table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:right}
th:first-child,td:first-child,td.text,th.text{text-align:left}
.bar{background:#eaeef2;border-radius:3px;height:10px;width:200px;display:inline-block}
.bar span{display:block;height:10px;border-radius:3px;background:#2da44e}
.bar span.over{background:#cf222e}.muted{color:#656d76}.kpi{display:inline-block;
margin-right:32px}.kpi b{display:block;font-size:22px}form.filters{margin-bottom:16px}
"""


def usd(value: float | None, places: int = 6) -> str:
    """Dollars as ``pool spend`` prints them (6 decimals)."""
    return "-" if value is None else f"{value:.{places}f}"


def _cells(values: Iterable[object], text_columns: int = 1) -> str:
    return "".join(f'<td{" class=text" if i < text_columns else ""}>{escape(str(v))}</td>'
                   for i, v in enumerate(values))


def _table(name: str, headers: Sequence[str], rows: Sequence[Sequence[object]],
           text_columns: int = 1) -> str:
    head = "".join(f'<th{" class=text" if i < text_columns else ""}>{escape(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(f"<tr>{_cells(row, text_columns)}</tr>" for row in rows) or \
        f'<tr><td colspan="{len(headers)}" class="muted">nothing in this period</td></tr>'
    return f'<table id="{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _spend_rows(lines: Sequence[dict[str, Any]], group: str | None) -> list[list[object]]:
    return [[line["tenant"], *([line[group]] if group else []), line["requests"],
             line["errors"], line["prompt_tokens"], line["completion_tokens"],
             usd(line["cost_usd"])] for line in lines]


SPEND_HEADERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")


def _spend_table(name: str, lines: Sequence[dict[str, Any]], group: str | None) -> str:
    headers = ("tenant", *([group] if group else []), *SPEND_HEADERS)
    return _table(name, headers, _spend_rows(lines, group), 2 if group else 1)


def day_chart(days: Sequence[dict[str, Any]]) -> str:
    """Spend per day as SVG bars, one ``<title>`` per bar (hover shows the figure)."""
    peak = max((d["cost_usd"] for d in days), default=0.0)
    scale = peak or 1.0
    width = (CHART_WIDTH - 2 * CHART_PAD) / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        height = (CHART_HEIGHT - 2 * CHART_PAD) * day["cost_usd"] / scale
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
    return (f'<svg id="day-chart" role="img" aria-label="spend per day" width="{CHART_WIDTH}" '
            f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}">'
            f'{line}{"".join(bars)}{axis}</svg>')


def _budget_rows(budgets: Sequence[dict[str, Any]]) -> list[list[object]]:
    return [[b["tenant"], usd(b["month_spend_usd"]), usd(b["budget_usd"], 2),
             "-" if b["used_pct"] is None else f'{b["used_pct"]:.1f}%'] for b in budgets]


def _budget_section(budgets: Sequence[dict[str, Any]]) -> str:
    bars = []
    for b in budgets:
        if b["used_pct"] is None:
            continue
        pct = min(b["used_pct"], 100.0)
        over = " over" if b["used_pct"] >= 100 else ""
        bars.append(f'<div>{escape(b["tenant"])} <span class="bar"><span class="{over.strip()}"'
                    f' style="width:{pct:.1f}%"></span></span> {b["used_pct"]:.1f}%</div>')
    table = _table("budgets", ("tenant", "month_to_date_usd", "budget_usd", "used"),
                   _budget_rows(budgets))
    return f"<h2>Month to date against budget</h2>{''.join(bars)}{table}"


def _filters(data: dict[str, Any]) -> str:
    tenants = ['<option value="">all tenants</option>'] + [
        f'<option value="{escape(n)}"{" selected" if n == data["tenant"] else ""}>'
        f"{escape(n)}</option>" for n in data["tenant_names"]]
    periods = [f'<option value="{k}"{" selected" if k == data["period"] else ""}>{v}</option>'
               for k, v in PERIODS.items()]
    query = urlencode({k: v for k, v in (("tenant", data["tenant"]),
                                         ("period", data["period"])) if v})
    return (f'<form class="filters" method="get" action="/"><label>tenant <select '
            f'name="tenant" id="tenant">{"".join(tenants)}</select></label> <label>period '
            f'<select name="period" id="period">{"".join(periods)}</select></label> '
            f'<button type="submit" id="apply">show</button> <a href="/api/figures?{query}">'
            f'JSON</a></form>')


def _kpis(data: dict[str, Any]) -> str:
    t = data["total"]
    kpis = (("spend_usd", usd(t["cost_usd"])), ("requests", t["requests"]),
            ("errors", t["errors"]), ("error_rate", f'{data["error_rate"] * 100:.2f}%'))
    return "".join(f'<div class="kpi" id="kpi-{k}"><span class="muted">{k}</span>'
                   f"<b>{escape(str(v))}</b></div>" for k, v in kpis)


def _errors_table(errors: Sequence[dict[str, Any]]) -> str:
    rows = [[e["at"], e["tenant"], e["key_label"] or "-", e["model_alias"] or "-",
             e["deployment"] or "-", e["error_class"] or "-"] for e in errors]
    return _table("recent-errors", ("at", "tenant", "key", "alias", "deployment", "error"),
                  rows, 6)


def page(data: dict[str, Any]) -> str:
    scope = escape(data["tenant"] or "all tenants")
    body = (
        f'<h1>llm-pool spend</h1><p class="muted">{scope}, since {data["since"]} (UTC); '
        f'generated {data["generated_at"]}</p>{_filters(data)}'
        f"<section>{_kpis(data)}</section>"
        f"<section><h2>Spend per day</h2>{day_chart(data['days'])}</section>"
        f"<section>{_budget_section(data['budgets'])}</section>"
        f"<section><h2>Per tenant</h2>{_spend_table('per-tenant', data['tenants'], None)}"
        f"<h2>Per alias</h2>{_spend_table('per-model', data['models'], 'model')}"
        "<h2>Per deployment</h2>"
        f"{_spend_table('per-deployment', data['deployments'], 'deployment')}"
        f"<h2>Per key label</h2>{_spend_table('per-key', data['keys'], 'key')}</section>"
        f"<section><h2>Recent errors</h2>{_errors_table(data['recent_errors'])}</section>"
        '<form method="post" action="/logout"><button type="submit">log out</button></form>')
    return _document("llm-pool spend", body)


def login_page(message: str = "") -> str:
    note = f'<p class="muted" id="login-error">{escape(message)}</p>' if message else ""
    body = (f"<h1>llm-pool spend</h1><section>{note}<form method=\"post\" action=\"/login\">"
            '<label>master key <input type="password" name="key" id="key" autocomplete='
            '"current-password" required></label> <button type="submit" id="login">log in'
            "</button></form></section>")
    return _document("llm-pool spend: log in", body)


def _document(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}'
            f'</title><meta name="viewport" content="width=device-width"><style>{STYLE}'
            f"</style></head><body>{body}</body></html>")
