"""pydantic-ai (``pydantic-ai-slim[openai]``): an Agent with a tool on
``OpenAIChatModel`` and on ``OpenAIResponsesModel``."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration


def _agent(model: OpenAIChatModel | OpenAIResponsesModel) -> Agent[None, str]:
    agent = Agent(model, instructions="Answer with the tool.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    return agent


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_agent_with_a_tool(tenant: Tenant, kind: str) -> None:
    provider = OpenAIProvider(base_url=tenant.base_url, api_key=tenant.key)
    model = OpenAIChatModel("fast", provider=provider) if kind == "chat" \
        else OpenAIResponsesModel("fast", provider=provider)
    result = _agent(model).run_sync("what is the weather in Paris")
    assert "Done. sunny in" in result.output
    expected = "acompletion" if kind == "chat" else "aresponses"
    assert {r["call_type"] for r in tenant.spend(2)} == {expected}
