"""Every table of the dashboard is a :class:`Table`: named columns with a kind, rows as
dicts. The same table is drawn as HTML (headers are sort links: sorting happens on the
server, no script), exported as CSV (raw values: full precision, ISO times) and sorted
by :func:`sort_rows`.

Money reads as what it is: spend in USD with 6 decimals (as ``pool spend``), budgets
with cents, or every significant decimal below a cent (a $0.0002 budget reads 0.0002).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any

__all__ = ["Column", "Table", "cell_text", "money", "sort_rows", "to_csv", "usd"]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | usd | money | ms | pct | time | link


@dataclass
class Table:
    id: str
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    empty: str = "nothing in this period"
    link: Callable[[dict[str, Any]], str] | None = field(default=None, repr=False)


def usd(value: object, places: int = 6) -> str:
    """Spend as ``pool spend`` prints it (6 decimals)."""
    return "-" if value is None else f"{float(str(value)):.{places}f}"


def money(value: object) -> str:
    """An amount as it was set: cents (``50.00``), or every decimal it has below a cent
    (``0.0002``, ``0.015``), never rounded to ``0.00``."""
    if value is None:
        return "-"
    amount = Decimal(str(value))
    if amount == amount.quantize(Decimal("0.01")):
        return f"{amount:.2f}"
    return format(amount.normalize(), "f")


def cell_text(kind: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "usd":
        return usd(value)
    if kind == "money":
        return money(value)
    if kind == "ms":
        return f"{float(str(value)):.0f}"
    if kind == "pct":
        return f"{float(str(value)) * 100:.1f}%"
    if kind == "time" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _sort_key(kind: str, value: object) -> tuple[int, Any]:
    if value is None:
        return (1, 0)
    if kind in ("int", "usd", "money", "ms", "pct"):
        return (0, float(str(value)))
    if isinstance(value, datetime):
        return (0, value.timestamp())
    return (0, str(value).lower())


def sort_rows(table: Table, column: str, descending: bool) -> None:
    """Sort in place by ``column`` (unknown columns are ignored); empty cells last."""
    kinds = {c.key: c.kind for c in table.columns}
    if column not in kinds:
        return
    present = [r for r in table.rows if r.get(column) is not None]
    missing = [r for r in table.rows if r.get(column) is None]
    present.sort(key=lambda r: _sort_key(kinds[column], r[column]), reverse=descending)
    table.rows = present + missing


def _raw(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, float | Decimal) and not isinstance(value, bool):
        return format(Decimal(str(value)), "f")  # never 1e-06
    return str(value)


FORMULA_START = ("=", "+", "@", "\t", "\r")


def _safe(text: str) -> str:
    """A text cell a spreadsheet would run as a formula is quoted (tenants write some of
    these values: tags, call ids)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow([_raw(row.get(c.key)) if c.kind not in ("text", "link")
                         else _safe(_raw(row.get(c.key))) for c in table.columns])
    return out.getvalue()


def html(table: Table, sort_href: Callable[[str], str], csv_href: str,
         current: tuple[str, bool] | None) -> str:
    heads = []
    for column in table.columns:
        arrow = ""
        descending = False
        if current and current[0] == column.key:
            arrow = " ▼" if current[1] else " ▲"
            descending = not current[1]
        spec = ("-" if descending else "") + column.key
        cls = "" if column.kind in ("text", "time", "link") else ' class="num"'
        heads.append(f'<th{cls} data-key="{column.key}"><a href="{escape(sort_href(spec))}">'
                     f"{escape(column.label)}{arrow}</a></th>")
    body = "".join(_row(table, row) for row in table.rows) or (
        f'<tr><td colspan="{len(table.columns)}" class="muted">{escape(table.empty)}</td></tr>')
    return (f'<div class="table-head"><h2>{escape(table.title)}</h2><a class="csv" '
            f'id="csv-{table.id}" href="{escape(csv_href)}">CSV</a></div>'
            f'<div class="scroll"><table id="{table.id}"><thead><tr>{"".join(heads)}</tr>'
            f"</thead><tbody>{body}</tbody></table></div>")


def _row(table: Table, row: dict[str, Any]) -> str:
    cells = []
    for column in table.columns:
        text = escape(cell_text(column.kind, row.get(column.key)))
        if column.kind == "link" and table.link is not None and row.get(column.key):
            text = f'<a href="{escape(table.link(row))}">{text}</a>'
        cls = "" if column.kind in ("text", "time", "link") else ' class="num"'
        if column.key == "status" and row.get("status") == "error":
            cls = ' class="bad"'
        cells.append(f"<td{cls}>{text}</td>")
    return f"<tr>{''.join(cells)}</tr>"
