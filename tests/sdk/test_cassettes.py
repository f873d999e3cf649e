"""The SDK against OpenAI's documented response shapes, pinned byte for byte in a vcrpy
cassette (record_mode=none: replay only; nothing is recorded, so no credential is written)."""

from __future__ import annotations

from pathlib import Path

import vcr

from sdk import Gateway

CASSETTES = Path(__file__).parent / "cassettes"
replay = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                 filter_headers=["authorization"], match_on=["method", "uri"])


def test_documented_shapes_parse_into_typed_results() -> None:
    gateway = Gateway(base_url="http://proxy.invalid", api_key="sk-not-sent-anywhere")
    with replay.use_cassette("openai_chat_shapes.yaml") as cassette:
        tool_turn = gateway.complete("quality", "Weather in Boston?")
        text_turn = gateway.complete("quality", "Describe the image.")
    assert cassette.all_played
    assert [(c.id, c.name, dict(c.arguments)) for c in tool_turn.tool_calls] == [
        ("call_abc123", "get_current_weather", {"location": "Boston, MA"})]
    assert tool_turn.finish_reason == "tool_calls" and tool_turn.text == ""
    assert (tool_turn.deployment, tool_turn.model_group, tool_turn.cost) == (
        "quality-openai", "quality", 0.00041)
    assert tool_turn.usage.total_tokens == 99
    assert text_turn.text == "The image shows a wooden boardwalk."
    assert (text_turn.deployment, text_turn.cost) == ("quality-anthropic", None)
    assert text_turn.request_id == "0a1b2c3d-0000-4000-8000-000000000002"

