"""Unit tests of the isolation pieces: caps, the edge guard, LiteLLM internals (key
formats: test_keys_units.py)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

import pytest

from proxy.edge import guard as edge
from proxy.edge.caps import IMAGE_TOKENS, CapExceeded, Limits, check_caps, estimate_prompt_tokens
from proxy.plugin import internals
from proxy.storage.tenants import Caps

# ----------------------------------------------------------------- caps

LIMITS = Limits(max_n=4, max_tokens=100, max_prompt_tokens=1000)


def test_limits_take_the_tenants_own_caps_else_the_defaults() -> None:
    defaults = Caps(max_n=4, max_tokens=16_384, max_prompt_tokens=131_072)
    assert Limits.of(Caps(max_n=8), defaults) == Limits(8, 16_384, 131_072)


@pytest.mark.parametrize(("body", "param", "cap"), [
    ({"n": 5}, "n", "max_n"),
    ({"max_tokens": 101}, "max_tokens", "max_tokens"),
    ({"max_completion_tokens": 101}, "max_completion_tokens", "max_tokens"),
    ({"max_output_tokens": 101}, "max_output_tokens", "max_tokens"),
    ({"messages": [{"role": "user", "content": "x" * 4100}]}, "prompt (estimated tokens)",
     "max_prompt_tokens"),
    ({"input": "字" * 1001}, "prompt (estimated tokens)", "max_prompt_tokens"),
    ({"input": [[1] * 1001]}, "prompt (estimated tokens)", "max_prompt_tokens"),
])
def test_each_cap_names_itself_and_the_tenants_value(body: dict[str, Any], param: str,
                                                     cap: str) -> None:
    with pytest.raises(CapExceeded) as caught:
        check_caps("/v1/chat/completions", {"model": "fast", **body}, LIMITS, "acme")
    assert caught.value.param == param and caught.value.cap == cap
    assert f"tenant acme's cap {cap}=" in caught.value.message


def test_at_the_caps_and_on_other_routes_nothing_is_refused() -> None:
    check_caps("/v1/chat/completions", {"n": 4, "max_tokens": 100, "messages": [
        {"role": "user", "content": "x" * 900}]}, LIMITS, "acme")
    check_caps("/v1/models", {"n": 99}, LIMITS, "acme")


def test_prompt_estimate() -> None:
    assert estimate_prompt_tokens({"messages": [{"role": "user", "content": "abcd" * 100}]}) \
        == 4 + 4 + 400  # the message object, the role, the text: one token per byte
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10**6}}
    assert estimate_prompt_tokens({"messages": [{"role": "user", "content": [image]}]}) \
        == 4 + 4 + 4 + IMAGE_TOKENS
    assert estimate_prompt_tokens({"system": "ab", "tools": [{"name": "t"}]}) == 2 + 4 + 1
    assert estimate_prompt_tokens({"input": [[1, 2, 3]], "prompt": "é"}) == 3 + 2


# ----------------------------------------------------------------- the edge


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def _app(status: int, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> Any:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(chunks) - 1})
    app.seen = seen  # type: ignore[attr-defined]
    return app


def _guard(app: Any) -> edge.EdgeGuard:
    return edge.EdgeGuard(app, lambda: "sk-master",
                          edge.Redactor(lambda: ["http://10.1.2.3:8000/v1"]))


def _call(guard: edge.EdgeGuard, method: str, path: str, key: str | None) -> _Recorder:
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    sent = _Recorder()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}
    asyncio.run(guard({"type": "http", "method": method, "path": path, "headers": headers},
                      receive, sent))
    return sent


def test_the_edge_refuses_outside_the_allowlist_and_lets_the_master_key_through() -> None:
    app = _app(200, [], [b"ok"])
    guard = _guard(app)
    assert _call(guard, "GET", "/openapi.json", None).sent[0]["status"] == 401
    assert _call(guard, "GET", "/openapi.json", "sk-pool-x").sent[0]["status"] == 403
    assert _call(guard, "POST", "/openai/v1/chat/completions", "t").sent[0]["status"] == 403
    assert _call(guard, "GET", "/v1/chat/completions", "t").sent[0]["status"] == 403
    assert _call(guard, "GET", "/openapi.json", "sk-master").sent[0]["status"] == 200
    assert _call(guard, "GET", "/health/liveliness", None).sent[0]["status"] == 200
    assert _call(guard, "POST", "/v1/chat/completions", "t").sent[0]["status"] == 200
    assert app.seen == ["/openapi.json", "/health/liveliness", "/v1/chat/completions"]


def test_the_edge_keeps_only_tenant_headers_and_redacts_upstreams_in_errors() -> None:
    headers = [(b"content-type", b"application/json"), (b"x-litellm-model-id", b"fast-1"),
               (b"x-litellm-model-api-base", b"http://10.1.2.3:8000/v1"),
               (b"llm_provider-x-request-id", b"abc"), (b"x-litellm-version", b"1.106.2"),
               (b"llm_provider-retry-after", b"7")]
    error = json.dumps({"error": {"message": "boom at http://10.1.2.3:8000/v1/chat "
                                             "(10.1.2.3:8000) and http://other:9/x"}}).encode()
    sent = _call(_guard(_app(500, headers, [error[:20], error[20:]])), "POST",
                 "/v1/chat/completions", "t").sent
    names = [k for k, _ in sent[0]["headers"]]
    assert b"x-litellm-model-id" in names and b"content-length" in names
    assert (b"retry-after", b"7") in sent[0]["headers"]  # the provider's, relayed
    assert not any(n.startswith(b"llm_provider") or n in (b"x-litellm-model-api-base",
                                                          b"x-litellm-version") for n in names)
    body = b"".join(m["body"] for m in sent[1:])
    assert b"10.1.2.3" not in body and b"8000" not in body and b"other:9" not in body
    assert json.loads(body)["error"]["message"].count("[upstream]") == 3
    master = _call(_guard(_app(500, headers, [error])), "POST", "/v1/chat/completions",
                   "sk-master").sent
    assert master[1]["body"] == error  # the operator sees everything


def test_the_edge_redacts_error_events_of_streams_only() -> None:
    chunks = [b'data: {"choices": [{"delta": {"content": "see http://x.org"}}]}\n\n',
              b'data: {"error": {"message": "at http://10.1.2.3:8000/v1"}}\n\n']
    sent = _call(_guard(_app(200, [(b"content-type", b"text/event-stream")], chunks)), "POST",
                 "/v1/chat/completions", "t").sent
    assert sent[1]["body"] == chunks[0]  # the model's own text is never touched
    assert b"10.1.2.3" not in sent[2]["body"] and b"[upstream]" in sent[2]["body"]


# ----------------------------------------------------------------- LiteLLM internals


def _params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _resolve(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("path", sorted(internals.SIGNATURES))
def test_each_litellm_internal_is_where_and_what_we_expect(path: str) -> None:
    """Fails on a LiteLLM upgrade that moves or reshapes one of them, naming it."""
    try:
        found = _resolve(path)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"LiteLLM internal {path} moved or is gone: {exc}")
    expected = internals.SIGNATURES[path]
    if expected is not None:
        got = _params(found)
        assert tuple(got[:len(expected)]) == expected, (
            f"LiteLLM internal {path} changed its signature: {got}, expected {expected}")


def test_the_internals_are_installed_and_the_magic_strings_still_hold() -> None:
    from litellm.llms.openai import openai as openai_module
    from litellm.proxy.auth import auth_utils
    from litellm.proxy.proxy_server import app
    from litellm.router_utils import cooldown_handlers
    from litellm.types.utils import StandardLoggingMetadata

    assert callable(app)  # an ASGI app the start-up wraps (proxy.plugin.startup)
    internals.install_patches()
    assert getattr(cooldown_handlers._should_run_cooldown_logic, "pool_wrapped", False)
    assert getattr(openai_module.drop_params_from_unprocessable_entity_error, "pool_wrapped",
                   False)
    assert internals.AUTH_METADATA_KEY in StandardLoggingMetadata.__annotations__
    assert "api_base" in internals.litellm_banned_body_params()
    with pytest.raises(ValueError) as refused:
        auth_utils.is_request_body_safe({"api_base": "http://evil"}, {}, None, "fast")
    assert internals.is_rejected_request(refused.value), refused.value
    assert not internals.is_rejected_request(ValueError("other"))
    shaped = internals.anthropic_error_response(429, "slow down")
    assert shaped["type"] == "error" and shaped["error"]["type"] == "rate_limit_error"
    assert internals.key_auth_metadata(
        {"metadata": {internals.AUTH_METADATA_KEY: {"pool_principal": "tenant"}}}
    ) == {"pool_principal": "tenant"}


def test_prometheus_skips_the_gauges_of_limiters_and_budgets_the_gateway_does_not_run(
) -> None:
    import asyncio
    import inspect

    from litellm.integrations.prometheus import PrometheusLogger

    trimmed = internals.prometheus_logger_class()
    assert issubclass(trimmed, PrometheusLogger) and internals.prometheus_logger_class() is trimmed
    logger = object.__new__(trimmed)  # no metrics registered: a real step would fail
    for name in internals.PROMETHEUS_UNUSED:
        assert name in vars(PrometheusLogger) and name in vars(trimmed), name
        done = getattr(logger, name)(standard_logging_payload=None, enum_values=None,
                                     user_api_key=None, user_api_key_alias=None, kwargs={},
                                     metadata={}, user_api_team=None,
                                     user_api_team_alias=None, litellm_params={},
                                     response_cost=0.0)
        assert (asyncio.run(done) if inspect.isawaitable(done) else done) is None
    assert "async_log_success_event" not in vars(trimmed)


def test_client_errors_and_connection_failures_are_told_apart() -> None:
    import httpx
    import litellm

    assert internals.is_client_error(litellm.NotFoundError("x", "openai", "m"))
    assert internals.is_client_error(litellm.BadRequestError("x", "m", "openai"))
    assert not internals.is_client_error(litellm.InternalServerError("x", "openai", "m"))
    assert not internals.is_client_error(
        litellm.ContextWindowExceededError("x", "m", "openai"))
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as exc:
            raise litellm.APIConnectionError("Connection error.", "openai", "m") from exc
    except litellm.APIConnectionError as wrapped:
        assert internals.is_connection_failure(wrapped)
    assert not internals.is_connection_failure(litellm.APIConnectionError("bug", "openai", "m"))


def test_the_edge_refuses_a_client_request_id_that_could_name_another_row() -> None:
    guard = _guard(_app(200, [], [b"ok"]))

    def status(call_id: bytes) -> int:
        sent = _Recorder()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}
        asyncio.run(guard({"type": "http", "method": "POST", "path": "/v1/chat/completions",
                           "headers": [(b"authorization", b"Bearer t"),
                                       (b"x-litellm-call-id", call_id)]}, receive, sent))
        return int(sent.sent[0]["status"])

    assert status(b"0b7c6f1e-2b1d-4c3a-9e55-3f0f5b8b1a2c") == 200
    assert status(b"call-1/attempt-1") == 400
    assert status(b"x" * 129) == 400


def test_the_metrics_key_reaches_get_metrics_and_nothing_else() -> None:
    app = _app(200, [], [b"ok"])
    guard = edge.EdgeGuard(app, lambda: "sk-master", edge.Redactor(lambda: []),
                           metrics_key=lambda: "sk-metrics")
    assert _call(guard, "GET", "/metrics", "sk-metrics").sent[0]["status"] == 200
    assert _call(guard, "GET", "/metrics/", "sk-metrics").sent[0]["status"] == 200
    assert _call(guard, "GET", "/metrics", "sk-master").sent[0]["status"] == 200
    assert _call(guard, "GET", "/metrics", None).sent[0]["status"] == 401
    assert _call(guard, "GET", "/metrics", "sk-metrics-x").sent[0]["status"] == 403
    assert _call(guard, "GET", "/metrics", "sk-pool-tenant").sent[0]["status"] == 403
    assert _call(guard, "POST", "/metrics", "sk-metrics").sent[0]["status"] == 403
    assert _call(guard, "GET", "/openapi.json", "sk-metrics").sent[0]["status"] == 403
    assert _call(guard, "POST", "/v1/chat/completions", "sk-metrics").sent[0]["status"] == 200
    # GET /metrics reaches LiteLLM's mount as /metrics/ (no 307 to follow, #21)
    assert app.seen == ["/metrics/", "/metrics/", "/metrics/", "/v1/chat/completions"]
    unset = edge.EdgeGuard(app, lambda: "sk-master", edge.Redactor(lambda: []))
    assert _call(unset, "GET", "/metrics", "").sent[0]["status"] == 401
