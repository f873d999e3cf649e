"""Unit tests of a request's failed provider attempts: one spend row each, a cut stream
billed what it streamed (estimated), a Messages stream ended by an error event an error
row, a chat stream's mid-answer error in the alias's name (issue #23)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from proxy.admission.limits import Ask, Ticket
from proxy.admission.tickets import TicketBook, costed
from proxy.context import TenantContext, to_metadata
from proxy.edge.caps import Limits
from proxy.edge.errors_shape import shape_failure
from proxy.plugin import gateway, internals
from proxy.spend.rows import STREAM_ERROR, SpendRow, row_from_payload

CHAT = {"model": "quality", "proxy_server_request": {"url": "http://gw/v1/chat/completions"}}


def _ask(prompt_tokens: int = 40, input_price: float = 0.001) -> Ask:
    return Ask(request_id="call", tenant_id=1, tenant="t", rpm=None, tpm=None, budget=None,
               prompt_tokens=prompt_tokens, completion_tokens=100, input_price=input_price,
               output_price=0.002)


def _row(status: str = "error", deployment: str | None = "quality-anthropic",
         error: str | None = "AnthropicError", prompt: int = 0, completion: int = 0,
         cost: float = 0.0) -> SpendRow:
    return SpendRow(request_id="call", tenant_id=1, key_label="k", call_type="acompletion",
                    model_alias="quality", deployment=deployment, provider_model=None,
                    prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost,
                    latency_ms=None, status=status, error_class=error,
                    created_at=datetime(2026, 1, 2, tzinfo=UTC))


def test_a_failed_attempt_with_usage_keeps_it_flagged_estimated() -> None:
    cut = costed(_row(prompt=900, completion=5, cost=0.002775), _ask())
    assert (cut.prompt_tokens, cut.completion_tokens, cut.cost_usd, cut.estimated) == (
        900, 5, 0.002775, True)
    # output counted but no prompt count: the prompt's bound at the alias's input price
    unprompted = costed(_row(completion=5, cost=0.0001), _ask())
    assert (unprompted.prompt_tokens, unprompted.estimated) == (40, True)
    assert unprompted.cost_usd == pytest.approx(0.0001 + 40 * 0.001)
    # a refusal (no usage, not a timeout or a cut): nothing billed, nothing estimated
    refused = costed(_row(error="ServiceUnavailableError"), _ask())
    assert (refused.cost_usd, refused.estimated) == (0.0, False)
    # no deployment called: never billed
    assert not costed(_row(deployment=None, prompt=900, cost=0.1), _ask()).estimated


def test_each_failed_attempt_settles_once_even_if_logged_twice() -> None:
    book = TicketBook(900)
    ticket = Ticket(_ask(), True, 0, 0.0)
    book.add("call", ticket)
    refusal, cut = RuntimeError("503"), RuntimeError("overloaded mid-stream")
    first = book.settle(_row(error="ServiceUnavailableError"), refusal)
    assert first is not None and first.release is ticket and first.row.request_id == "call"
    assert book.settle(_row(error="ServiceUnavailableError"), refusal) is None  # again
    second = book.settle(_row(prompt=900, completion=5, cost=0.002775), cut)
    assert second is not None and second.release is None
    assert (second.row.request_id, second.row.estimated) == ("call/attempt-2", True)
    assert book.settle(_row(prompt=900, completion=5, cost=0.002775), cut) is None
    third = book.settle(_row(error="ServiceUnavailableError"), RuntimeError("503 again"))
    assert third is not None and third.row.request_id == "call/attempt-3"
    book.request_over("call")  # failed for good: the exceptions (and tracebacks) let go
    assert book._entries["call"].errors == []
    book.request_over("unknown")


def test_a_retry_the_router_found_no_deployment_for_keeps_no_row_of_its_own() -> None:
    """Provider failure, then a retry with every deployment cooling down, then a fallback
    that answers: two rows (the answer, the provider's failure as attempt-1)."""
    book = TicketBook(900)
    book.add("call", Ticket(_ask(), True, 0, 0.0))
    first = book.settle(_row(error="ServiceUnavailableError"), RuntimeError("503"))
    assert first is not None and first.row.request_id == "call"
    unrouted = _row(deployment=None, error="RouterRateLimitError")
    assert book.settle(unrouted, RuntimeError("no deployments")) is None
    answer = book.settle(_row(status="ok", error=None, prompt=10, completion=2))
    assert answer is not None and answer.row.request_id == "call"
    assert [r.request_id for r in answer.earlier] == ["call/attempt-1"]
    # the router's refusal before any provider call is the request's row (it may be final)
    book.add("call", Ticket(_ask(), True, 0, 0.0))
    alone = book.settle(unrouted, RuntimeError("no deployments"))
    assert alone is not None and alone.row.request_id == "call"
    then = book.settle(_row(error="ServiceUnavailableError"), RuntimeError("503"))
    assert then is not None and then.row.request_id == "call"  # replaces it: a call


def test_an_unrouted_error_names_no_deployment_though_the_details_still_hold_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempts' shared logging details hold the api_base and model_id of another
    attempt when the router's no-deployment error is logged: the row names none, and the
    next attempt's failure is let through as after any failure the gateway recorded."""
    stale = _payload(status="failure", prompt_tokens=0, completion_tokens=0, response_cost=0.0,
                     error_information={"error_class": "RouterRateLimitError"})
    row = row_from_payload(stale)
    assert row is not None and (row.deployment, row.provider_model, row.status) == (
        None, None, "error")
    provider = row_from_payload({**stale, "error_information": {"error_class": "APIError"}})
    assert provider is not None and provider.deployment == "quality-anthropic"

    async def settle_id(*args: Any) -> None:
        return None

    monkeypatch.setattr(gateway, "proxy_state",
                        lambda: SimpleNamespace(call_ids=SimpleNamespace(settle=settle_id)))
    details = {"standard_logging_object": stale, "exception": RuntimeError("no deployments"),
               internals.FAILURE_LOGGED: True, internals.SYNC_FAILURE_LOGGED: True}
    asyncio.run(_Callbacks().async_log_failure_event(details, None, None, None))
    assert internals.FAILURE_LOGGED not in details and internals.SYNC_FAILURE_LOGGED not in details


def _payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "litellm_call_id": "call", "call_type": "anthropic_messages", "status": "success",
        "model": "claude-sonnet-4-6", "model_id": "quality-anthropic", "model_group": "quality",
        "api_base": "http://127.0.0.1:1/v1/messages", "prompt_tokens": 900,
        "completion_tokens": 1, "response_cost": 0.002715, "startTime": 100.0,
        "endTime": 100.5, "completionStartTime": 100.25,
        "error_information": {"error_class": ""},
        "metadata": {"user_api_key_auth_metadata": to_metadata(
            TenantContext(7, "acme", None, None, None, Limits(4, 100, 1000)))}}
    base.update(overrides)
    return base


def test_a_messages_stream_ended_by_an_error_event_is_an_error_row_billed_and_estimated() -> None:
    details = {internals.STREAM_COMPLETE: False}
    assert internals.stream_incomplete(details)
    assert not internals.stream_incomplete({internals.STREAM_COMPLETE: True})
    assert not internals.stream_incomplete({})  # not such a stream (chat, OpenAI wire)
    row = row_from_payload(_payload(), stream_incomplete=internals.stream_incomplete(details))
    assert row is not None
    assert (row.status, row.error_class, row.deployment, row.prompt_tokens,
            row.completion_tokens, row.cost_usd, row.estimated, row.ttfb_ms) == (
        "error", STREAM_ERROR, "quality-anthropic", 900, 1, 0.002715, True, 250.0)
    assert row.error_message and "error event" in row.error_message
    whole = row_from_payload(_payload())
    assert whole is not None and (whole.status, whole.estimated) == ("ok", False)


class _Callbacks(gateway.ProxyCallbacks):
    def __init__(self) -> None:
        super().__init__()
        self.settled: list[tuple[SpendRow, object]] = []

    async def _settle(self, row: SpendRow, error: object = None) -> None:
        self.settled.append((row, error))


def test_after_a_failed_provider_attempt_the_next_is_logged_on_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def settle_id(*args: Any) -> None:
        return None

    monkeypatch.setattr(gateway, "proxy_state",
                        lambda: SimpleNamespace(call_ids=SimpleNamespace(settle=settle_id)))
    callbacks, error = _Callbacks(), RuntimeError("503")
    failed = {"standard_logging_object": _payload(status="failure", prompt_tokens=0,
                                                  completion_tokens=0, response_cost=0.0),
              "exception": error, internals.FAILURE_LOGGED: True,
              internals.SYNC_FAILURE_LOGGED: True,  # the router's cooldown count's flag
              internals.PARTIAL_USAGE: object()}  # a cut stream's usage
    asyncio.run(callbacks.async_log_failure_event(failed, None, None, None))
    assert internals.FAILURE_LOGGED not in failed  # LiteLLM logs the next attempt's too
    assert internals.SYNC_FAILURE_LOGGED not in failed
    assert internals.PARTIAL_USAGE not in failed  # and not as the next attempt's usage
    assert [(r.status, e) for r, e in callbacks.settled] == [("error", error)]
    # rejected before any deployment: not an attempt, the flag stays
    refused = {"standard_logging_object": _payload(status="failure", api_base=""),
               "exception": error, internals.FAILURE_LOGGED: True}
    asyncio.run(callbacks.async_log_failure_event(refused, None, None, None))
    assert refused[internals.FAILURE_LOGGED] is True
    # a success is never deduplicated by an exception
    asyncio.run(callbacks.async_log_success_event({"standard_logging_object": _payload(),
                                                   "exception": error}, None, None, None))
    assert callbacks.settled[-1][1] is None


class _ProviderError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message, self.llm_provider = status, message, "anthropic"
        self.type = "internal_server_error"


def test_a_chat_stream_failing_mid_answer_names_the_alias_as_an_overload() -> None:
    error = _ProviderError(500, "litellm.InternalServerError: AnthropicError - Overloaded")
    shaped = shape_failure({**CHAT, "stream": True}, error)
    assert shaped is not None and shaped.status_code == 503
    # LiteLLM builds the stream's last event from the exception itself
    assert (error.status_code, error.type) == (503, "service_unavailable_error")
    assert "'quality'" in error.message and "Anthropic" not in error.message
    assert getattr(shaped, "type", None) == "service_unavailable_error"
    untouched = _ProviderError(500, "AnthropicError - Overloaded")
    assert shape_failure(CHAT, untouched) is not None  # not streamed: the hook's answer is used
    assert (untouched.status_code, untouched.message) == (500, "AnthropicError - Overloaded")


def test_litellm_still_uses_the_logging_keys_the_gateway_reads_and_clears() -> None:
    """The keys :func:`internals.forget_failed_attempt` clears and
    :func:`internals.stream_incomplete` reads are LiteLLM's own, by name: a release that
    renames one would silently bring back a lost attempt row (or an ok row for a Messages
    stream ended by an error event), so the modules that set them must still name them."""
    import inspect

    from litellm.litellm_core_utils import litellm_logging
    from litellm.proxy.pass_through_endpoints import streaming_handler

    source = inspect.getsource(litellm_logging)
    assert f'"{internals.PARTIAL_USAGE}"' in source
    # the once-per-request flags: model_call_details[f"has_logged_{event_type}"]
    assert 'f"has_logged_{event_type}"' in source
    for key in (internals.FAILURE_LOGGED, internals.SYNC_FAILURE_LOGGED):
        assert f'"{key.removeprefix("has_logged_")}"' in source, key
    assert internals.STREAM_COMPLETE in inspect.getsource(streaming_handler)
