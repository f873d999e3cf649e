"""The fast lane (``pytest -m unit``, see tests/conftest.py) is what it says: its rule
marks the right tests, and it reaches the logic of every module of the product.

Which modules the unit tests import is read from their source (``import`` statements
anywhere in a unit test module or a tests/ helper it imports), against the modules
of proxy/, sdk/, worker/ and llm_pool/. A module no unit test imports is either a gap
to fill or listed in :data:`NOT_IN_THE_FAST_LANE` with the reason; the list is kept
exact both ways.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from llm_pool.settings import REPO_ROOT
from tests.conftest import UNIT_MODULES, marked_integration_module, needs_service

PACKAGES = ("proxy", "sdk", "worker", "llm_pool")
TESTS = REPO_ROOT / "tests"

# Modules that no unit test imports, each with why: what they do is only observable with a
# service running (their tests are integration tests), or they are entry points whose
# parts are tested one by one.
SERVED_IN_PROCESS = ("served by the scripted provider (llm_pool.offline.provider), which unit "
                     "tests drive over loopback HTTP in-process (tests/test_provider.py)")
NOT_IN_THE_FAST_LANE: dict[str, str] = {
    "llm_pool.commands.client": "pool ask/models talk to a running proxy "
                                "(tests/test_client_commands.py)",
    "llm_pool.commands.gateway": "pool db/tenants/keys/spend act on PostgreSQL "
                                 "(tests/gateway/test_cli.py)",
    "llm_pool.commands.tenant_settings": "pool tenants set acts on PostgreSQL "
                                         "(tests/gateway/test_cli.py)",
    "llm_pool.dashboard.figures": "SQL results to tables: the dashboard's pages on PostgreSQL "
                                  "(tests/integration/test_dashboard.py); reached in-process "
                                  "by tests/test_dashboard_units.py through build_app",
    "llm_pool.dashboard.live": "reads Redis (tests/integration/test_dashboard.py)",
    "llm_pool.dashboard.queries": "SQL over PostgreSQL (tests/integration/test_dashboard.py)",
    "llm_pool.dashboard.render": "HTML of the pages; reached in-process by "
                                 "tests/test_dashboard_units.py through build_app",
    "llm_pool.offline.anthropic_wire": SERVED_IN_PROCESS,
    "llm_pool.offline.ollama_wire": SERVED_IN_PROCESS,
    "llm_pool.offline.openai_wire": SERVED_IN_PROCESS,
    "llm_pool.offline.steps": SERVED_IN_PROCESS,
    "llm_pool.offline.demo": "pool demo starts the whole system (tests/test_readme.py)",
    "llm_pool.offline.demo_tools": "the demo agent's tools, run by workers in pool demo",
    "llm_pool.offline.mcp_server": "a stdio MCP server process (tests/mcp/)",
    "proxy.admission.reservations": "Lua scripts in Redis (tests/gateway/test_shared_limits.py)",
    "proxy.spend.journal": "a Redis Stream drained into PostgreSQL "
                           "(tests/gateway/test_spend_resilience.py)",
    "proxy.storage.reports": "SQL over PostgreSQL (tests/gateway/test_cli.py)",
    "proxy.storage.shared": "the gateway's Redis (tests/gateway/test_shared_limits.py)",
    "sdk.mcp.errors": "the MCP error classes; their shape is read by "
                      "tests/gateway/test_errors_units.py through sdk.mcp",
    "worker.counters": "Prometheus counters of a worker over Redis "
                       "(tests/worker/test_counters.py)",
    "worker.lease": "run leases in Redis (tests/integration/test_worker_exactly_once.py)",
    "worker.reclaim": "compares acknowledgement sets in Redis with Dramatiq's consumers "
                      "(tests/worker/test_reclaim.py)",
    "worker.resumes": "the resume-once store in Redis (tests/worker/test_resume_store.py)",
    "worker.metrics": "the dramatiq worker with metrics (tests/integration/test_worker_metrics.py)",
    "worker.tenant_keys": "reads tenant keys from PostgreSQL (tests/integration/test_worker.py)",
    "worker.turn": "a run's events in Redis and audit rows in PostgreSQL "
                   "(tests/integration/test_worker_outcomes.py)",
}


def product_modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def absolute(node: ast.ImportFrom, path: Path) -> str:
    """The module an ``ImportFrom`` in ``path`` names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    package = path.relative_to(REPO_ROOT).parent.parts
    package = package[:len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def reexported_from(package: str, name: str) -> str | None:
    """Where a package's ``__init__`` takes ``name`` from (``from sdk import Agent``
    is a use of ``sdk.agent``)."""
    init = module_file(package)
    if init is None or init.name != "__init__.py":
        return None
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.ImportFrom) and any(
                (alias.asname or alias.name) == name for alias in node.names):
            return absolute(node, init)
    return None


def imported_names(path: Path) -> set[str]:
    """Dotted names a module imports anywhere (top level, in functions, under
    TYPE_CHECKING); ``from a import b`` gives ``a``, ``a.b`` and, when ``a`` is a
    package that takes ``b`` from a module of its own, that module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            for alias in node.names:
                names.add(f"{node.module}.{alias.name}")
                source = reexported_from(node.module, alias.name)
                if source:
                    names.add(f"{source}.{alias.name}")
    return names


def imported_by(test_files: set[Path]) -> set[str]:
    """Product modules imported by ``test_files`` or by the tests/ helpers they import
    (followed transitively); a module counts with the packages above it."""
    seen: set[Path] = set()
    todo = list(test_files)
    names: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            names.add(name)
            helper = module_file(name) if name.startswith("tests.") else None
            if helper is not None:
                todo.append(helper)
    modules = product_modules()
    covered = set()
    for name in names:
        parts = name.split(".")
        covered.update(".".join(parts[:end]) for end in range(1, len(parts) + 1)
                       if ".".join(parts[:end]) in modules)
    return covered


def unit_test_files(config: pytest.Config) -> set[Path]:
    """The test modules holding unit tests: from this session's collection when it
    collected every module the lane runs, else from a ``--collect-only`` subprocess."""
    recorded = config.stash.get(UNIT_MODULES, None)
    wanted = {path for path in TESTS.rglob("test_*.py") if not marked_integration_module(path)}
    if recorded is not None and wanted <= recorded.collected:
        return recorded.unit
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-m", "unit",
         "-p", "no:cacheprovider", str(TESTS)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    return {REPO_ROOT / line.split("::", 1)[0] for line in listed.stdout.splitlines()
            if "::" in line}


def test_every_product_module_is_imported_by_a_unit_test_or_listed(
        request: pytest.FixtureRequest) -> None:
    covered = imported_by(unit_test_files(request.config))
    missing = product_modules() - covered - set(NOT_IN_THE_FAST_LANE)
    assert not missing, ("no unit test imports these modules: test their logic in the fast "
                         f"lane or list them in NOT_IN_THE_FAST_LANE with why: {sorted(missing)}")
    stale = set(NOT_IN_THE_FAST_LANE) & covered
    assert not stale, f"listed as outside the fast lane but a unit test imports them: {stale}"
    gone = set(NOT_IN_THE_FAST_LANE) - product_modules()
    assert not gone, f"listed modules that no longer exist: {gone}"


class Item:
    """What :func:`needs_service` reads of a pytest item."""

    def __init__(self, fixturenames: list[str], *marks: str) -> None:
        self.fixturenames = fixturenames
        self.marks = marks

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.marks else None


def test_the_rule_marks_by_fixture_and_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None  # this very test
    assert not needs_service(Item(["tmp_path", "scripted", "provider"]))  # in-process
    assert needs_service(Item(["tmp_path"], "integration"))
    for service in ("pg_url", "redis_url", "everything_js", "browser"):
        assert needs_service(Item(["tmp_path", service]))


def test_a_module_marked_integration_is_read_without_importing_it(tmp_path: Path) -> None:
    marked = tmp_path / "test_marked.py"
    marked.write_text("import no_such_module\nimport pytest\n"
                      "pytestmark = [pytest.mark.integration]\n")
    assert marked_integration_module(marked)
    plain = tmp_path / "test_plain.py"
    plain.write_text("import pytest\npytestmark = pytest.mark.filterwarnings('ignore')\n")
    assert not marked_integration_module(plain)


def test_a_unit_test_cannot_reach_the_real_services() -> None:
    """The guard of tests/conftest.py is on for this (unit) test: the real PostgreSQL
    and Redis ports refuse, and so does starting a service program."""
    for port in (5432, 6379):
        with socket.socket() as sock, pytest.raises(AssertionError, match="unit test connected"):
            sock.connect(("127.0.0.1", port))
    with pytest.raises(AssertionError, match="unit test started 'redis-server'"):
        subprocess.run(["redis-server", "--version"], capture_output=True, check=False)


def test_a_unit_test_sees_closed_service_urls(closed_port: int) -> None:
    for variable in ("POOL_DATABASE_URL", "POOL_REDIS_URL"):
        assert f"127.0.0.1:{closed_port}/" in os.environ[variable]
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", closed_port))
