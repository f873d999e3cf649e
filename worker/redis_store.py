"""What the worker keeps in Redis: conversation event streams and pending confirmations.

Keys (all under the configured namespace):

- ``{ns}:events:{conversation}``: a Redis Stream, one entry per event (``XADD``);
  a websocket gateway reads it with ``XREAD`` from its last id, so nothing is lost.
  It expires ``retention`` seconds after its last event (``POOL_EVENT_RETENTION``,
  default 7 days; a reply channel too): a conversation quiet for that long leaves
  nothing in Redis (its memory and audit stay in PostgreSQL).
- ``{ns}:sent:{message}:{slot}:``: marks a message's event slot as appended, so a
  redelivered message re-emits nothing (set and ``XADD`` happen in one Lua script).
- ``{ns}:pending:{conversation}``: the pending confirmation (JSON) and the decisions
  taken so far. Undecided, it lives ``confirm_ttl`` plus a grace period (the
  scheduled ``expire`` message ends it at ``confirm_ttl``); once every call is
  decided it is kept (``DECIDED_TTL``) until the resumed run has finished, so a
  redelivered run finishes what was approved whatever the confirmation TTL.
  Every change is a WATCH/MULTI transaction (:meth:`RedisStore.change_pending`).
- ``{ns}:decision:{decision id}``: the message a decision was taken on (``DECIDED_TTL``),
  so a decision redelivered after its run ended (the record gone) is answered from
  that message's outcome in its own reply slot, never as a new answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker.models import Event

__all__ = ["DECIDED_TTL", "DEFAULT_EVENT_RETENTION", "EVENT_DEDUPE_TTL", "PendingChange",
           "RedisStore"]

EVENT_DEDUPE_TTL = 7 * 24 * 3600  # seconds a sent-marker lives (longer than any redelivery)
DEFAULT_EVENT_RETENTION = 7 * 24 * 3600  # seconds a stream lives after its last event
DECIDED_TTL = EVENT_DEDUPE_TTL  # a decided confirmation waits this long for its run
STREAM_MAXLEN = 10_000  # approximate cap per conversation stream

# KEYS[1] = sent marker, KEYS[2] = stream; ARGV[1] = marker ttl, ARGV[2] = maxlen,
# ARGV[3] = stream retention, ARGV[4..] = fields
_XADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return id
end
return false
"""


@dataclass(frozen=True)
class PendingChange:
    """What :meth:`RedisStore.change_pending` writes: ``record`` (``None``: delete the
    key) with ``ttl`` seconds (``None``: keep the key's TTL); ``write=False`` leaves
    the key alone."""

    record: dict[str, Any] | None = None
    ttl: int | None = None
    write: bool = True


UNCHANGED = PendingChange(write=False)


class RedisStore:
    def __init__(self, client: redis.Redis, namespace: str,
                 retention: int = DEFAULT_EVENT_RETENTION) -> None:
        self.client = client
        self.namespace = namespace
        self.retention = retention
        self._xadd_once = client.register_script(_XADD_ONCE)

    # ------------------------------------------------------------ events

    def stream_key(self, conversation_id: str) -> str:
        return f"{self.namespace}:events:{conversation_id}"

    def append_event(self, event: Event, slot: str, stream: str | None = None) -> bool:
        """Append ``event`` to the conversation's stream (or ``stream``) unless the
        message's ``slot`` was filled already; False when it was."""
        marker = f"{self.namespace}:sent:{event.message_id}:{slot}:{stream or ''}"
        fields = ["type", event.type, "message_id", event.message_id,
                  "data", json.dumps(event.data, default=str)]
        target = stream or self.stream_key(event.conversation_id)
        added = self._xadd_once(keys=[marker, target],
                                args=[EVENT_DEDUPE_TTL, STREAM_MAXLEN, self.retention,
                                      *fields])
        return added is not None

    def read_events(self, conversation_id: str, after: str = "0-0", block_ms: int | None = None,
                    stream: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Events after stream id ``after``: ``[(id, {"type", "message_id", "data"})]``."""
        key = stream or self.stream_key(conversation_id)
        answer: Any = self.client.xread({key: after}, block=block_ms)
        events = []
        for _, entries in answer or []:
            for entry_id, fields in entries:
                decoded = {k.decode(): v.decode() for k, v in fields.items()}
                decoded["data"] = json.loads(decoded.get("data") or "{}")
                events.append((entry_id.decode(), decoded))
        return events

    # ------------------------------------------------------------ pending confirmations

    def pending_key(self, conversation_id: str) -> str:
        return f"{self.namespace}:pending:{conversation_id}"

    def change_pending(self, conversation_id: str,
                       change: Callable[[dict[str, Any] | None], tuple[Any, PendingChange]]
                       ) -> Any:
        """Read the pending record, let ``change`` decide, write atomically (retried
        when another worker changed the key meanwhile); returns ``change``'s answer."""
        key = self.pending_key(conversation_id)
        answer: list[Any] = []

        def transaction(pipe: Any) -> None:
            raw = pipe.get(key)
            answer[:] = change(json.loads(raw) if raw is not None else None)
            update: PendingChange = answer[1]
            pipe.multi()
            if not update.write:
                return
            if update.record is None:
                pipe.delete(key)
            elif update.ttl is None:
                pipe.set(key, json.dumps(update.record), keepttl=True)
            else:
                pipe.set(key, json.dumps(update.record), ex=update.ttl)

        self.client.transaction(transaction, key)
        return answer[0]

    # ------------------------------------------------------------ decisions taken

    def decision_key(self, decision_id: str) -> str:
        return f"{self.namespace}:decision:{decision_id}"

    def note_decision(self, decision_id: str, message_id: str) -> None:
        """Remember that ``decision_id`` was taken on ``message_id``'s confirmation
        (so a redelivery after its record is gone is answered, not taken as new)."""
        self.client.set(self.decision_key(decision_id), message_id, ex=DECIDED_TTL)

    def decided_message(self, decision_id: str) -> str | None:
        """The message whose confirmation ``decision_id`` was taken on, if any."""
        value: Any = self.client.get(self.decision_key(decision_id))
        return value.decode() if value is not None else None

    def get_pending(self, conversation_id: str) -> str | None:
        value: Any = self.client.get(self.pending_key(conversation_id))
        return value.decode() if value is not None else None
