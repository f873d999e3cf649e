"""`pool events` output: time, message id, rounded figures; --json (no Redis needed)."""

from __future__ import annotations

import json

import pytest

from llm_pool.commands.conversations import _print_event, _watch

LLM_CALL = {"type": "llm_call", "message_id": "m-42",
            "data": {"alias": "fast", "cost": 1.6499999999999998e-05, "latency_ms": 12.3456789,
                     "tokens": 33, "expires_at": 1796535600.123}}
ENTRY = "1796535600123-0"  # 2026-12-06T05:40:00.123Z


def test_a_line_has_the_time_the_message_id_and_rounded_figures(
        capsys: pytest.CaptureFixture[str]) -> None:
    _print_event(LLM_CALL, ENTRY)
    line = capsys.readouterr().out.strip()
    assert line.startswith("2026-12-06T05:40:00.123Z m-42 [llm_call] ")
    data = json.loads(line.split("[llm_call] ", 1)[1])
    assert data == {"alias": "fast", "cost": 1.65e-05, "latency_ms": 12.35, "tokens": 33,
                    "expires_at": "2026-12-06T05:40:00Z"}


def test_json_lines_carry_the_exact_event(capsys: pytest.CaptureFixture[str]) -> None:
    _print_event(LLM_CALL, ENTRY, as_json=True)
    record = json.loads(capsys.readouterr().out)
    assert record == {"id": ENTRY, "time": "2026-12-06T05:40:00.123Z", "type": "llm_call",
                      "message_id": "m-42", "data": LLM_CALL["data"]}


class _OneEvent:
    def __init__(self, event: dict[str, object]) -> None:
        self.event: dict[str, object] | None = event

    def read_events(self, conversation: str, after: str, block_ms: int | None = None
                    ) -> list[tuple[str, dict[str, object]]]:
        event, self.event = self.event, None
        return [(ENTRY, event)] if event is not None else []


def test_pool_send_says_dead_lettered_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    store = _OneEvent({"type": "dead_lettered", "message_id": "m-42",
                       "data": {"cause": "GatewayRefusedError: HTTP 401"}})
    assert _watch(store, "c1", "0-0", "m-42", wait=5) == 1
    assert "dead-lettered: GatewayRefusedError: HTTP 401" in capsys.readouterr().err
