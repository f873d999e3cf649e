"""sdk.mcp without a server: declarations, names, the confirmation policy, redaction."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import mcp_types
import pydantic
import pytest

import sdk.mcp
from sdk.mcp import MCPServer, MCPTool
from sdk.mcp.session import IDEMPOTENCY_META_KEY, result_text
from sdk.mcp.text import cap, redact, short_error
from sdk.mcp.tools import make_tools, model_tool_name

SCHEMA = {"type": "object", "properties": {"amount": {"type": "number", "maximum": 500}},
          "required": ["amount"]}


def listed(*names: str) -> list[mcp_types.Tool]:
    return [mcp_types.Tool(name=name, description=f"{name} things", input_schema=SCHEMA)
            for name in names]


def tools(server: MCPServer, *names: str) -> dict[str, MCPTool]:
    return {t.remote_name: t for t in make_tools(server, listed(*names))}


def test_importing_the_sdk_and_sdk_mcp_does_not_import_the_mcp_package() -> None:
    code = ("import sys, sdk, sdk.mcp; sdk.mcp.MCPServer('x', url='http://127.0.0.1:9/mcp'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mcp', 'mcp_types', 'jsonschema', 'httpx2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_idempotency_meta_key_is_one_constant() -> None:
    assert sdk.mcp.IDEMPOTENCY_META_KEY == IDEMPOTENCY_META_KEY


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "either url= or command="),
    ({"url": "http://a/mcp", "command": ["x"]}, "either url= or command="),
    ({"command": "node server.js"}, "command is a list"),
    ({"command": []}, "command is a list"),
    ({"url": "http://a/mcp", "timeout": 0}, "must be positive"),
])
def test_a_bad_declaration_is_refused_at_once(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MCPServer("s", **kwargs)


def test_repr_never_shows_headers_or_environment() -> None:
    server = MCPServer("s", url="http://a/mcp", headers={"Authorization": "Bearer abcdefgh"},
                       env={"TOKEN": "zyxwvuts"})
    assert "abcdefgh" not in repr(server) and "zyxwvuts" not in repr(server)


def test_allowlist_prefix_and_names_in_the_openai_alphabet() -> None:
    server = MCPServer("s", url="http://a/mcp", allowed_tools=["pay.out", "look"],
                       prefix="bank_")
    made = tools(server, "pay.out", "look", "drop_all")
    assert sorted(t.name for t in made.values()) == ["bank_look", "bank_pay_out"]
    assert made["look"].schema()["function"]["parameters"] == SCHEMA
    assert model_tool_name("p_", "a/b c" + "x" * 80) == ("p_a_b_c" + "x" * 80)[:64]
    with pytest.raises(ValueError, match="no tool named 'gone'"):
        make_tools(MCPServer("s", url="http://a/mcp", allowed_tools=["gone"]), listed("look"))
    with pytest.raises(ValueError, match="two tools would be named a_b"):
        make_tools(MCPServer("s", url="http://a/mcp"), listed("a.b", "a/b"))


def test_confirmation_by_name_by_predicate_and_a_broken_predicate_asks() -> None:
    by_name = tools(MCPServer("s", url="http://a/mcp", requires_confirmation=["pay"]),
                    "pay", "look")
    assert by_name["pay"].requires_confirmation and by_name["pay"].needs_confirmation({})
    assert not by_name["look"].requires_confirmation

    def big(name: str, arguments: Any) -> bool:
        return bool(arguments["amount"] > 100)

    predicate = tools(MCPServer("s", url="http://a/mcp", requires_confirmation=big), "pay")
    assert not predicate["pay"].needs_confirmation({"amount": 5})
    assert predicate["pay"].needs_confirmation({"amount": 500})
    assert predicate["pay"].needs_confirmation({})  # KeyError in the predicate: ask
    everything = tools(MCPServer("s", url="http://a/mcp", requires_confirmation=True), "look")
    assert everything["look"].needs_confirmation({"amount": 1})


def test_arguments_are_checked_with_the_servers_json_schema() -> None:
    pay = tools(MCPServer("s", url="http://a/mcp"), "pay")["pay"]
    assert pay.validate({"amount": 12.5}) == {"amount": 12.5}
    with pytest.raises(pydantic.ValidationError) as caught:
        pay.validate({"amount": 900})
    (error,) = caught.value.errors(include_url=False)
    assert error["loc"] == ("amount",) and "900 is greater than the maximum of 500" in error["msg"]


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"$ref": "https://example.invalid/s.json"}}},
    {"type": "object", "properties": {"a": {"type": 12}}},
])
def test_a_schema_jsonschema_cannot_use_fails_validation_and_fetches_nothing(
        schema: dict[str, Any]) -> None:
    bad = mcp_types.Tool(name="odd", input_schema=schema)
    (tool,) = make_tools(MCPServer("s", url="http://a/mcp"), [bad])
    with pytest.raises(pydantic.ValidationError, match="input schema for this tool cannot be") \
            as caught:
        tool.validate({"a": 1})
    assert not isinstance(caught.value.__cause__, AssertionError)  # no attempt to reach a host


def test_redaction_and_caps() -> None:
    text = ("failed: postgres://app:hunter2@db/x Authorization: Bearer sk-abc.def "
            "api_key=K123 and my-own-secret-value\x07")
    clean = redact(text, ["my-own-secret-value", "ab"])
    for secret in ("hunter2", "sk-abc.def", "K123", "my-own-secret-value", "\x07"):
        assert secret not in clean
    assert clean.startswith("failed: postgres://[redacted]@db/x")
    assert cap("abcdef", 4) == "abcd\n[... 2 more characters cut]" and cap("ab", 4) == "ab"
    assert len(short_error("e " * 1000)) < 400 and short_error("") == "(no error text)"


def test_result_text_describes_what_is_not_text() -> None:
    result = mcp_types.CallToolResult(content=[
        mcp_types.TextContent(type="text", text="hello"),
        mcp_types.ImageContent(type="image", data="QUJD", mime_type="image/png"),
        mcp_types.ResourceLink(type="resource_link", uri="file:///a.txt", name="a")])
    assert result_text(result) == ("hello\n[image image/png, 4 base64 characters omitted]\n"
                                   "[resource link: file:///a.txt]")
    structured = mcp_types.CallToolResult(content=[], structured_content={"t": 1})
    assert result_text(structured) == '{"t": 1}'


# ----------------------------------------------------------------- the agents file


def test_the_shipped_agents_file_declares_the_demo_ticket_desk() -> None:
    from llm_pool.settings import REPO_ROOT
    from worker.agents import load_agents

    spec, tools = load_agents(REPO_ROOT / "config" / "agents.yaml")["helpdesk"]
    (server,) = spec.mcp_servers
    assert server.command == ["python", "-m", "llm_pool.offline.mcp_server"]
    assert server.confirm == ["create_ticket"] and server.allowed_tools == ["create_ticket"]
    assert [t.name for t in tools] == ["lookup_order", "send_email"]  # nothing connected


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "s"}, "give either url or command"),
    ({"name": "s", "url": "http://a/mcp", "command": ["x"]}, "give either url or command"),
    ({"name": "s", "url": "ftp://a/mcp"}, "should match pattern"),
    ({"name": "s p", "url": "http://a/mcp"}, "should match pattern"),
    ({"name": "s", "url": "http://a/mcp", "headers": {"A": "b"}}, "Extra inputs"),
])
def test_a_bad_server_declaration_is_refused(fields: dict[str, Any], message: str) -> None:
    from worker.mcp_sessions import MCPServerSpec

    with pytest.raises(pydantic.ValidationError, match=message):
        MCPServerSpec.model_validate(fields)


def test_headers_come_from_the_environment_and_a_missing_variable_is_named() -> None:
    from worker.errors import AgentConfigError
    from worker.mcp_sessions import MCPServerSpec, close_servers, server_for

    spec = MCPServerSpec(name="s", url="http://127.0.0.1:9/mcp", bearer_token_env="TOK",
                         headers_from_env={"X-Tenant": "TEN"}, confirm="all")
    assert spec.headers({"TOK": "abc", "TEN": "t1"}) == {"Authorization": "Bearer abc",
                                                        "X-Tenant": "t1"}
    with pytest.raises(AgentConfigError, match=r"variable TOK \(for the Authorization header\)"):
        spec.headers({"TEN": "t1"})
    server = server_for(spec, {"TOK": "abc", "TEN": "t1"})
    assert server is server_for(spec, {}) and server.requires_confirmation is True
    close_servers()
