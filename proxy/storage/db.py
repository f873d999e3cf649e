"""PostgreSQL access for the gateway: versioned migrations (``pool db migrate``), a
plain connection for the CLI, and the pooled async connections the proxy uses.

Migrations are the files ``proxy/storage/migrations/NNNN_name.sql``, applied in order, each
in its own transaction, recorded in ``schema_migrations``; applying them again
is a no-op. A PostgreSQL advisory lock makes concurrent ``migrate`` calls safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from proxy.errors import StoreUnavailable

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "applied_versions",
    "connect",
    "discover_migrations",
    "ensure_database",
    "migrate",
    "open_async_pool",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MIGRATION_LOCK_ID = 7_104_211  # arbitrary, constant: pg_advisory_lock key of `migrate`
CONNECT_TIMEOUT = 5  # seconds, CLI connections
POOL_MAX_SIZE = 4
RECONNECT_GIVE_UP = 2.0  # seconds

CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text()


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a stray ``.sql`` name is an error."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_snake_name.sql")
        found.append(Migration(version=match.group(1), name=match.group(2), path=path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}: {versions}")
    return found


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A connection for the CLI, with a clear error when PostgreSQL is not there."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.OperationalError as exc:
        detail = " ".join(str(exc).split())  # libpq's message spans lines: keep one
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {_safe_url(url)}: {detail}",
                               exc) from exc


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names if it does not exist (connecting to the server's
    ``postgres`` database); True when it was created now."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        return False
    with connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def applied_versions(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    conn.execute(CREATE_TRACKING)
    return {str(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the pending migrations; return those applied now (empty when up to date)."""
    pending = discover_migrations(directory)
    applied: list[Migration] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            done = applied_versions(conn)
            for migration in pending:
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql().encode())
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                 (migration.version, migration.name))
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return applied


async def open_async_pool(url: str, timeout: float) -> AsyncConnectionPool:
    """The proxy's pool: opened without waiting, so the proxy starts (and serves
    cached keys) even while PostgreSQL is away; connections reconnect by themselves."""
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        timeout=timeout,
        kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout)),
                "options": f"-c statement_timeout={int(timeout * 1000)}"},
        check=AsyncConnectionPool.check_connection,
        # give up a background reconnection quickly: the pool grows again on demand,
        # so the first use after an outage connects at once instead of after a backoff
        reconnect_timeout=RECONNECT_GIVE_UP,
        open=False,
        name="llm-pool-gateway",
    )
    await pool.open(wait=False)
    return pool


def _safe_url(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
