"""Unit tests of the request-body checks (proxy.edge.validation, proxy.edge.credentials): the
tested lists of what passes and what is refused on the four model routes. The same
cases go through the real proxy in tests/clients/test_body_checks.py and
tests/faults/test_hostile_input.py."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.edge.credentials import find_refused, refused_field
from proxy.edge.routes import SCHEMAS
from proxy.edge.validation import BadRequest, TooLarge, check_body

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
LIMIT = 1000
HI = [{"role": "user", "content": "hi"}]
OK: dict[str, dict[str, Any]] = {
    CHAT: {"model": "fast", "messages": HI},
    EMBEDDINGS: {"model": "embedder", "input": ["a", "b"]},
    RESPONSES: {"model": "fast", "input": "hi"},
    MESSAGES: {"model": "fast", "max_tokens": 16, "messages": HI},
}
ROUTES = list(OK)

# documented OpenAI / Anthropic parameters and a few inert provider ones (vLLM
# sampling, Anthropic thinking through chat): all pass
PASSING: dict[str, dict[str, Any]] = {
    CHAT: {"stream": True, "stream_options": {"include_usage": True}, "temperature": 0,
           "max_tokens": 5, "max_completion_tokens": 5, "n": 1, "stop": ["x"], "seed": 1,
           "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
           "parallel_tool_calls": False, "response_format": {"type": "json_object"},
           "logprobs": True, "top_logprobs": 2, "logit_bias": {"1": -1}, "user": "u",
           "metadata": {"tags": ["a"]}, "tags": ["team-a"], "top_k": 40,
           "reasoning_effort": "low", "thinking": {"type": "enabled", "budget_tokens": 1024},
           "chat_template_kwargs": {"enable_thinking": False}, "min_p": 0.1,
           "repetition_penalty": 1.1, "guided_json": {"type": "object"},
           "store": False, "service_tier": "auto",
           "prompt_cache_key": "k", "safety_identifier": "s", "verbosity": "low"},
    EMBEDDINGS: {"encoding_format": "base64", "dimensions": 8, "user": "u",
                 "metadata": {"tags": ["a"]}, "tags": ["a"]},
    RESPONSES: {"instructions": "be brief", "max_output_tokens": 20, "temperature": 0.2,
                "top_p": 1, "stream": True, "tools": [{"type": "function", "name": "f"}],
                "tool_choice": "auto", "parallel_tool_calls": True,
                "text": {"format": {"type": "text"}}, "reasoning": {"effort": "low"},
                "metadata": {"tags": ["v"]}, "include": ["reasoning.encrypted_content"],
                "truncation": "auto", "store": False, "user": "u", "prompt_cache_key": "k",
                "top_k": 3, "tags": ["a"]},
    MESSAGES: {"system": [{"type": "text", "text": "be brief"}], "stop_sequences": ["x"],
               "stream": True, "temperature": 0.5, "top_p": 0.9, "top_k": 10,
               "tools": [{"name": "f", "input_schema": {"type": "object"}}],
               "tool_choice": {"type": "auto"}, "metadata": {"user_id": "u"},
               "thinking": {"type": "enabled", "budget_tokens": 1024},
               "service_tier": "auto", "tags": ["a"]},
}

# what LiteLLM or a provider would read past the checks: unknown fields (passed to the
# provider as is: Ollama's options.num_predict, vLLM's min_tokens/ignore_eos outrun
# max_tokens), extra_body (merged into the provider call), metadata keys LiteLLM
# interprets, LiteLLM's own parameters
UNKNOWN = [("x_anything", 1), ("extra_body", {"top_k": 5}), ("options", {"num_predict": 9}),
           ("keep_alive", "5m"), ("min_tokens", 100), ("ignore_eos", True),
           ("input_type", "query"), ("max_new_tokens", 10), ("litellm_session_id", "s"),
           ("proxy_server_request", {}), ("metadata", {"trace": "t"}),
           ("metadata", {"model_info": {}}), ("metadata", {"deployment": "quality-a"}),
           ("metadata", {"disable_fallbacks": True}), ("prompt", "x"),
           ("guardrails", ["g"]), ("stream_options", None)]

# credentials, upstream routing, prices, router controls, logging switches: refused on
# every route, naming the field
REFUSED = ["api_key", "api_base", "base_url", "api_version", "organization",
           "custom_llm_provider", "user_config", "model_list", "extra_headers", "headers",
           "litellm_credential_name", "aws_access_key_id", "aws_secret_access_key",
           "aws_session_token", "aws_region_name", "aws_profile_name", "aws_role_name",
           "vertex_project", "vertex_location", "vertex_credentials", "azure_ad_token",
           "azure_api_key", "client_secret", "anthropic_api_key", "openai_api_key",
           "langfuse_secret_key", "langfuse_host", "input_cost_per_token",
           "output_cost_per_token", "cache_read_input_token_cost", "watsonx_token",
           "s3_endpoint_url", "sagemaker_base_url", "slack_webhook_url",
           "turn_off_message_logging", "ANTHROPIC-API-KEY",
           # router controls and logging switches: the operator's
           "num_retries", "max_retries", "timeout", "stream_timeout", "fallbacks",
           "context_window_fallbacks", "cooldown_time", "caching", "cache", "mock_response",
           "mock_testing_fallbacks", "mock_timeout", "litellm_metadata", "litellm_call_id",
           "user_api_key_dict", "specific_deployment", "no-log", "no_log"]

WRONG_TYPES: dict[str, list[tuple[dict[str, Any], str]]] = {
    CHAT: [({"max_tokens": "x"}, "max_tokens"), ({"messages": "hi"}, "messages"),
           ({"messages": [{"content": "hi"}]}, "messages.0.role"), ({"model": 7}, "model"),
           ({"temperature": [1]}, "temperature"), ({"top_k": "many"}, "top_k"),
           ({"metadata": "x"}, "metadata"), ({"tags": "a"}, "tags"),
           ({"thinking": True}, "thinking"), ({"chat_template_kwargs": []}, "chat_template")],
    EMBEDDINGS: [({"input": 3}, "input"), ({"dimensions": "8"}, "dimensions")],
    RESPONSES: [({"input": 3}, "input"), ({"max_output_tokens": "x"}, "max_output_tokens"),
                ({"tools": {}}, "tools"), ({"stream": "yes"}, "stream"),
                ({"reasoning": "high"}, "reasoning")],
    MESSAGES: [({"max_tokens": "x"}, "max_tokens"), ({"messages": [{"role": "system",
                                                                    "content": "x"}]},
                                                      "messages.0.role"),
               ({"system": 3}, "system"), ({"top_k": 1.5}, "top_k"),
               ({"stop_sequences": "x"}, "stop_sequences")],
}


@pytest.mark.parametrize("route", ROUTES)
def test_documented_provider_and_unknown_parameters_pass(route: str) -> None:
    check_body(route, OK[route], 100, LIMIT)
    check_body(route, {**OK[route], **PASSING[route]}, 100, LIMIT)
    for name, value in PASSING[route].items():
        check_body(route, {**OK[route], name: value}, 100, LIMIT)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("field", "value"), UNKNOWN)
def test_fields_outside_the_schema_are_400_naming_them(route: str, field: str,
                                                       value: Any) -> None:
    if field in SCHEMAS[route].model_fields and field != "metadata":
        return  # documented on this route (stream_options on chat)
    with pytest.raises(BadRequest) as caught:
        check_body(route, {**OK[route], field: value}, 100, LIMIT)
    named = f"metadata.{next(iter(value))}" if field == "metadata" else field
    assert caught.value.code == "400" and caught.value.param == named
    assert f"`{named}` is not" in caught.value.message or f"{named}: not allowed" in \
        caught.value.message


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("field", REFUSED)
def test_credential_like_fields_are_400_naming_them(route: str, field: str) -> None:
    for body, named in [({**OK[route], field: "x"}, field),
                        ({**OK[route], "metadata": {field: "x"}}, f"metadata.{field}"),
                        ({**OK[route], "extra_body": {field: "x"}}, f"extra_body.{field}"),
                        ({**OK[route], "extra_body": {"metadata": {field: "x"}}},
                         f"extra_body.metadata.{field}")]:
        with pytest.raises(BadRequest) as caught:
            check_body(route, body, 100, LIMIT)
        assert caught.value.code == "400" and caught.value.param == named
        assert f"{named}: not allowed" in caught.value.message


@pytest.mark.parametrize("route", ROUTES)
def test_wrong_types_of_known_fields_are_400_naming_them(route: str) -> None:
    for patch, named in WRONG_TYPES[route]:
        with pytest.raises(BadRequest) as caught:
            check_body(route, {**OK[route], **patch}, 100, LIMIT)
        assert caught.value.code == "400" and named in caught.value.message, patch


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", [[1], "x", 3, None])
def test_non_object_bodies_are_400(route: str, body: Any) -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        check_body(route, body, 10, LIMIT)


@pytest.mark.parametrize("route", ["/v1/messages", "/messages", "/responses", "/embeddings",
                                   "/openai/v1/chat/completions", "/v1/messages/count_tokens"])
def test_every_form_of_the_model_routes_is_checked(route: str) -> None:
    assert route in SCHEMAS
    with pytest.raises(BadRequest):
        check_body(route, {"model": "fast", "api_key": "x"}, 10, LIMIT)


@pytest.mark.parametrize(("patch", "named"), [
    ({"store": True}, "store"), ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": {"id": "c"}}, "conversation"), ({"background": True}, "background"),
])
def test_stateful_responses_features_are_400(patch: dict[str, Any], named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_body(RESPONSES, {**OK[RESPONSES], **patch}, 100, LIMIT)
    assert caught.value.param == named and "keeps no responses" in caught.value.message
    check_body(CHAT, {**OK[CHAT], "store": True}, 100, LIMIT)  # chat's store is OpenAI's


def test_other_routes_are_not_checked() -> None:
    check_body("/v1/models", ["anything"], 10**9, LIMIT)


def test_too_large_is_413() -> None:
    with pytest.raises(TooLarge) as caught:
        check_body(CHAT, None, LIMIT + 1, LIMIT)
    assert caught.value.code == "413" and "POOL_MAX_REQUEST_MB" in caught.value.message


@pytest.mark.parametrize("name", ["max_tokens", "top_k", "prompt_cache_key", "stop_token_ids",
                                  "skip_special_tokens", "idempotency_key", "tokenizer",
                                  "reasoning_effort", "chat_template_kwargs", "metadata"])
def test_token_and_key_lookalikes_are_not_credentials(name: str) -> None:
    assert not refused_field(name)
    assert find_refused({name: 1, "metadata": {name: 1}}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ROUTES),
       st.dictionaries(st.sampled_from(["model", "messages", "input", "max_tokens", "stream",
                                        "api_key", "x"]), json_values))
def test_any_json_body_is_accepted_or_a_clean_400(route: str, body: dict[str, Any]) -> None:
    try:
        check_body(route, body, 10, LIMIT)
    except BadRequest as exc:
        assert exc.message.startswith("invalid request: ")
    else:
        assert isinstance(body["model"], str) and "api_key" not in body


def test_litellms_own_list_of_refused_fields_is_found_and_applied() -> None:
    from proxy.plugin.internals import litellm_banned_body_params

    banned = litellm_banned_body_params()
    assert {"api_base", "user_config", "langfuse_host", "input_cost_per_token"} <= set(banned)
    assert all(refused_field(name) for name in banned)
