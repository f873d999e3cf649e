"""The refusal adapter (proxy.plugin.refusals): each refusal of the gateway reaches LiteLLM
as a ``ProxyException`` with the status, type, param, message and headers it had, at the
boundaries LiteLLM calls (``custom_auth``, the pre-call hook, the non-object body guard)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litellm.proxy._types import ProxyErrorTypes, ProxyException, UserAPIKeyAuth
from starlette.requests import Request

from proxy import errors
from proxy.admission.budget import BudgetExceeded
from proxy.admission.callids import CallIdTaken
from proxy.admission.estimate import Unpriced
from proxy.admission.limits import LimitsUnavailable, RateLimited
from proxy.context import TenantContext, to_metadata
from proxy.edge.caps import CapExceeded, Limits
from proxy.edge.headers import RefusedHeader, TwoKeys
from proxy.edge.models import UnknownModel
from proxy.edge.validation import BadRequest, TooLarge
from proxy.errors import RequestRefused
from proxy.plugin import auth, gateway
from proxy.plugin.auth import AuthFailed, Forbidden, StoreDown, Unauthorized
from proxy.plugin.refusals import to_litellm

# (refusal, status, type, param, headers): what the client got before the adapter existed
REFUSALS: list[tuple[RequestRefused, int, str, str | None, dict[str, str]]] = [
    (Unauthorized("bad key"), 401, "auth_error", "api_key", {}),
    (Forbidden("no"), 403, "auth_error", None, {}),
    (StoreDown(), 503, "service_unavailable", None, {"retry-after": "2"}),
    (AuthFailed(KeyError("x")), 500, "internal_server_error", None, {}),
    (BadRequest("bad", param="n"), 400, "bad_request_error", "n", {}),
    (TooLarge(5_000_000, 4_000_000), 413, "request_too_large", None, {}),
    (CapExceeded("n", 5, "max_n", 4, "acme"), 400, "bad_request_error", "n", {}),
    (RefusedHeader("x-litellm-timeout", "header"), 400, "bad_request_error",
     "x-litellm-timeout", {}),
    (TwoKeys(["authorization", "x-api-key"]), 401, "auth_error", "api_key", {}),
    (UnknownModel("gpt", "is not a model"), 404, "invalid_request_error", "model", {}),
    (CallIdTaken("c1"), 409, "invalid_request_error", "x-litellm-call-id", {}),
    (Unpriced("fast"), 503, "service_unavailable", "model", {}),
    (BudgetExceeded("acme", 1.0, 2.0), 429, "budget_exceeded", None,
     {"x-should-retry": "false"}),
    (RateLimited("acme", "rpm", 60, 1.5), 429, "rate_limit_error", None, {"retry-after": "2"}),
    (LimitsUnavailable(), 503, "service_unavailable", None, {"retry-after": "2"}),
]


@pytest.mark.parametrize(("refusal", "status", "kind", "param", "headers"), REFUSALS,
                         ids=[type(r[0]).__name__ for r in REFUSALS])
def test_each_refusal_reaches_litellm_as_it_was(refusal: RequestRefused, status: int,
                                                kind: str, param: str | None,
                                                headers: dict[str, str]) -> None:
    assert not isinstance(refusal, ProxyException)
    exc = to_litellm(refusal)
    assert type(exc) is ProxyException
    assert (exc.code, exc.type, exc.param, exc.headers) == (str(status), kind, param, headers)
    assert exc.message == refusal.message and exc.to_dict()["message"] == refusal.message
    assert exc.__cause__ is refusal


def test_our_error_types_are_litellms() -> None:
    assert ProxyErrorTypes.bad_request_error.value == errors.BAD_REQUEST_ERROR
    assert ProxyErrorTypes.auth_error.value == errors.AUTH_ERROR
    assert ProxyErrorTypes.budget_exceeded.value == errors.BUDGET_EXCEEDED


def _request(path: str = "/v1/chat/completions") -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}
    return Request({"type": "http", "method": "POST", "path": path, "headers": [],
                    "query_string": b"", "root_path": ""}, receive)


def test_custom_auth_hands_litellm_a_proxy_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> UserAPIKeyAuth:
        raise Forbidden("no")

    async def crash(*args: Any, **kwargs: Any) -> UserAPIKeyAuth:
        raise KeyError("boom")

    class State:
        keys = key_formats = None
        settings = type("S", (), {"master_key": "m", "max_request_bytes": 10,
                                  "default_caps": None, "tag_limits": None})()
    async def count_tokens(*args: Any) -> None:
        return None

    monkeypatch.setattr(auth, "_wiring", auth._Wiring(lambda: State(), count_tokens))  # type: ignore[arg-type]
    for fake, status in ((refuse, "403"), (crash, "500")):
        monkeypatch.setattr(auth, "authenticate", fake)
        with pytest.raises(ProxyException) as caught:
            asyncio.run(auth.custom_auth(_request(), "k"))
        assert caught.value.code == status and isinstance(caught.value.__cause__, Exception)


def test_the_pre_call_hook_hands_litellm_a_proxy_exception(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise BadRequest("merged: no", param="timeout")
    monkeypatch.setattr(gateway, "check_merged", refuse)
    key = UserAPIKeyAuth(metadata=to_metadata(
        TenantContext(7, "acme", None, None, None, Limits(4, 10, 100))))
    with pytest.raises(ProxyException) as caught:
        asyncio.run(gateway.callbacks.async_pre_call_hook(key, None, {"model": "fast"},
                                                          "acompletion"))
    assert (caught.value.code, caught.value.param) == ("400", "timeout")


def test_the_refusing_modules_and_the_context_import_no_litellm() -> None:
    """Only proxy.plugin (the adapter) knows LiteLLM's exception; a fresh interpreter
    imports the modules that refuse, and the context, without loading LiteLLM."""
    import subprocess
    import sys

    modules = ("proxy.errors", "proxy.context", "proxy.edge.routes", "proxy.edge.validation",
               "proxy.edge.caps", "proxy.edge.headers", "proxy.edge.models",
               "proxy.edge.merged", "proxy.admission.limits", "proxy.admission.callids",
               "proxy.admission.budget")
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'litellm'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout
