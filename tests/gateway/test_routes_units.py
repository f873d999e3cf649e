"""The route table (:mod:`proxy.edge.routes`) and what the gateway does agree: a route in
the table is guarded, validated, capped and shaped as the table says, one taken out is
none of these, and no module of ``proxy/`` keeps a route list of its own."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from proxy.admission.budget import BudgetExceeded
from proxy.edge import routes
from proxy.edge.anthropic_errors import AnthropicErrors
from proxy.edge.caps import CapExceeded, Limits, check_caps
from proxy.edge.errors_shape import shape_failure
from proxy.edge.routes import ALL_CAPS, ROUTES, Access, Route, Shape
from proxy.edge.schemas import ChatRequest
from proxy.edge.validation import BadRequest, check_body
from proxy.plugin.auth import _check_request
from tests.gateway.test_isolation_units import _app, _call, _guard, _Recorder

ROOT = Path(__file__).resolve().parents[2]
NEW = "/v1/frobnicate"
LIMITS = Limits(max_n=4, max_tokens=100, max_prompt_tokens=1000)
BODY = {"model": "fast", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _request(path: str, body: Any) -> Request:
    raw = json.dumps(body).encode()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(raw)).encode())]
    return Request({"type": "http", "method": "POST", "path": path, "headers": headers,
                    "query_string": b"", "root_path": ""}, receive)


def _anthropic_error(path: str) -> dict[str, Any]:
    """The body a client gets for a 400 LiteLLM answers on ``path``."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(
            {"error": {"message": "no", "type": "x", "param": None, "code": "400"}}).encode()})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}
    sent = _Recorder()
    asyncio.run(AnthropicErrors(app)({"type": "http", "path": path}, receive, sent))
    return dict(json.loads(sent.sent[-1]["body"]))


def _behaviour(path: str) -> dict[str, bool]:
    """What the gateway does with ``POST path``, piece by piece."""
    guard = _guard(_app(200, [], [b"ok"]))
    done: dict[str, bool] = {
        "tenant passes the edge": _call(guard, "POST", path, "t").sent[0]["status"] == 200}
    try:
        check_body(path, {"model": "fast", "frobnicate": 1}, 10, 1000)
        done["body validated"] = False
    except BadRequest:
        done["body validated"] = True
    try:
        check_caps(path, {**BODY, "max_tokens": 101}, LIMITS, "acme")
        done["capped"] = False
    except CapExceeded:
        done["capped"] = True
    read = asyncio.run(_check_request(_request(path, BODY), path, 1000))
    done["custom_auth reads the body"] = read == BODY
    done["anthropic errors"] = _anthropic_error(path).get("type") == "error"
    exc = BudgetExceeded("acme", 1.0, 2.0)
    shape_failure({"model": "fast", "proxy_server_request": {"url": f"http://gw{path}"}}, exc)
    done["anthropic errors from the hook"] = isinstance(getattr(exc, "message", None), str) \
        and exc.message.startswith('{"type": "error"')
    return done


def test_a_route_added_to_the_table_is_guarded_validated_capped_and_shaped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = _behaviour(NEW)
    assert not any(before.values()), before
    monkeypatch.setitem(ROUTES, NEW, Route(frozenset({"POST"}), Access.TENANT, ChatRequest,
                                           ALL_CAPS, Shape.ANTHROPIC))
    after = _behaviour(NEW)
    assert all(after.values()), after
    monkeypatch.setitem(ROUTES, NEW, Route(frozenset({"POST"}), Access.TENANT, ChatRequest))
    uncapped = _behaviour(NEW)
    assert not uncapped["capped"] and not uncapped["anthropic errors"], uncapped
    assert uncapped["body validated"] and uncapped["tenant passes the edge"], uncapped


def test_a_route_taken_out_of_the_table_is_refused_and_unchecked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = "/v1/messages"
    assert all(_behaviour(path).values())
    monkeypatch.delitem(ROUTES, path)
    assert not any(_behaviour(path).values())


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_the_edge_lets_through_whom_the_table_names(path: str) -> None:
    route = ROUTES[path]
    guard = _guard(_app(200, [], [b"ok"]))
    for method in sorted(route.methods):
        tenant = _call(guard, method, path, "t").sent[0]["status"]
        anyone = _call(guard, method, path, None).sent[0]["status"]
        master = _call(guard, method, path, "sk-master").sent[0]["status"]
        assert master == 200
        assert (tenant == 200) == (route.access in (Access.TENANT, Access.PUBLIC)), method
        assert (anyone == 200) == (route.access is Access.PUBLIC), method
    if route.access is not Access.TENANT:
        return
    preflight = _call(guard, "OPTIONS", path, None).sent[0]["status"]
    assert preflight == 200
    for method in {"GET", "POST", "PUT", "DELETE"} - route.methods:
        assert _call(guard, method, path, "t").sent[0]["status"] == 403, method


def test_the_table_holds_together() -> None:
    for path, route in ROUTES.items():
        assert route.methods and path.startswith("/"), path
        assert not route.caps or route.schema is not None, f"{path}: caps without a body"
        assert not route.count_tokens or route.schema is not None, path
        if route.access is Access.TENANT and "POST" in route.methods:
            assert route.schema is not None and route.caps, f"{path}: an unchecked model route"
        if route.access in (Access.PUBLIC, Access.METRICS):
            assert route.schema is None and not route.caps, path
    tenant = {(m, p) for p, r in ROUTES.items() if r.access is Access.TENANT for m in r.methods}
    assert tenant == routes.TENANT_ROUTES
    assert ("POST", "/v1/messages/count_tokens") in routes.TENANT_ROUTES
    assert ROUTES["/v1/messages/count_tokens"].count_tokens


# string literals naming a route, allowed outside proxy/edge/routes.py (one each, and why)
ROUTE_LITERAL = re.compile(r"^/(v1|openai|health|metrics|models|messages|chat|embeddings|"
                           r"responses)\b")
ALLOWED_LITERALS = {
    ("proxy/edge/guard.py", "/metrics"),  # the rewrite to LiteLLM's mount point /metrics/
    ("proxy/plugin/health.py", "/health/readiness"),  # the route it adds (master key only)
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and ast.get_docstring(node, clean=False) is not None:
            found.add(id(node.body[0].value))  # type: ignore[attr-defined]
    return found


def test_no_module_keeps_a_route_list_of_its_own() -> None:
    strays = []
    for path in sorted((ROOT / "proxy").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name == "proxy/edge/routes.py":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        strays += [(name, node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)
                   and id(node) not in docs and ROUTE_LITERAL.match(node.value)
                   and (name, node.value) not in ALLOWED_LITERALS]
    assert not strays, f"routes named outside proxy/edge/routes.py: {strays}"
