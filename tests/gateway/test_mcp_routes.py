"""LiteLLM's own MCP gateway stays closed: its routes refuse tenant keys and anonymous
callers (the route walk in test_isolation.py covers every route; this names the MCP ones,
proves the walk sees them, and points a real MCP client at the proxy)."""

from __future__ import annotations

import httpx
import pytest

from llm_pool.runtime import ProxyProcess
from sdk.mcp import MCPServer, MCPUnreachableError
from tests.gateway.support import new_tenant
from tests.gateway.test_isolation import _app_routes, _served_routes

pytestmark = pytest.mark.integration

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "probe", "version": "1"}}}
MCP_ROUTES = [("POST", "/mcp"), ("POST", "/mcp/"), ("GET", "/mcp"), ("DELETE", "/mcp"),
              ("POST", "/mcp/proxy"), ("POST", "/toolset/x1/mcp"), ("POST", "/x1/mcp"),
              ("GET", "/mcp-rest/tools/list"), ("POST", "/mcp-rest/tools/call"),
              ("GET", "/v1/mcp/server"), ("POST", "/v1/mcp/server"),
              ("GET", "/v1/mcp/tools"), ("GET", "/mcp/enabled")]


def test_the_route_walk_covers_litellms_mcp_routes(offline_proxy: ProxyProcess) -> None:
    walked = {path for _, path in {*_app_routes(), *_served_routes(offline_proxy)}}
    assert {"/mcp", "/mcp/proxy", "/toolset/x1/mcp"} <= walked
    assert len([p for p in walked if "mcp" in p]) >= 10, sorted(p for p in walked if "mcp" in p)


@pytest.mark.parametrize(("method", "path"), MCP_ROUTES)
def test_litellm_mcp_routes_refuse_tenants_and_anonymous_callers(
        offline_proxy: ProxyProcess, pg_url: str, method: str, path: str) -> None:
    _, key = new_tenant(pg_url, "mcp-routes")
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=offline_proxy.url, timeout=30) as client:
        as_tenant = client.request(method, path, json=INITIALIZE,
                                   headers={**headers, "Authorization": f"Bearer {key}"})
        anonymous = client.request(method, path, json=INITIALIZE, headers=headers)
    assert (as_tenant.status_code, anonymous.status_code) == (403, 401), (
        as_tenant.text[:300], anonymous.text[:300])
    # refused by our allowlist (not only by LiteLLM's own MCP auth, which also says 403)
    assert "is not available to tenant keys" in as_tenant.text, as_tenant.text[:300]


def test_an_mcp_client_with_a_tenant_key_gets_nothing(offline_proxy: ProxyProcess,
                                                      pg_url: str) -> None:
    _, key = new_tenant(pg_url, "mcp-client")
    server = MCPServer("gateway", url=f"{offline_proxy.url}/mcp",
                       headers={"Authorization": f"Bearer {key}"}, connect_timeout=20)
    try:
        with pytest.raises(MCPUnreachableError, match="cannot be reached"):
            server.tools()
    finally:
        server.close()
