"""``pool db migrate``, ``pool tenants ...``, ``pool keys ...`` and ``pool spend``
(the proxy extra: each handler imports ``proxy`` itself).

Each command opens one PostgreSQL connection (``POOL_DATABASE_URL``); errors are
printed as one line on stderr with exit code 1 (2 for bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llm_pool.commands import tenant_settings
from llm_pool.settings import Settings

if TYPE_CHECKING:
    from proxy.storage.tenants import ApiKey

__all__ = ["register"]

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: Any) -> None:
    _register_db(subparsers)
    _register_tenants(subparsers)
    _register_keys(subparsers)
    _register_spend(subparsers)


def _register_db(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="the gateway's PostgreSQL schema")
    db.set_defaults(extra="proxy")
    sub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    sub.add_parser("migrate", help="apply pending migrations (idempotent)").set_defaults(
        handler=_guarded(run_migrate))


def _register_tenants(subparsers: Any) -> None:
    tenants = subparsers.add_parser("tenants", help="tenants: budgets and rate limits")
    tenants.set_defaults(extra="proxy")
    sub = tenants.add_subparsers(dest="tenants_command", metavar="COMMAND", required=True)
    add = sub.add_parser("add", help="create a tenant")
    add.add_argument("name", help="tenant name: 1 to 63 lowercase letters, digits, '_', '-', "
                                  "'.', first a letter or digit")
    add.add_argument("--budget", default=None, help="monthly budget in USD (default: none)")
    add.add_argument("--rpm", type=int, default=None, help="requests per minute (all its keys)")
    add.add_argument("--tpm", type=int, default=None, help="tokens per minute (all its keys)")
    add_cap_options(add)
    add.set_defaults(handler=_guarded(run_tenants_add))
    sub.add_parser("list", help="tenants with limits, keys and month-to-date spend"
                   ).set_defaults(handler=_guarded(run_tenants_list))
    tenant_settings.register(sub, _guarded)


CAP_OPTIONS = (
    ("max_n", "largest n (choices) per request (default: POOL_DEFAULT_MAX_N, 4)"),
    ("max_tokens", "largest max_tokens / max_completion_tokens / max_output_tokens "
                   "(default: POOL_DEFAULT_MAX_TOKENS, 16384)"),
    ("max_prompt_tokens", "largest estimated prompt per request, in tokens "
                          "(default: POOL_DEFAULT_MAX_PROMPT_TOKENS, 131072)"),
)


def add_cap_options(parser: argparse.ArgumentParser) -> None:
    """``--max-n``, ``--max-tokens``, ``--max-prompt-tokens``: the tenant's own caps."""
    for name, text in CAP_OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=None,
                            help=text)


def _caps(args: argparse.Namespace) -> Any:
    from proxy.storage.tenants import Caps

    return Caps(**{name: getattr(args, name) for name, _ in CAP_OPTIONS})


def _register_keys(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="tenant API keys")
    keys.set_defaults(extra="proxy")
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    create = sub.add_parser("create", help="create a key (printed once, only its hash is kept)")
    create.add_argument("tenant", help="the tenant the key belongs to")
    create.add_argument("--label", default=None, help="a name for the key (default: its prefix)")
    create.set_defaults(handler=_guarded(run_keys_create))
    listing = sub.add_parser("list", help="keys (prefix, label, state)")
    listing.add_argument("tenant", nargs="?", default=None, help="only this tenant's keys")
    listing.set_defaults(handler=_guarded(run_keys_list))
    revoke = sub.add_parser("revoke", help="revoke a key; effective within POOL_AUTH_CACHE_TTL")
    revoke.add_argument("key", metavar="KEY_OR_PREFIX_OR_LABEL",
                        help="the key, its prefix (sk-pool-xxxx), a label or TENANT/LABEL")
    revoke.set_defaults(handler=_guarded(run_keys_revoke))


def _register_spend(subparsers: Any) -> None:
    spend = subparsers.add_parser("spend", help="requests, errors, tokens and cost")
    spend.add_argument("--tenant", default=None, help="only this tenant (default: all)")
    spend.add_argument("--since", default=None, metavar="YYYY-MM-DD",
                       help="from this day, UTC (default: first day of this month)")
    spend.add_argument("--by", choices=("model", "day", "key"), default=None,
                       help="split each tenant's figures")
    spend.add_argument("--json", action="store_true", help="JSON instead of a table")
    spend.set_defaults(handler=_guarded(run_spend), extra="proxy")


# ----------------------------------------------------------------- plumbing


def _guarded(handler: Handler) -> Handler:
    """Turn the gateway's errors into one clear line on stderr."""

    def run(args: argparse.Namespace) -> int:
        from proxy.errors import InvalidInput, ProxyError

        try:
            return handler(args)
        except InvalidInput as exc:
            print(f"pool: {exc}", file=sys.stderr)
            return 2
        except ProxyError as exc:
            print(f"pool: {exc}", file=sys.stderr)
            return 1

    return run


def _database_url() -> str:
    return Settings.from_env().database_url


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _budget(value: Decimal | None) -> str:
    """``50.00``; a budget with more decimals keeps them."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value == round(value, 2) else format(value.normalize(), "f")


# ----------------------------------------------------------------- commands


def run_migrate(args: argparse.Namespace) -> int:
    from proxy.storage.db import ensure_database, migrate

    if ensure_database(_database_url()):
        print(f"created database {_database_url().rsplit('/', 1)[-1].split('?')[0]}")
    applied = migrate(_database_url())
    for migration in applied:
        print(f"applied {migration.version}_{migration.name}")
    if not applied:
        print("database is up to date")
    return 0


def run_tenants_add(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.tenants import create_tenant, parse_budget

    budget = parse_budget(args.budget)
    with connect(_database_url(), autocommit=True) as conn:
        tenant = create_tenant(conn, args.name, budget=budget, rpm=args.rpm, tpm=args.tpm,
                               caps=_caps(args))
    caps = ", ".join(f"{name} {value}" for name, value in tenant_settings.cap_values(tenant))
    print(f"tenant {tenant.name} created (budget {_budget(tenant.monthly_budget_usd)} USD/month, "
          f"rpm {_opt(tenant.rpm_limit)}, tpm {_opt(tenant.tpm_limit)}, {caps}; '-' is none)")
    return 0


def run_tenants_list(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.tenants import list_tenants

    with connect(_database_url(), autocommit=True) as conn:
        tenants = list_tenants(conn)
    rows = [(t.name, _budget(t.monthly_budget_usd), _usd(t.month_spend_usd), _opt(t.rpm_limit),
             _opt(t.tpm_limit), *(value for _, value in tenant_settings.cap_values(t)),
             t.active_keys, t.created_at.date()) for t in tenants]
    print(_table(("tenant", "budget_usd", "month_spend_usd", "rpm", "tpm",
                  *tenant_settings.CAP_COLUMNS, "keys", "created"), rows))
    return 0


def run_keys_create(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.tenants import create_key

    with connect(_database_url(), autocommit=True) as conn:
        key, record = create_key(conn, args.tenant, args.label)
    print(key)
    print(f"key {record.label!r} for tenant {record.tenant} created; it is shown only now, "
          "store it", file=sys.stderr)
    return 0


def _key_state(key: ApiKey) -> str:
    from proxy.storage.tenants import KEY_FORMAT_HMAC

    if key.revoked_at:
        return "revoked " + key.revoked_at.isoformat(timespec="seconds")
    if key.key_format < KEY_FORMAT_HMAC:  # docs/limits-and-keys.md
        return "active (old format: replace it)"
    return "active"


def run_keys_list(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.tenants import list_keys

    with connect(_database_url(), autocommit=True) as conn:
        keys = list_keys(conn, args.tenant)
    rows = [(k.tenant, k.label, k.key_prefix + "...", k.created_at.isoformat(timespec="seconds"),
             _key_state(k)) for k in keys]
    print(_table(("tenant", "label", "prefix", "created", "state"), rows))
    return 0


def run_keys_revoke(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.tenants import revoke_key

    with connect(_database_url(), autocommit=True) as conn:
        record = revoke_key(conn, args.key)
    print(f"revoked key {record.label!r} ({record.key_prefix}...) of tenant {record.tenant}")
    return 0


def run_spend(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.reports import parse_since, spend_report, total

    since = parse_since(args.since)
    by = args.by or "tenant"
    with connect(_database_url(), autocommit=True) as conn:
        lines = spend_report(conn, since=since, tenant=args.tenant, by=by)
    if args.json:
        print(json.dumps({"since": since.date().isoformat(), "by": by,
                          "rows": [_line_json(x, by) for x in lines],
                          "total": _line_json(total(lines), by)}, indent=2))
        return 0
    headers = ["tenant", *([by] if by != "tenant" else []), "requests", "errors",
               "prompt_tokens", "completion_tokens", "cost_usd"]
    rows = [_line_cells(x, by) for x in [*lines, total(lines)]]
    print(f"spend since {since.date().isoformat()} (UTC)")
    print(_table(headers, rows))
    return 0


def _line_json(line: Any, by: str) -> dict[str, object]:
    out: dict[str, object] = {"tenant": line.tenant}
    if by != "tenant":
        out[by] = line.group
    out.update(requests=line.requests, errors=line.errors, prompt_tokens=line.prompt_tokens,
               completion_tokens=line.completion_tokens, cost_usd=float(line.cost_usd))
    return out


def _line_cells(line: Any, by: str) -> list[object]:
    cells: list[object] = [line.tenant]
    if by != "tenant":
        cells.append(line.group)
    cells += [line.requests, line.errors, line.prompt_tokens, line.completion_tokens,
              _usd(line.cost_usd)]
    return cells
