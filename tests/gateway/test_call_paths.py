"""Call-path tests: LiteLLM's own code, driven in-process (no server, no network), still
calls every function :mod:`proxy.plugin.internals` patches.

The signature tests (``test_isolation_units.py``) prove each patched symbol exists; these
prove LiteLLM still reaches it. Each test drives a LiteLLM entry point (``Router``,
``litellm.acompletion``) into a case where stock LiteLLM and the patched one answer
differently, and asserts the patched answer: if an upgrade moves the call site, the patch
becomes a silent no-op and the test fails here, not in a slow integration test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import litellm
import openai
import pytest
from litellm import Router

from proxy.plugin import internals

HI = [{"role": "user", "content": "hi"}]
STOCK_COOLDOWN = litellm.RouterRateLimitError  # what a cooled-down group answers


@pytest.fixture(autouse=True, scope="module")
def _patched() -> None:
    internals.install_patches()  # as the start-up does (proxy/plugin/startup.py)


def _router(*deployments: dict[str, Any], **settings: Any) -> Router:
    return Router(model_list=list(deployments), num_retries=0, allowed_fails=1,
                  cooldown_time=30, allowed_fails_policy={
                      "InternalServerErrorAllowedFails": 1,
                      "ServiceUnavailableErrorAllowedFails": 1,
                      "NotFoundErrorAllowedFails": 1}, **settings)


def _deployment(alias: str, mock: object) -> dict[str, Any]:
    """A deployment that answers ``mock`` (a text, or an exception it raises) in-process."""
    if isinstance(mock, BaseException):  # the router deep-copies its litellm_params
        mock.__deepcopy__ = lambda memo: mock  # type: ignore[attr-defined]
    return {"model_name": alias, "model_info": {"id": f"{alias}-1"},
            "litellm_params": {"model": f"openai/{alias}", "api_key": "k",
                               "api_base": "http://127.0.0.1:9/v1", "mock_response": mock}}


async def _answers(router: Router, alias: str, times: int) -> list[str]:
    found = []
    for _ in range(times):
        try:
            reply = await router.acompletion(model=alias, messages=HI)
            found.append(str(reply.choices[0].message.content))
        except Exception as exc:  # the error class is the answer
            found.append(type(exc).__name__)
    return found


def test_a_client_error_never_cools_a_deployment_down() -> None:
    """``_should_run_cooldown_logic``: stock LiteLLM cools a deployment after 404s (and
    answers ``RouterRateLimitError``); patched, every request still reaches it."""
    not_found = litellm.NotFoundError(message="no such model", llm_provider="openai",
                                      model="a")
    router = _router(_deployment("a", not_found))
    assert asyncio.run(_answers(router, "a", 4)) == ["NotFoundError"] * 4


def test_a_provider_fault_still_cools_it_down() -> None:
    """The control for the test above: the patch did not switch cooldowns off."""
    fault = litellm.InternalServerError(message="boom", llm_provider="openai", model="a")
    router = _router(_deployment("a", fault))
    answers = asyncio.run(_answers(router, "a", 3))
    assert answers[:2] == ["InternalServerError"] * 2
    assert answers[2] == STOCK_COOLDOWN.__name__


def test_a_refused_connection_cools_a_lone_deployment_down() -> None:
    """``_should_run_cooldown_logic`` and ``_should_cooldown_deployment``: stock LiteLLM
    never cools on an ``APIConnectionError`` (it matches the class name in the text), nor,
    since 1.108, a group's only deployment for a type its policy does not name; a real
    refused connection is a provider fault here."""
    refused = litellm.APIConnectionError(message="Cannot connect to host",
                                         llm_provider="ollama", model="a")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    router = _router(_deployment("a", refused))
    answers = asyncio.run(_answers(router, "a", 3))
    assert answers == ["APIConnectionError", "APIConnectionError", STOCK_COOLDOWN.__name__]


def test_a_client_error_does_not_fall_back_to_another_group() -> None:
    """``Router.async_function_with_fallbacks_common_utils``: stock LiteLLM falls back on
    any error; patched, a client error is the answer and the fallback group is not asked."""
    bad = litellm.BadRequestError(message="bad field", llm_provider="openai", model="a")
    router = _router(_deployment("a", bad), _deployment("b", "from b"),
                     fallbacks=[{"a": ["b"]}])
    assert asyncio.run(_answers(router, "a", 1)) == ["BadRequestError"]
    fault = litellm.InternalServerError(message="boom", llm_provider="openai", model="c")
    router = _router(_deployment("c", fault), _deployment("b", "from b"),
                     fallbacks=[{"c": ["b"]}])
    assert asyncio.run(_answers(router, "c", 1)) == ["from b"]  # the control


def test_an_unprocessable_entity_naming_no_parameter_is_an_error_not_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``drop_params_from_unprocessable_entity_error`` in LiteLLM's OpenAI handler: with
    ``drop_params``, a 422 naming no droppable parameter ended the handler's loop and the
    call returned ``None``; patched, the 422 is raised."""
    asked: list[dict[str, Any]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        return httpx.Response(422, json={"error": {"message": "unprocessable"}})

    client = openai.AsyncOpenAI(api_key="k", base_url="http://upstream.test/v1", max_retries=0,
                                http_client=httpx.AsyncClient(
                                    transport=httpx.MockTransport(upstream)))

    async def call() -> object:
        return await litellm.acompletion(model="openai/x", messages=HI, client=client,
                                         num_retries=0)

    monkeypatch.setattr(litellm, "drop_params", True)  # as `litellm_settings.drop_params`

    with pytest.raises(Exception) as raised:
        asyncio.run(call())
    assert "422" in str(raised.value) or "nprocessable" in str(raised.value), raised.value
    assert len(asked) == 1  # the same request is not sent again
