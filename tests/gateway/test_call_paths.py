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

from proxy.plugin import answers, internals

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


def test_a_stream_without_provider_usage_is_flagged_in_the_success_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``litellm.stream_chunk_builder``, which LiteLLM's stream wrapper calls at the end of
    a stream to build the response it logs (counting a stream without usage with its
    tokenizer, silently): patched, the success callback's ``kwargs`` say so."""
    from litellm.integrations.custom_logger import CustomLogger

    flagged: list[bool] = []

    class Spy(CustomLogger):
        async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any,
                                          start_time: Any, end_time: Any) -> None:
            flagged.append(internals.usage_estimated(kwargs))

    monkeypatch.setattr(litellm, "callbacks", [Spy()])

    async def stream() -> None:  # mock_response: a provider stream that carries no usage
        answer = await litellm.acompletion(model="openai/x", api_key="k", messages=HI,
                                           stream=True, mock_response="hello there")
        async for _ in answer:
            pass
        for _ in range(100):
            if flagged:
                return
            await asyncio.sleep(0.02)

    asyncio.run(stream())
    assert flagged == [True]


def test_prometheus_still_calls_the_steps_the_gateway_logger_skips(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``PrometheusLogger``'s success event, on the gateway's subclass
    (:func:`internals.prometheus_logger`), calls the three gauge steps the subclass
    overrides by no-ops: if LiteLLM renamed or stopped calling one, its override would be
    dead code (and a renamed step would run again, unseen)."""
    from litellm.integrations.prometheus import PrometheusLogger

    trimmed = internals.prometheus_logger_class()
    called: list[str] = []
    for name in internals.PROMETHEUS_UNUSED:
        assert name in vars(PrometheusLogger) and name in vars(trimmed), name
        step = vars(trimmed)[name]

        def spy(self: Any, *args: Any, name: str = name, step: Any = step,
                **kwargs: Any) -> Any:
            called.append(name)
            return step(self, *args, **kwargs)  # the no-op: None, or its coroutine

        monkeypatch.setattr(trimmed, name, spy)
    monkeypatch.setattr(litellm, "callbacks", [internals.prometheus_logger()])

    async def served() -> None:
        await litellm.acompletion(model="openai/x", api_key="k", messages=HI,
                                  mock_response="hello")
        for _ in range(100):
            if set(called) == set(internals.PROMETHEUS_UNUSED):
                return
            await asyncio.sleep(0.02)

    asyncio.run(served())
    assert set(called) == set(internals.PROMETHEUS_UNUSED)


# ------------------------------------------------- the alias in answers: hooks, no patch

FALLBACK = {"additional_headers": {"x-litellm-attempted-fallbacks": 1,
                                   "x-litellm-model-group": "fast"}}


def _answered_after_fallback(response: Any) -> Any:
    response._hidden_params = json.loads(json.dumps(FALLBACK))
    return response


def test_a_streamed_answer_after_a_fallback_names_the_alias(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``proxy_server.async_data_generator`` (what streams chat and Responses answers) runs
    the gateway's ``async_post_call_streaming_iterator_hook``, then its own restamp, which
    names the fallback group (``fast``) unless the hook's flag switches it off: the chunk,
    and a Responses event's ``response``, reach the client naming the alias."""
    from litellm.proxy import proxy_server
    from litellm.proxy._types import UserAPIKeyAuth
    from litellm.types.llms.openai import ResponseCreatedEvent, ResponsesAPIResponse
    from litellm.types.utils import ModelResponseStream

    from proxy.plugin.gateway import ProxyCallbacks

    monkeypatch.setattr(litellm, "callbacks", [ProxyCallbacks()])
    chunk = _answered_after_fallback(ModelResponseStream(
        model="ollama_chat/qwen3:8b", choices=[{"index": 0, "delta": {"content": "hi"}}]))
    event = ResponseCreatedEvent(type="response.created", response=ResponsesAPIResponse(
        id="r", created_at=0, model="gpt-5.4", object="response", output=[],
        status="in_progress"))

    async def provider() -> Any:
        yield chunk
        yield event

    async def client() -> list[Any]:
        data = {"model": "quality", "metadata": {}}
        lines = [line.decode() if isinstance(line, bytes) else line
                 async for line in proxy_server.async_data_generator(
                     provider(), UserAPIKeyAuth(), data)]
        return [json.loads(line.removeprefix("data: ")) for line in lines
                if line.startswith("data: {")]

    sent = asyncio.run(client())
    assert [c.get("model") for c in sent] == ["quality", None]
    assert sent[1]["response"]["model"] == "quality"
    # LiteLLM prices the chunks it kept: they still name the provider's model
    assert (chunk.model, event.response.model) == ("ollama_chat/qwen3:8b", "gpt-5.4")


def test_an_answer_after_a_fallback_names_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ProxyLogging.post_call_success_hook`` runs the gateway's
    ``async_post_call_success_hook``; LiteLLM's restamp that follows it
    (``_override_openai_response_model``) leaves an answer after a fallback as it finds it:
    naming the alias."""
    from litellm.caching import DualCache
    from litellm.proxy._types import UserAPIKeyAuth
    from litellm.proxy.common_request_processing import _override_openai_response_model
    from litellm.proxy.utils import ProxyLogging

    from proxy.plugin.gateway import ProxyCallbacks

    monkeypatch.setattr(litellm, "callbacks", [ProxyCallbacks()])
    answer = _answered_after_fallback(litellm.ModelResponse(model="ollama_chat/qwen3:8b"))

    async def served() -> Any:
        hooks = ProxyLogging(user_api_key_cache=DualCache())
        return await hooks.post_call_success_hook(
            data={"model": "quality"}, response=answer, user_api_key_dict=UserAPIKeyAuth())

    served_answer = asyncio.run(served())
    _override_openai_response_model(response_obj=served_answer, requested_model="quality",
                                    log_context="test")
    assert served_answer.model == "quality"


def test_stamping_copies_and_leaves_bytes_alone() -> None:
    chunk = {"model": "gpt-5.4", "response": {"model": "gpt-5.4"}}
    assert answers.stamped(chunk, "quality") == {"model": "quality",
                                                 "response": {"model": "quality"}}
    assert chunk == {"model": "gpt-5.4", "response": {"model": "gpt-5.4"}}
    assert answers.stamped(b"data: {}", "quality") == b"data: {}"
    assert answers.alias_of({"model": ""}) is None
    from litellm.types.utils import ModelResponseStream

    provider = ModelResponseStream(model="gpt-5.4", choices=[])
    provider.response = {"model": "gpt-5.4"}  # an extra field, as a pass-through event's
    renamed = answers.stamped(provider, "quality")
    assert (renamed.model, renamed.response) == ("quality", {"model": "quality"})
    assert (provider.model, provider.response) == ("gpt-5.4", {"model": "gpt-5.4"})


def test_a_tenant_key_makes_litellm_skip_the_yaml_team_settings_lookup() -> None:
    """LiteLLM's pre-call (``get_dynamic_logging_metadata``) looks for a keyed team's
    callbacks in the YAML (``ProxyConfig.load_team_config``: a deep copy of the whole
    config per request) unless the team says it has none, as the tenant key's
    ``UserAPIKeyAuth`` does (``team_metadata.logging: []``, proxy/plugin/auth.py)."""
    from litellm.proxy.litellm_pre_call_utils import get_dynamic_logging_metadata
    from litellm.proxy.proxy_server import ProxyConfig

    from proxy.plugin.auth import identity_auth
    from proxy.storage.tenants import KeyIdentity

    looked_up: list[str] = []

    class Config(ProxyConfig):
        def load_team_config(self, team_id: str) -> Any:
            looked_up.append(team_id)
            return {}

    config = object.__new__(Config)
    tenant = identity_auth(KeyIdentity(key_id=1, label="billing", tenant_id=1, tenant="acme",
                                       monthly_budget_usd=None, rpm_limit=None,
                                       tpm_limit=None, revoked=False), "hash")
    assert tenant.team_id == "acme"  # LiteLLM's metrics label tenants by team
    assert get_dynamic_logging_metadata(tenant, config) is None
    assert looked_up == []
    tenant.team_metadata = None  # the control: without it, LiteLLM looks the team up
    assert get_dynamic_logging_metadata(tenant, config) is None
    assert looked_up == ["acme"]


def test_litellms_per_request_otel_import_succeeds_and_is_cached() -> None:
    """LiteLLM's auth imports its OTel logger on every request
    (``_seed_request_destinations``, best-effort: a failure is swallowed). Without
    ``opentelemetry-sdk`` (a dependency of the gateway for this alone) the import failed
    and Python ran the module again on every request; with it, the module is cached."""
    import sys

    from litellm.proxy._types import UserAPIKeyAuth
    from litellm.proxy.auth.user_api_key_auth import _seed_request_destinations

    _seed_request_destinations(UserAPIKeyAuth(team_id="acme"), None)
    assert sys.modules.get("litellm.integrations.otel.logger") is not None
