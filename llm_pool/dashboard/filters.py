"""The dashboard's filters, read from a query string and checked: an unknown parameter,
tenant, alias, deployment, status or period, or a malformed date, is a :class:`BadFilter`
(the app answers 400 naming it), never a silent default.

Parameters: ``tenant``, ``alias``, ``deployment``, ``status`` (``ok``/``error``),
``period`` (``24h``, ``month``, ``7d``, ``30d``, ``90d`` or ``custom`` with ``from`` and
``to``, days ``YYYY-MM-DD``, UTC, both included), ``sort`` (``TABLE.COLUMN`` or
``TABLE.-COLUMN`` for descending), ``page`` (the request log's page, from 1) and
``refresh`` (seconds between automatic reloads: 0, 10, 30 or 60).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

__all__ = ["PARAMETERS", "PERIODS", "REFRESH_CHOICES", "BadFilter", "Filters", "Known"]

PERIODS = {"24h": "last 24 hours", "month": "this month", "7d": "last 7 days",
           "30d": "last 30 days", "90d": "last 90 days", "custom": "custom range"}
PARAMETERS = frozenset({"tenant", "alias", "deployment", "status", "period", "from", "to",
                        "sort", "page", "refresh"})
STATUSES = ("ok", "error")
REFRESH_CHOICES = (0, 10, 30, 60)
MAX_PAGE = 10_000
MAX_RANGE_DAYS = 3660


class BadFilter(ValueError):
    """A filter the dashboard cannot honour; ``name`` is the query parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class Known:
    """What the filters may name: the tenants, aliases and deployments there are."""

    tenants: Collection[str] = ()
    aliases: Collection[str] = ()
    deployments: Collection[str] = ()


def _day(name: str, raw: str | None) -> date:
    if not raw:
        raise BadFilter(name, "a custom period needs both 'from' and 'to' (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadFilter(name, f"expected a day YYYY-MM-DD, got {raw!r}") from None


def _choice(name: str, raw: str | None, allowed: Collection[str]) -> str | None:
    if not raw:
        return None
    if raw not in allowed:
        raise BadFilter(name, f"no {name} {raw!r}")
    return raw


def _int(name: str, raw: str | None, default: int, allowed: range | tuple[int, ...]) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadFilter(name, f"expected a whole number, got {raw!r}") from None
    if value not in allowed:
        raise BadFilter(name, f"{value} is not allowed")
    return value


@dataclass(frozen=True)
class Filters:
    period: str = "month"
    tenant: str | None = None
    alias: str | None = None
    deployment: str | None = None
    status: str | None = None
    start: date | None = None  # custom period only
    end: date | None = None
    sort: str | None = None
    page: int = 1
    refresh: int = 0

    @classmethod
    def parse(cls, query: Mapping[str, str], known: Known) -> Filters:
        unknown = sorted(set(query) - PARAMETERS)
        if unknown:
            raise BadFilter(unknown[0], f"not a filter (known: {', '.join(sorted(PARAMETERS))})")
        period = query.get("period") or "month"
        if period not in PERIODS:
            raise BadFilter("period", f"expected one of {', '.join(PERIODS)}, got {period!r}")
        start = end = None
        if period == "custom":
            start, end = _day("from", query.get("from")), _day("to", query.get("to"))
            if end < start or (end - start).days > MAX_RANGE_DAYS:
                raise BadFilter("to", f"expected a day from {start} to {MAX_RANGE_DAYS} days "
                                      "later")
        elif query.get("from") or query.get("to"):
            raise BadFilter("from", "'from' and 'to' need period=custom")
        return cls(period=period,
                   tenant=_choice("tenant", query.get("tenant"), known.tenants),
                   alias=_choice("alias", query.get("alias"), known.aliases),
                   deployment=_choice("deployment", query.get("deployment"), known.deployments),
                   status=_choice("status", query.get("status"), STATUSES),
                   start=start, end=end, sort=query.get("sort") or None,
                   page=_int("page", query.get("page"), 1, range(1, MAX_PAGE + 1)),
                   refresh=_int("refresh", query.get("refresh"), 0, REFRESH_CHOICES))

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """[since, until) in UTC."""
        if self.period == "custom" and self.start and self.end:
            return _midnight(self.start), _midnight(self.end + timedelta(days=1))
        until = now + timedelta(seconds=1)
        if self.period == "24h":
            return now - timedelta(hours=24), until
        if self.period == "month":
            return datetime(now.year, now.month, 1, tzinfo=UTC), until
        days = int(self.period.removesuffix("d"))
        return _midnight((now - timedelta(days=days - 1)).date()), until

    def query(self, **changes: object) -> str:
        """This filter set as a query string, with ``changes`` (None drops a parameter)."""
        values: dict[str, object] = {
            "tenant": self.tenant, "alias": self.alias, "deployment": self.deployment,
            "status": self.status, "period": None if self.period == "month" else self.period,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None, "sort": self.sort,
            "page": self.page if self.page > 1 else None,
            "refresh": self.refresh or None}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v is not None and v != ""})

    def but(self, **changes: object) -> Filters:
        return replace(self, **changes)  # type: ignore[arg-type]

    def sort_for(self, table: str) -> tuple[str, bool] | None:
        """(column, descending) when ``sort`` names ``table``."""
        name, _, column = (self.sort or "").partition(".")
        if name != table or not column:
            return None
        return column.removeprefix("-"), column.startswith("-")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
