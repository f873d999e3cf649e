"""Queue messages and events: pydantic at the edge (what crosses Redis)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ConfirmMessage", "Event", "EventType", "InboundMessage", "Reply"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
MAX_TEXT_CHARS = 32_000

EventType = Literal[
    "received", "text_delta", "llm_call", "tool_called", "confirmation_required",
    "confirmation_resolved", "expired", "reply", "error",
]


class InboundMessage(BaseModel):
    """One user message for an agent conversation (``handle_message``'s argument)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(pattern=ID_PATTERN)
    conversation_id: str = Field(pattern=ID_PATTERN)
    agent_id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    message_id: str = Field(pattern=ID_PATTERN)
    reply_channel: str | None = Field(default=None, pattern=ID_PATTERN)


class ConfirmMessage(BaseModel):
    """The user's answer to a pending confirmation (``confirm``'s argument)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    conversation_id: str = Field(pattern=ID_PATTERN)
    approved: bool
    note: str | None = Field(default=None, max_length=2_000)
    decided_by: str | None = Field(default=None, max_length=200)


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
    status: Literal["completed", "needs_confirmation", "declined", "expired", "failed",
                    "max_iterations", "nothing_pending"]
    text: str
    pending_tool: str | None = None
