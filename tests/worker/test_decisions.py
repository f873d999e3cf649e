"""The decision rules on a pending confirmation record (pure functions)."""

from __future__ import annotations

from typing import Any

from worker.decisions import decide, sdk_decisions
from worker.models import ConfirmMessage

NOW = 1_000.0


def _record(**extra: Any) -> dict[str, Any]:
    calls = [{"id": "a", "name": "refund", "arguments": {"order_id": 1}},
             {"id": "b", "name": "refund", "arguments": {"order_id": 2}}]
    return {"message": {"message_id": "m"}, "calls": calls, "decisions": {},
            "resumed_by": None, "expires_at": NOW + 60, **extra}


def _answer(**fields: Any) -> ConfirmMessage:
    return ConfirmMessage.model_validate({"conversation_id": "c", "decided_by": "ops", **fields})


def _valid(name: str, arguments: dict[str, Any]) -> str | None:
    return None if isinstance(arguments.get("order_id"), int) else "order_id: not an int"


def test_partial_then_complete_then_duplicate() -> None:
    first, change = decide(_record(), _answer(decisions={"a": {"approve": True}}), "d1", NOW,
                           _valid)
    assert first.kind == "partial" and change.record is not None and change.ttl is None
    done, change = decide(first.record, _answer(decisions={"b": {"approve": False}}), "d2", NOW,
                          _valid)
    assert done.kind == "resume" and done.record["resumed_by"] == "d2"
    assert change.ttl is not None  # decided: kept past the confirmation TTL
    assert [type(d).__name__ for d in sdk_decisions(done.record).values()] == [
        "Approve", "Decline"]
    again, change = decide(done.record, _answer(decisions={"a": {"approve": False}}), "d3",
                           NOW + 3600, _valid)
    assert again.kind == "refused" and not change.write
    redelivered, change = decide(done.record, _answer(decisions={"b": {"approve": False}}),
                                 "d2", NOW + 3600, _valid)  # after the TTL: still resumes
    assert redelivered.kind == "resume" and not change.write


def test_refusals_change_nothing() -> None:
    for wish, why in [({"x": {"approve": True}}, "not pending: x"),
                      ({"a": {"approve": True, "arguments": {"order_id": "1"}}},
                       "invalid arguments")]:
        verdict, change = decide(_record(), _answer(decisions=wish), "d", NOW, _valid)
        assert verdict.kind == "refused" and why in verdict.text and not change.write
    decided = _record(decisions={"a": {"approve": True, "arguments": None, "note": None,
                                       "by": "x", "decision_id": "d0"}})
    verdict, _ = decide(decided, _answer(decisions={"a": {"approve": False}}), "d", NOW, _valid)
    assert verdict.kind == "refused" and "already decided: a" in verdict.text


def test_yes_for_all_and_expiry() -> None:
    verdict, _ = decide(_record(), _answer(approved=True), "d", NOW, _valid)
    assert verdict.kind == "resume" and set(verdict.record["decisions"]) == {"a", "b"}
    late, change = decide(_record(), _answer(approved=True), "d", NOW + 61, _valid)
    assert late.kind == "expired" and change.write and change.record is None
    missing, _ = decide(None, _answer(approved=True), "d", NOW, _valid)
    assert missing.kind == "missing"
