"""The ``litellm`` SDK used as a client of the gateway (``openai/<alias>`` with the
gateway's base URL): completion, streaming and the Responses API."""

from __future__ import annotations

import litellm
import pytest

from tests.clients.conftest import Tenant

pytestmark = pytest.mark.integration


def test_completion_stream_and_responses(tenant: Tenant) -> None:
    common = {"model": "openai/fast", "api_base": tenant.base_url, "api_key": tenant.key}
    hello = [{"role": "user", "content": "hello litellm"}]
    reply = litellm.completion(messages=hello, **common)
    assert "You said: hello litellm" in reply.choices[0].message.content

    chunks = litellm.completion(messages=hello, stream=True, **common)
    assert "You said: hello litellm" in "".join(
        c.choices[0].delta.content or "" for c in chunks)

    response = litellm.responses(input="hello responses", **common)
    assert "You said: hello responses" in response.output[0].content[0].text
    tenant.spend(3)
