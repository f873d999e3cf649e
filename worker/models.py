"""Queue messages and events: pydantic at the edge (what crosses Redis)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CallDecision", "ConfirmMessage", "Event", "EventType", "ExpireMessage",
           "InboundMessage", "PendingCall", "Reply", "ReplyStatus"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
MAX_TEXT_CHARS = 32_000

EventType = Literal[
    "received", "text_delta", "llm_call", "tool_called", "confirmation_required",
    "confirmation_resolved", "expired", "reply", "error", "budget_exceeded", "rate_limited",
    "dead_lettered",
]
ReplyStatus = Literal["completed", "needs_confirmation", "declined", "expired", "failed",
                      "max_iterations", "nothing_pending", "refused", "budget_exceeded"]


class InboundMessage(BaseModel):
    """One user message for an agent conversation (``handle_message``'s argument)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(pattern=ID_PATTERN)
    conversation_id: str = Field(pattern=ID_PATTERN)
    agent_id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    message_id: str = Field(pattern=ID_PATTERN)
    reply_channel: str | None = Field(default=None, pattern=ID_PATTERN)


class CallDecision(BaseModel):
    """A human's answer for one pending tool call: run it (with ``arguments`` instead
    of the model's, when given) or not (``note`` goes to the model)."""

    model_config = ConfigDict(extra="forbid")

    approve: bool
    arguments: dict[str, Any] | None = None
    note: str | None = Field(default=None, max_length=2_000)
    for_run: bool = False  # the same tool's later calls in this run need no confirmation

    @model_validator(mode="after")
    def _arguments_only_when_approved(self) -> CallDecision:
        if self.arguments is not None and not self.approve:
            raise ValueError("arguments only go with approve: true")
        if self.for_run and not self.approve:
            raise ValueError("for_run only goes with approve: true")
        return self


class ConfirmMessage(BaseModel):
    """The user's answer to a pending confirmation (``confirm``'s argument): either
    ``approved`` for every pending call, or ``decisions`` by tool call id (a subset
    is fine: the run goes on once every pending call is decided).

    ``for_run`` (with ``approved: true``, or per call in ``decisions``): approve the
    tools for the rest of the run, so their later calls for this user message run
    without asking again (:class:`sdk.Approve` ``for_run=True``).

    ``decision_id`` identifies this answer (default: the queue message's id), so a
    redelivered answer is told apart from a second answer for the same calls."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    conversation_id: str = Field(pattern=ID_PATTERN)
    approved: bool | None = None
    decisions: dict[str, CallDecision] | None = Field(default=None, min_length=1,
                                                      max_length=64)
    note: str | None = Field(default=None, max_length=2_000)
    decided_by: str | None = Field(default=None, max_length=200)
    decision_id: str | None = Field(default=None, pattern=ID_PATTERN)
    for_run: bool = False

    @model_validator(mode="after")
    def _one_kind_of_answer(self) -> ConfirmMessage:
        if (self.approved is None) == (self.decisions is None):
            raise ValueError("give either approved (for every call) or decisions (per call)")
        if self.for_run and self.approved is not True:
            raise ValueError("for_run goes with approved: true (or in each decision)")
        return self


class ExpireMessage(BaseModel):
    """The scheduled end of an undecided confirmation (``expire``'s argument)."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str = Field(pattern=ID_PATTERN)
    message_id: str = Field(pattern=ID_PATTERN)


class PendingCall(BaseModel):
    """A tool call waiting for a human decision."""

    id: str
    name: str
    arguments: dict[str, Any]


class Event(BaseModel):
    """One entry of a conversation's event stream."""

    type: EventType
    conversation_id: str
    message_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    """What an actor returns (stored as its result) and what the final ``reply`` event says."""

    conversation_id: str
    message_id: str
    status: ReplyStatus
    text: str
    pending_tool: str | None = None
    pending_calls: list[PendingCall] | None = None  # the calls still undecided
    expires_at: float | None = None  # when undecided calls expire (epoch seconds)
