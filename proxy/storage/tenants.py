"""Tenants and their API keys in PostgreSQL.

A key is shown once, when created; only its sha256 (hex) is stored, with a short
prefix for listings and revocation. The synchronous functions serve the CLI; the
proxy looks keys up with :func:`lookup_key` on its async pool.

Key formats (``api_keys.key_format``; :func:`key_format` tells them apart):

- 3, made now: ``sk-pool-`` + 40 random base62 + 10 base62 of an HMAC-SHA256 of the 40,
  keyed with the server secret in ``key_secret`` (made by migration 0055, read by
  ``pool keys create`` and by the proxy). A tenant cannot compute the checksum: a forged
  key is refused without a lookup.
- 2: ``sk-pool-`` + 40 base62 + 6 of a CRC32 (public): anyone can forge one.
- 1 (legacy): ``sk-pool-`` + 43 url-safe characters, no checksum.

Keys of formats 1 and 2 keep working; the proxy looks a key of those shapes up only
while an active key of that format exists (:func:`key_gate`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from proxy.errors import AmbiguousKey, InvalidInput, KeyNotFound, TenantExists, TenantNotFound

__all__ = [
    "KEY_FORMAT_CHECKSUM",
    "KEY_FORMAT_HMAC",
    "KEY_FORMAT_LEGACY",
    "KEY_PREFIX",
    "TENANT_SETTINGS",
    "ApiKey",
    "Caps",
    "KeyGate",
    "KeyIdentity",
    "Tenant",
    "TenantSummary",
    "create_key",
    "create_tenant",
    "generate_key",
    "get_tenant",
    "hash_key",
    "key_format",
    "key_gate",
    "key_secret",
    "list_keys",
    "list_tenants",
    "lookup_key",
    "parse_budget",
    "revoke_key",
    "update_tenant",
]

KEY_PREFIX = "sk-pool-"
KEY_ALPHABET = string.digits + string.ascii_letters  # base62
KEY_RANDOM_CHARS = 40  # ~238 bits
KEY_CHECKSUM_CHARS = 6  # CRC32 of the random part, base62 (format 2)
KEY_LENGTH = len(KEY_PREFIX) + KEY_RANDOM_CHARS + KEY_CHECKSUM_CHARS
KEY_MAC_CHARS = 10  # HMAC-SHA256 of the random part, base62 (~59 bits; format 3)
KEY_MAC_LENGTH = len(KEY_PREFIX) + KEY_RANDOM_CHARS + KEY_MAC_CHARS
LEGACY_KEY = re.compile(r"^sk-pool-[A-Za-z0-9_-]{43}$")  # before checksums: token_urlsafe(32)
_BASE62 = re.compile(r"^[0-9A-Za-z]+$")
KEY_FORMAT_HMAC = 3
KEY_FORMAT_CHECKSUM = 2
KEY_FORMAT_LEGACY = 1
SHOWN_PREFIX_LEN = len(KEY_PREFIX) + 8
MIN_PREFIX_LEN = len(KEY_PREFIX) + 4
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
LABEL_MAX = 100


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    monthly_budget_usd: Decimal | None
    rpm_limit: int | None
    tpm_limit: int | None
    created_at: datetime
    max_n: int | None = None
    max_tokens: int | None = None
    max_prompt_tokens: int | None = None


@dataclass(frozen=True)
class Caps:
    """A tenant's consumption caps; None: the gateway's default (``POOL_DEFAULT_MAX_*``)."""

    max_n: int | None = None
    max_tokens: int | None = None
    max_prompt_tokens: int | None = None


@dataclass(frozen=True)
class TenantSummary:
    name: str
    monthly_budget_usd: Decimal | None
    rpm_limit: int | None
    tpm_limit: int | None
    active_keys: int
    month_spend_usd: Decimal
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: int
    tenant: str
    key_prefix: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    key_format: int = 3  # KEY_FORMAT_HMAC; 1 and 2: older formats, worth replacing


@dataclass(frozen=True)
class KeyGate:
    """What the proxy checks a key's shape against before any lookup: the server secret
    of format-3 keys (None: missing, the lookup decides), and the formats some active
    key has (1 and 2 are looked up only while an active key of theirs exists)."""

    secret: bytes | None
    active_formats: frozenset[int]

    def admits(self, key: str) -> bool:
        form = key_format(key, self.secret)
        return form == KEY_FORMAT_HMAC or (form is not None and form in self.active_formats)


@dataclass(frozen=True)
class KeyIdentity:
    """What the proxy needs to know about a presented key."""

    key_id: int
    label: str
    tenant_id: int
    tenant: str
    monthly_budget_usd: float | None
    rpm_limit: int | None
    tpm_limit: int | None
    revoked: bool
    caps: Caps = Caps()


# ----------------------------------------------------------------- keys


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(KEY_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), KEY_CHECKSUM_CHARS)


def _mac(secret: bytes, random_part: str) -> str:
    digest = hmac.new(secret, random_part.encode(), hashlib.sha256).digest()
    return _base62(int.from_bytes(digest[:8], "big"), KEY_MAC_CHARS)


def generate_key(secret: bytes) -> str:
    """``sk-pool-`` + 40 random base62 characters + a 10-character HMAC-SHA256 of them
    keyed with ``secret`` (:func:`key_secret`)."""
    random_part = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_RANDOM_CHARS))
    return KEY_PREFIX + random_part + _mac(secret, random_part)


def key_format(key: str, secret: bytes | None = None) -> int | None:
    """The format of a well-formed key (:data:`KEY_FORMAT_HMAC`, :data:`KEY_FORMAT_CHECKSUM`,
    :data:`KEY_FORMAT_LEGACY`), None for anything else. A format-3 key's HMAC is checked
    against ``secret``; without one (the proxy could not read it yet) its shape is enough
    and the lookup decides. Costs an HMAC of 40 bytes and no PostgreSQL query."""
    if not key.startswith(KEY_PREFIX) or len(key) not in (KEY_LENGTH, KEY_MAC_LENGTH):
        return KEY_FORMAT_LEGACY if LEGACY_KEY.match(key) else None
    body = key[len(KEY_PREFIX):]
    random_part, checksum = body[:KEY_RANDOM_CHARS], body[KEY_RANDOM_CHARS:]
    if not _BASE62.match(body):
        return None
    if len(key) == KEY_MAC_LENGTH:
        if secret is None or hmac.compare_digest(_mac(secret, random_part), checksum):
            return KEY_FORMAT_HMAC
        return None
    return KEY_FORMAT_CHECKSUM if _checksum(random_part) == checksum else None


def hash_key(key: str) -> str:
    """sha256 hex; the same digest LiteLLM logs as ``user_api_key_hash`` for ``sk-`` keys."""
    return hashlib.sha256(key.encode()).hexdigest()


# ----------------------------------------------------------------- validation


def _check_name(name: str) -> str:
    if not TENANT_NAME.match(name):
        raise InvalidInput("name", f"{name!r} is not a valid tenant name: 1 to 63 lowercase "
                                   "letters, digits, '_', '-', '.', first a letter or digit")
    return name


def parse_budget(raw: str | float | Decimal | None) -> Decimal | None:
    """A monthly budget in USD: a non-negative number, or None for no budget."""
    if raw is None:
        return None
    try:
        value = Decimal(str(raw).strip().lstrip("$"))
    except InvalidOperation:
        raise InvalidInput("budget", f"expected an amount in USD, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput("budget", f"must be a non-negative amount, got {raw!r}")
    return value


def _check_limit(field: str, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise InvalidInput(field, f"must be a positive integer, got {value}")
    return value


def _check_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > LABEL_MAX:
        raise InvalidInput("label", f"must be 1 to {LABEL_MAX} characters")
    return label


# ----------------------------------------------------------------- tenants


def create_tenant(conn: psycopg.Connection[tuple[object, ...]], name: str, *,
                  budget: Decimal | None = None, rpm: int | None = None,
                  tpm: int | None = None, caps: Caps = Caps()) -> Tenant:
    _check_name(name)
    _check_limit("rpm", rpm)
    _check_limit("tpm", tpm)
    for cap, value in vars(caps).items():
        _check_limit(cap, value)
    if budget is not None:
        parse_budget(budget)
    try:
        with conn.transaction(), conn.cursor(row_factory=class_row(Tenant)) as cur:
            cur.execute(
                "INSERT INTO tenants (name, monthly_budget_usd, rpm_limit, tpm_limit, max_n, "
                "max_tokens, max_prompt_tokens) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id, name, monthly_budget_usd, rpm_limit, tpm_limit, created_at, "
                "max_n, max_tokens, max_prompt_tokens",
                (name, budget, rpm, tpm, caps.max_n, caps.max_tokens, caps.max_prompt_tokens))
            row = cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise TenantExists(name) from None
    assert row is not None
    return row


TENANT_SETTINGS = ("monthly_budget_usd", "rpm_limit", "tpm_limit")  # what `tenants set` changes
TENANT_COLUMNS = ("id, name, monthly_budget_usd, rpm_limit, tpm_limit, created_at, max_n, "
                  "max_tokens, max_prompt_tokens")  # those of Tenant


def _checked(column: str, value: object) -> object:
    if value is None:
        return None
    if column == "monthly_budget_usd":
        return parse_budget(value if isinstance(value, str | float | Decimal) else str(value))
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(column, f"expected an integer, got {value!r}")
    return _check_limit(column.removesuffix("_limit"), value)


def update_tenant(conn: psycopg.Connection[tuple[object, ...]], name: str,
                  changes: Mapping[str, object]) -> Tenant:
    """Change some of a tenant's :data:`TENANT_SETTINGS` (None: no budget / no limit).
    Running proxies apply it within ``POOL_AUTH_CACHE_TTL``."""
    unknown = sorted(set(changes) - set(TENANT_SETTINGS))
    if unknown:
        raise InvalidInput(unknown[0], "not a tenant setting")
    if not changes:
        raise InvalidInput("settings", "nothing to change")
    values = {column: _checked(column, value) for column, value in changes.items()}
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(column)) for column in values)
    query = sql.SQL("UPDATE tenants SET {} WHERE name = %s RETURNING " + TENANT_COLUMNS
                    ).format(assignments)
    with conn.transaction(), conn.cursor(row_factory=class_row(Tenant)) as cur:
        row = cur.execute(query, (*values.values(), name)).fetchone()
    if row is None:
        raise TenantNotFound(name)
    return row


def get_tenant(conn: psycopg.Connection[tuple[object, ...]], name: str) -> Tenant:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        row = cur.execute(
            "SELECT id, name, monthly_budget_usd, rpm_limit, tpm_limit, created_at, max_n, "
            "max_tokens, max_prompt_tokens FROM tenants WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise TenantNotFound(name)
    return row


def list_tenants(conn: psycopg.Connection[tuple[object, ...]]) -> list[TenantSummary]:
    query = """
        SELECT t.name, t.monthly_budget_usd, t.rpm_limit, t.tpm_limit,
               (SELECT count(*) FROM api_keys k
                 WHERE k.tenant_id = t.id AND k.revoked_at IS NULL)::int AS active_keys,
               COALESCE((SELECT sum(s.cost_usd) FROM spend s
                 WHERE s.tenant_id = t.id
                   AND s.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                                       AT TIME ZONE 'UTC'), 0) AS month_spend_usd,
               t.created_at
          FROM tenants t ORDER BY t.name"""
    with conn.cursor(row_factory=class_row(TenantSummary)) as cur:
        return cur.execute(query).fetchall()


# ----------------------------------------------------------------- API keys

_KEY_COLUMNS = """k.id, t.name AS tenant, k.key_prefix, k.label, k.created_at, k.revoked_at,
                  k.key_format FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"""


def create_key(conn: psycopg.Connection[tuple[object, ...]], tenant: str,
               label: str | None = None) -> tuple[str, ApiKey]:
    """A new key for ``tenant``: (the key, to show once; its stored record)."""
    owner = get_tenant(conn, tenant)
    key = generate_key(key_secret(conn))
    prefix = key[:SHOWN_PREFIX_LEN]
    label = _check_label(label) if label is not None else prefix
    try:
        with conn.transaction():
            inserted = conn.execute(
                "INSERT INTO api_keys (tenant_id, key_hash, key_prefix, label, key_format) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (owner.id, hash_key(key), prefix, label, KEY_FORMAT_HMAC)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise InvalidInput("label", f"tenant {tenant!r} already has a key labelled "
                                    f"{label!r}") from None
    assert inserted is not None
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        row = cur.execute(f"SELECT {_KEY_COLUMNS} WHERE k.id = %s", (inserted[0],)).fetchone()
    assert row is not None
    return key, row


def list_keys(conn: psycopg.Connection[tuple[object, ...]],
              tenant: str | None = None) -> list[ApiKey]:
    if tenant is not None:
        get_tenant(conn, tenant)
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        return cur.execute(
            f"SELECT {_KEY_COLUMNS} WHERE %(t)s::text IS NULL OR t.name = %(t)s "
            "ORDER BY t.name, k.created_at, k.id", {"t": tenant}).fetchall()


def _matching_keys(conn: psycopg.Connection[tuple[object, ...]], ref: str) -> list[ApiKey]:
    """Active keys matching ``ref``: the full key, else a key prefix, else a label
    (``label`` or ``tenant/label``)."""
    active = f"SELECT {_KEY_COLUMNS} WHERE k.revoked_at IS NULL AND "
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        found = cur.execute(active + "k.key_hash = %s", (hash_key(ref),)).fetchall()
        if not found and ref.startswith(KEY_PREFIX) and (
                MIN_PREFIX_LEN <= len(ref) <= SHOWN_PREFIX_LEN):
            escaped = ref.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            found = cur.execute(active + "k.key_prefix LIKE %s", (escaped + "%",)).fetchall()
        if not found:
            tenant, _, label = ref.rpartition("/")
            found = cur.execute(active + "k.label = %s AND (%s = '' OR t.name = %s)",
                                (label, tenant, tenant)).fetchall()
    return found


def revoke_key(conn: psycopg.Connection[tuple[object, ...]], ref: str) -> ApiKey:
    """Revoke the one active key matching ``ref`` (see :func:`_matching_keys`)."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput("key", "give a key, a key prefix or a label")
    with conn.transaction():
        matches = _matching_keys(conn, ref)
        if not matches:
            raise KeyNotFound(ref)
        if len(matches) > 1:
            raise AmbiguousKey(ref, [f"{m.tenant}/{m.label} ({m.key_prefix}...)" for m in matches])
        with conn.cursor(row_factory=class_row(ApiKey)) as cur:
            cur.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (matches[0].id,))
            row = cur.execute(f"SELECT {_KEY_COLUMNS} WHERE k.id = %s",
                              (matches[0].id,)).fetchone()
    assert row is not None
    return row


# ----------------------------------------------------------------- proxy side

_LOOKUP = """
SELECT k.id, k.label, t.id, t.name, t.monthly_budget_usd::float8, t.rpm_limit, t.tpm_limit,
       k.revoked_at IS NOT NULL, t.max_n, t.max_tokens, t.max_prompt_tokens
  FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
 WHERE k.key_hash = %s"""

_SECRET = "SELECT secret FROM key_secret WHERE id = 1"
_GATE = """
SELECT (SELECT secret FROM key_secret WHERE id = 1),
       ARRAY(SELECT DISTINCT key_format FROM api_keys WHERE revoked_at IS NULL)"""


def key_secret(conn: psycopg.Connection[tuple[object, ...]]) -> bytes:
    """The server secret format-3 keys are made with (migration 0055)."""
    row = conn.execute(_SECRET).fetchone()
    secret = row[0] if row is not None else None
    if not isinstance(secret, bytes | memoryview):
        raise InvalidInput("key_secret", "no key secret in the database: run `pool db migrate`")
    return bytes(secret)


async def lookup_key(pool: AsyncConnectionPool, key_hash: str) -> KeyIdentity | None:
    """The key's identity (revoked ones included), or None if no such key."""
    async with pool.connection() as conn:
        cur = await conn.execute(_LOOKUP, (key_hash,))
        row = await cur.fetchone()
    if row is None:
        return None
    key_id, label, tenant_id, tenant, budget, rpm, tpm, revoked, max_n, max_tokens, \
        max_prompt = row
    return KeyIdentity(key_id=key_id, label=label, tenant_id=tenant_id, tenant=tenant,
                       monthly_budget_usd=budget, rpm_limit=rpm, tpm_limit=tpm,
                       revoked=bool(revoked),
                       caps=Caps(max_n=max_n, max_tokens=max_tokens, max_prompt_tokens=max_prompt))


async def key_gate(pool: AsyncConnectionPool) -> KeyGate:
    """The server secret and the formats of the active keys, in one query."""
    async with pool.connection() as conn:
        row = await (await conn.execute(_GATE)).fetchone()
    assert row is not None
    secret, formats = row
    return KeyGate(secret=bytes(secret) if isinstance(secret, bytes | memoryview) else None,
                   active_formats=frozenset(int(f) for f in formats))
