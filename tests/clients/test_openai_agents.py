"""The OpenAI Agents SDK: an Agent with a ``function_tool`` on its default model (a
model name, served by the default ``OpenAIProvider`` over the Responses API) and on
``OpenAIChatCompletionsModel``."""

from __future__ import annotations

from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    RunConfig,
    Runner,
    add_trace_processor,
    function_tool,
    set_tracing_disabled,
)
from agents.tracing import TracingProcessor
from openai import AsyncOpenAI

from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration


set_tracing_disabled(True)  # no trace export to OpenAI's servers


class TraceRecorder(TracingProcessor):
    """Sees what the SDK's exporter would send: nothing, with tracing off."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_trace_start(self, trace: Any) -> None:
        self.seen.append(trace)

    def on_trace_end(self, trace: Any) -> None:
        self.seen.append(trace)

    def on_span_start(self, span: Any) -> None:
        self.seen.append(span)

    def on_span_end(self, span: Any) -> None:
        self.seen.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


RECORDER = TraceRecorder()
add_trace_processor(RECORDER)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _run(tenant: Tenant, chat_completions: bool) -> str:
    client = AsyncOpenAI(base_url=tenant.base_url, api_key=tenant.key, max_retries=0)
    model = OpenAIChatCompletionsModel(model="fast", openai_client=client) \
        if chat_completions else "fast"  # a name: the default provider, Responses API
    agent = Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather],
                  model=model)
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client),
                       tracing_disabled=True)
    result = Runner.run_sync(agent, "what is the weather in Paris", run_config=config)
    assert RECORDER.seen == [], "the Agents SDK traced the run (it would export it)"
    return str(result.final_output)


def test_default_responses_model_with_a_tool(tenant: Tenant) -> None:
    assert "Done. sunny in" in _run(tenant, chat_completions=False)
    assert {r["call_type"] for r in tenant.spend(2)} == {"aresponses"}


def test_chat_completions_model_with_a_tool(tenant: Tenant) -> None:
    assert "Done. sunny in" in _run(tenant, chat_completions=True)
    assert {r["call_type"] for r in tenant.spend(2)} == {"acompletion"}
