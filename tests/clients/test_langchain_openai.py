"""``langchain-openai``'s ``ChatOpenAI``: invoke, stream, ``bind_tools`` and
``with_structured_output``."""

from __future__ import annotations

import json

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration


class Weather(BaseModel):
    city: str
    celsius: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_invoke_stream_tools_and_structured_output(tenant: Tenant) -> None:
    llm = ChatOpenAI(model="fast", base_url=tenant.base_url, api_key=SecretStr(tenant.key),
                     max_retries=0)
    assert "You said: hello chain" in str(llm.invoke("hello chain").content)
    assert "You said: hello stream" in "".join(str(c.content) for c in llm.stream("hello stream"))

    called = llm.bind_tools([get_weather]).invoke("what is the weather in Paris")
    assert [c["name"] for c in called.tool_calls] == ["get_weather"]

    reply = json.dumps({"city": "Paris", "celsius": 21})
    script = json.dumps({"steps": [{"text": reply}]})
    weather = llm.with_structured_output(Weather).invoke(
        f"the weather in Paris as JSON [[script:{script}]]")
    assert weather == Weather(city="Paris", celsius=21)
    tenant.spend(4)
