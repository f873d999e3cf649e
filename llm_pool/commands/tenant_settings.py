"""``pool tenants set NAME [--budget X|none] [--rpm N|none] [--tpm N|none]
[--max-n N|none] [--max-tokens N|none] [--max-prompt-tokens N|none]`` and
``pool tenants show NAME``.

``set`` changes the tenant row; every running proxy applies it within
``POOL_AUTH_CACHE_TTL`` (its key cache re-reads the tenant). To add a setting, add a
:class:`Setting` to :data:`SETTINGS` and its column to ``proxy.storage.tenants.TENANT_SETTINGS``.
``none`` for a cap means the gateway's default (``POOL_DEFAULT_MAX_*``).
``show`` prints the limits and caps, the month-to-date spend (PostgreSQL) and the budget
reserved by requests in flight (Redis, ``POOL_REDIS_URL`` / ``POOL_NAMESPACE``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["CAP_COLUMNS", "SETTINGS", "Setting", "cap_values", "register"]

NONE_WORDS = ("none", "-", "")


def _budget(raw: str) -> Decimal | None:
    from proxy.storage.tenants import parse_budget

    return None if raw.strip().lower() in NONE_WORDS else parse_budget(raw)


def _limit(raw: str) -> int | None:
    from proxy.errors import InvalidInput

    if raw.strip().lower() in NONE_WORDS:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput("limit", f"expected a whole number or 'none', got {raw!r}") from None


@dataclass(frozen=True)
class Setting:
    option: str
    column: str  # in proxy.storage.tenants.TENANT_SETTINGS
    parse: Callable[[str], object]
    metavar: str
    help: str


SETTINGS = (
    Setting("--budget", "monthly_budget_usd", _budget, "USD|none", "monthly budget in USD"),
    Setting("--rpm", "rpm_limit", _limit, "N|none", "requests per minute (all its keys)"),
    Setting("--tpm", "tpm_limit", _limit, "N|none", "tokens per minute (all its keys)"),
    Setting("--max-n", "max_n", _limit, "N|none",
            "largest n (choices) per request; none: POOL_DEFAULT_MAX_N"),
    Setting("--max-tokens", "max_tokens", _limit, "N|none",
            "largest max_tokens & co. per request; none: POOL_DEFAULT_MAX_TOKENS"),
    Setting("--max-prompt-tokens", "max_prompt_tokens", _limit, "N|none",
            "largest estimated prompt per request; none: POOL_DEFAULT_MAX_PROMPT_TOKENS"),
)
CAP_COLUMNS = ("max_n", "max_tokens", "max_prompt_tokens")


def register(sub: Any, guarded: Callable[[Callable[[argparse.Namespace], int]],
                                         Callable[[argparse.Namespace], int]]) -> None:
    """Add ``set`` and ``show`` to the ``pool tenants`` subcommands."""
    setter = sub.add_parser("set", help="change a tenant's budget, limits or caps "
                                        "(running proxies: within POOL_AUTH_CACHE_TTL)")
    setter.add_argument("name", help="the tenant")
    for setting in SETTINGS:
        setter.add_argument(setting.option, dest=setting.column, default=None,
                            metavar=setting.metavar, help=setting.help)
    setter.set_defaults(handler=guarded(run_set))
    show = sub.add_parser("show", help="a tenant's limits, caps, month-to-date spend and "
                                       "reserved budget")
    show.add_argument("name", help="the tenant")
    show.set_defaults(handler=guarded(run_show))


def _database_url() -> str:
    from llm_pool.settings import Settings

    return Settings.from_env().database_url


def run_set(args: argparse.Namespace) -> int:
    from proxy.storage.db import connect
    from proxy.storage.tenants import update_tenant

    changes = {s.column: s.parse(raw) for s in SETTINGS
               if (raw := getattr(args, s.column)) is not None}
    with connect(_database_url(), autocommit=True) as conn:
        tenant = update_tenant(conn, args.name, changes)
    caps = ", ".join(f"{name} {value}" for name, value in cap_values(tenant))
    print(f"tenant {tenant.name}: budget {_opt(tenant.monthly_budget_usd)} USD/month, "
          f"rpm {_opt(tenant.rpm_limit)}, tpm {_opt(tenant.tpm_limit)}, {caps}")
    return 0


def cap_values(tenant: Any) -> list[tuple[str, str]]:
    """Each cap of ``tenant`` (a Tenant or TenantSummary): its own value, or the gateway's
    default as ``default (N)`` (``POOL_DEFAULT_MAX_*`` of this environment)."""
    from proxy.errors import ConfigError
    from proxy.settings import DEFAULT_CAPS, ProxySettings

    try:
        defaults = ProxySettings.from_env().default_caps
    except ConfigError:  # a bad POOL_* value: check-config names it; show the built-in one
        defaults = DEFAULT_CAPS
    return [(name, str(own) if (own := getattr(tenant, name)) is not None
             else f"default ({getattr(defaults, name)})") for name in CAP_COLUMNS]


def run_show(args: argparse.Namespace) -> int:
    from proxy.admission.budget import TENANT_MONTH_TO_DATE
    from proxy.storage.db import connect
    from proxy.storage.tenants import get_tenant, list_keys

    with connect(_database_url(), autocommit=True) as conn:
        tenant = get_tenant(conn, args.name)
        spent = conn.execute(TENANT_MONTH_TO_DATE, (tenant.id,)).fetchone()
        keys = [k for k in list_keys(conn, tenant.name) if k.revoked_at is None]
    reserved = _reserved(tenant.id)
    lines = [("tenant", tenant.name),
             ("budget_usd", _opt(tenant.monthly_budget_usd)),
             ("month_spend_usd", f"{float(str(spent[0])) if spent else 0.0:.6f}"),
             ("reserved_usd", "- (no POOL_REDIS_URL)" if reserved is None
              else f"{reserved:.6f}"),
             ("rpm", _opt(tenant.rpm_limit)),
             ("tpm", _opt(tenant.tpm_limit)),
             *cap_values(tenant),
             ("active_keys", str(len(keys)))]
    width = max(len(label) for label, _ in lines)
    print("\n".join(f"{label.ljust(width)}  {value}" for label, value in lines))
    return 0


def _reserved(tenant_id: int) -> float | None:
    """USD reserved by the tenant's requests in flight, on every proxy (Redis)."""
    import redis

    from proxy.admission.reservations import live_reserved
    from proxy.settings import ProxySettings
    from proxy.storage.shared import gateway_prefix

    settings = ProxySettings.from_env()
    if not settings.redis_url:
        return None
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    return live_reserved(client, gateway_prefix(settings.namespace, settings.database_url),
                         tenant_id)


def _opt(value: object) -> str:
    return "-" if value is None else str(value)
