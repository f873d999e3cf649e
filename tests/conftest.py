"""Test harness: real PostgreSQL, real Redis, the real LiteLLM proxy as a subprocess,
and the scripted provider standing in for the LLM vendor.

Integration fixtures fail (never skip) with a message saying how to start a
missing service: CI must run them.

Test lanes: every test that needs no service is marked ``unit`` here, by a rule
(:func:`needs_service`), never by hand; ``pytest -m unit`` runs that lane. A unit
test runs with ``POOL_DATABASE_URL``/``POOL_REDIS_URL`` pointing at a closed port,
and reaching the real PostgreSQL or Redis or starting a service binary fails it
(:func:`_unit_needs_no_service`), in the lane and in the full suite alike.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, settings

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, start_proxy
from llm_pool.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, REPO_ROOT
from proxy.storage.db import migrate

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Hypothesis: no per-example deadline and no "input generation is slow" health check (both
# measure the machine, which is shared and loaded, not the code); every other check stays.
settings.register_profile("llm-pool", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("llm-pool")

MASTER_KEY = "sk-test-master-key"
# the spend writer's flush interval in the test proxies (default 1 s): a test waiting for
# rows, or for a flush that would bring a duplicate, waits this long rather than seconds
SPEND_FLUSH_INTERVAL = 0.2
LOOPBACK = ("127.0.0.1", "::1", "localhost")
START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"


# ----------------------------------------------------------------- test lanes

# Fixtures that stand for a service: PostgreSQL, Redis, a proxy, workers, npm, a browser.
# Every proxy/worker/database fixture depends on one of the first two, so the rule
# holds for fixtures added later without touching this list.
SERVICE_FIXTURES = frozenset({"pg_url", "redis_url", "everything_js", "browser"})
# Programs a unit test must not start (a service, or what only a service test needs).
SERVICE_PROGRAMS = frozenset({"redis-server", "postgres", "pg_ctl", "pg_ctlcluster", "psql",
                              "litellm", "dramatiq", "node", "npm", "npx", "chromedriver"})


def marked_integration_module(path: Path) -> bool:
    """Whether ``path`` marks all its tests ``integration`` (module-level ``pytestmark``),
    read from its source without importing it."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "pytestmark"
                for target in node.targets):
            return "integration" in ast.unparse(node.value)
    return False


def needs_service(item: pytest.Item) -> bool:
    """The lane rule: a test needs a service if it is marked ``integration`` or any
    fixture it uses (directly or through other fixtures) is a service fixture."""
    if item.get_closest_marker("integration") is not None:
        return True
    return not SERVICE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the unit lane, do not import modules whose every test is integration-marked
    (their imports, LiteLLM and the client libraries, cost seconds each)."""
    if config.getoption("markexpr", "") != "unit" or collection_path.suffix != ".py":
        return None
    return True if marked_integration_module(collection_path) else None


@dataclass(frozen=True)
class CollectedModules:
    collected: frozenset[Path]  # every test module this session collected
    unit: frozenset[Path]  # those with at least one unit test


UNIT_MODULES = pytest.StashKey[CollectedModules]()


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit = set()
    for item in items:
        if not needs_service(item):
            item.add_marker(pytest.mark.unit)
            unit.add(item.path)
    config.stash[UNIT_MODULES] = CollectedModules(frozenset(item.path for item in items),
                                                  frozenset(unit))


@pytest.fixture(scope="session")
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def _service_addresses() -> set[tuple[str, int]]:
    found = set()
    for url, port in ((os.environ.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL), 5432),
                      (os.environ.get("POOL_REDIS_URL", DEFAULT_REDIS_URL), 6379)):
        parts = urlsplit(url)
        for host in {parts.hostname or "127.0.0.1", "127.0.0.1", "::1", "localhost"}:
            found.add((host, parts.port or port))
    return found


@pytest.fixture(autouse=True)
def _unit_needs_no_service(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                           ) -> None:
    """A ``unit`` test gets closed ports for PostgreSQL and Redis, and fails if it
    connects to the real ones or starts a service program: the lane's rule is checked
    every run, not trusted."""
    if request.node.get_closest_marker("unit") is None:
        return
    services = _service_addresses()
    closed = request.getfixturevalue("closed_port")
    monkeypatch.setenv("POOL_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{closed}/unit")
    monkeypatch.setenv("POOL_REDIS_URL", f"redis://127.0.0.1:{closed}/0")
    why = (" (a test that needs a service uses a fixture in tests/conftest.py "
           "SERVICE_FIXTURES or is marked integration)")

    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and tuple(address[:2]) in services:
            raise AssertionError(f"a unit test connected to a service at {address[:2]}" + why)
        return real_connect(self, address)

    real_init = subprocess.Popen.__init__

    def popen(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        program = Path(os.fsdecode(argv[0]).split()[0]).name if argv else ""
        if program in SERVICE_PROGRAMS:
            raise AssertionError(f"a unit test started {program!r}" + why)
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(subprocess.Popen, "__init__", popen)


# ----------------------------------------------------------------- no real providers


@pytest.fixture(autouse=True)
def _no_real_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt of this test process to reach a host other than loopback."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK and not name.startswith("127."):
            raise AssertionError(f"test tried to reach a real host: {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


# ----------------------------------------------------------------- PostgreSQL


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this run, migrated (``pool db migrate``), dropped afterwards."""
    base = os.environ.get("POOL_DATABASE_URL", DEFAULT_DATABASE_URL)
    admin = _with_db(base, "postgres")
    name = f"llm_pool_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {admin} ({exc}).\n"
                    f"Start it with: {START_PG}\n(or set POOL_DATABASE_URL)", pytrace=False)
    url = _with_db(base, name)
    migrate(url)  # the gateway's schema: the proxy's custom_auth and callbacks need it
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------- Redis


def _xdist_database(url: str) -> str:
    """Under pytest-xdist (``-n N``), each test process gets a Redis database of its own
    (``gw0`` -> 1, ``gw1`` -> 2, ...): LiteLLM's router keeps cooldowns and usage in Redis
    under the deployment's id, which every test config shares, so two proxies running at
    once must not share a database. A serial run keeps the configured one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    return urlunsplit(urlsplit(url)._replace(path=f"/{1 + int(worker[2:]) % 15}"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = _xdist_database(os.environ.get("POOL_REDIS_URL", DEFAULT_REDIS_URL))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc}).\nStart it with: {START_REDIS}\n"
                    "(or set POOL_REDIS_URL)", pytrace=False)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix private to one test; its keys are deleted afterwards."""
    prefix = f"llmpool-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


# ----------------------------------------------------------------- provider and proxy


@pytest.fixture(scope="session")
def provider() -> Iterator[ScriptedProvider]:
    with ScriptedProvider() as running:
        yield running


@pytest.fixture
def scripted(provider: ScriptedProvider) -> Iterator[ScriptedProvider]:
    """The shared scripted provider, with rules, scripts and request log cleared."""
    provider.reset()
    yield provider
    provider.reset()


@pytest.fixture(scope="session")
def proxy_env(provider: ScriptedProvider, pg_url: str) -> dict[str, str]:
    return {
        "POOL_PROVIDER_URL": f"{provider.url}/v1",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "POOL_DATABASE_URL": pg_url,
        "POOL_SPEND_FLUSH_INTERVAL": str(SPEND_FLUSH_INTERVAL),
    }


@pytest.fixture(scope="session")
def offline_proxy(proxy_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ProxyProcess]:
    """The real stock proxy on ``config/offline.yaml``, pointed at the scripted provider."""
    log = tmp_path_factory.mktemp("proxy") / "offline-proxy.log"
    running = start_proxy(REPO_ROOT / "config" / "offline.yaml", env=proxy_env, log_path=log)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
