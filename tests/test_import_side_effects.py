"""Importing our code changes nothing (#18 part 3), and proxy/ has no import cycles.

The gateway's changes to LiteLLM (patches, ASGI layers, signal handlers) are made by the
start-up only (:mod:`proxy.plugin.startup`). Here a fresh interpreter imports every module
of ``proxy``, ``worker``, ``sdk`` and ``llm_pool`` and checks that LiteLLM's functions
the start-up patches are still LiteLLM's own, its app's middleware and routes are as
LiteLLM built them, and no signal handler changed. The cycle check reads every
``import`` statement of proxy/, those inside functions included.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import importlib, json, pkgutil, signal, sys
from prometheus_client import REGISTRY
from litellm.llms.openai import openai as openai_module
from litellm.proxy.proxy_server import app
from litellm.router import Router
from litellm.router_utils import cooldown_handlers
import litellm.proxy.auth.user_api_key_auth as user_api_key_auth

def snapshot():
    return {
        "should_run": id(cooldown_handlers._should_run_cooldown_logic),
        "should_cool": id(cooldown_handlers._should_cooldown_deployment),
        "fallbacks": id(Router.__dict__["async_function_with_fallbacks_common_utils"]),
        "drop_params": id(openai_module.drop_params_from_unprocessable_entity_error),
        "body_reader": id(user_api_key_auth._read_request_body_deferring_parse_failure),
        "middleware_stack": repr(app.middleware_stack),
        "user_middleware": repr(app.user_middleware),
        "routes": [getattr(r, "path", "") for r in app.router.routes],
        "signals": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT)},
        "loggers": {n: len(__import__("logging").getLogger(n).filters)
                    for n in ("LiteLLM Proxy", "LiteLLM", "LiteLLM Router")},
        # LiteLLM's Prometheus series: registered when LiteLLM loads the YAML's callback
        "series": sorted(m.name for m in REGISTRY.collect() if m.name.startswith("litellm_")),
    }

before = snapshot()
imported = []
for package in ("sdk", "proxy", "worker", "llm_pool"):
    root = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
print(json.dumps({"before": before, "after": snapshot(), "imported": imported}))
"""


def test_importing_every_module_leaves_litellm_untouched() -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "proxy.plugin.startup" in found["imported"]
    assert "proxy.plugin.auth" in found["imported"] and "proxy.plugin.gateway" in found["imported"]
    assert found["after"] == found["before"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports (every import statement)."""
    modules = {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        named: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".")
                    is_package = path.name == "__init__.py"
                    here = here[:len(here) - node.level + (1 if is_package else 0)]
                    base = ".".join([*here, *([base] if base else [])])
                named.add(base)
                named.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in named if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_proxy_has_no_import_cycles() -> None:
    graph = _graph("proxy")
    assert graph.get("proxy.plugin.gateway")
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
