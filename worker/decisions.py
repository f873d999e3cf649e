"""Decisions on a pending confirmation: pure functions over the record kept in Redis.

The record (JSON, one per conversation; see :mod:`worker.redis_store`)::

    {"message": {...InboundMessage...}, "history_len": 3, "question": "...",
     "pending": "...PendingConfirmation JSON...", "expires_at": 1767225600.0,
     "calls": [{"id": "call_...", "name": "refund", "arguments": {...}}],
     "decisions": {"call_...": {"approve": true, "arguments": null, "note": null,
                                "for_run": false, "by": "ops", "decision_id": "..."}},
     "resumed_by": null}

Rules (:func:`decide`): a decision for a call that is not pending, or for a call
another answer decided already, is refused and changes nothing; edited arguments
that fail the tool's schema are refused too; a decision after ``expires_at``
expires the confirmation; once every call is decided, the answer that completed
them owns the resumed run (``resumed_by``), and the same answer redelivered finishes
it (under the run's lease: see :mod:`worker.lease`). When the resumed run stops for a
new confirmation, the new record lists the decisions already spent on this message
(``spent``): one of them redelivered is answered from the stored outcome
(``spent`` verdict), never taken as an answer to the new question.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sdk import Approve, Decision, Decline
from worker.models import CallDecision, ConfirmMessage, PendingCall
from worker.redis_store import DECIDED_TTL, UNCHANGED, PendingChange

__all__ = ["ArgumentCheck", "Verdict", "decide", "sdk_decisions", "undecided"]

ArgumentCheck = Callable[[str, dict[str, Any]], str | None]
"""(tool name, edited arguments) -> an error text, or None when valid."""


@dataclass(frozen=True)
class Verdict:
    kind: Literal["missing", "expired", "refused", "partial", "resume", "spent"]
    record: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def undecided(record: Mapping[str, Any]) -> list[PendingCall]:
    decided = record.get("decisions") or {}
    return [PendingCall.model_validate(c) for c in record["calls"] if c["id"] not in decided]


def _refused(text: str, record: dict[str, Any]) -> tuple[Verdict, PendingChange]:
    return Verdict("refused", record, text), UNCHANGED


def _wanted(record: Mapping[str, Any], answer: ConfirmMessage, decision_id: str,
            check: ArgumentCheck) -> dict[str, CallDecision] | str:
    """The decisions this answer adds, or why it is refused."""
    calls = {c["id"]: c for c in record["calls"]}
    decided = record.get("decisions") or {}
    if answer.decisions is None:
        every = CallDecision(approve=bool(answer.approved), note=answer.note,
                             for_run=answer.for_run)
        wanted = {cid: every for cid in calls if cid not in decided}
        return wanted or "every pending call was decided already"
    unknown = sorted(cid for cid in answer.decisions if cid not in calls)
    if unknown:
        return (f"not pending: {', '.join(unknown)} (pending: "
                f"{', '.join(c.id for c in undecided(record)) or 'none'})")
    again = sorted(cid for cid in answer.decisions
                   if cid in decided and decided[cid]["decision_id"] != decision_id)
    if again:
        return f"already decided: {', '.join(again)}"
    for cid, wish in answer.decisions.items():
        error = check(calls[cid]["name"], wish.arguments) if wish.arguments is not None else None
        if error:
            return f"invalid arguments for {calls[cid]['name']} ({cid}): {error}"
    return dict(answer.decisions)


def decide(record: dict[str, Any] | None, answer: ConfirmMessage, decision_id: str, now: float,
           check: ArgumentCheck) -> tuple[Verdict, PendingChange]:
    """The verdict on ``answer`` and the change to the stored record."""
    if record is None:
        return Verdict("missing"), UNCHANGED
    if decision_id in record.get("spent", ()):  # redelivered; its run went on to a new pause
        return Verdict("spent", record), UNCHANGED
    owner = record.get("resumed_by")
    if owner is not None:
        if owner == decision_id:  # this answer, redelivered: finish its run
            return Verdict("resume", record), UNCHANGED
        return _refused("every pending call was decided already", record)
    if now >= float(record["expires_at"]):
        return Verdict("expired", record), PendingChange(None)
    wanted = _wanted(record, answer, decision_id, check)
    if isinstance(wanted, str):
        return _refused(wanted, record)
    by = answer.decided_by or "user"
    decisions = {**(record.get("decisions") or {}), **{
        cid: {**wish.model_dump(), "by": by, "decision_id": decision_id}
        for cid, wish in wanted.items()}}
    changed = {**record, "decisions": decisions}
    if all(c["id"] in decisions for c in record["calls"]):
        changed["resumed_by"] = decision_id
        return Verdict("resume", changed), PendingChange(changed, DECIDED_TTL)
    return Verdict("partial", changed), PendingChange(changed)


def sdk_decisions(record: Mapping[str, Any]) -> dict[str, Decision]:
    """The SDK's decisions from a fully decided record."""
    return {cid: Approve(d["arguments"], for_run=bool(d.get("for_run")))
            if d["approve"] else Decline(d["note"])
            for cid, d in record["decisions"].items()}
