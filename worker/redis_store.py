"""What the worker keeps in Redis: conversation event streams and pending confirmations.

Keys (all under the configured namespace):

- ``{ns}:events:{conversation}``: a Redis Stream, one entry per event (``XADD``);
  a websocket gateway reads it with ``XREAD`` from its last id, so nothing is lost.
- ``{ns}:sent:{message}:{slot}:``: marks a message's event slot as appended, so a
  redelivered message re-emits nothing (set and ``XADD`` happen in one Lua script).
- ``{ns}:pending:{conversation}``: the pending confirmation (JSON), with a TTL.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from worker.models import Event

__all__ = ["EVENT_DEDUPE_TTL", "RedisStore"]

EVENT_DEDUPE_TTL = 7 * 24 * 3600  # seconds a sent-marker lives (longer than any redelivery)
STREAM_MAXLEN = 10_000  # approximate cap per conversation stream

# KEYS[1] = sent marker, KEYS[2] = stream; ARGV[1] = ttl, ARGV[2] = maxlen, ARGV[3..] = fields
_XADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end
return false
"""


class RedisStore:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
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
                                args=[EVENT_DEDUPE_TTL, STREAM_MAXLEN, *fields])
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

    def put_pending(self, conversation_id: str, payload: str, ttl: int) -> None:
        self.client.set(self.pending_key(conversation_id), payload, ex=ttl)

    def get_pending(self, conversation_id: str) -> str | None:
        value: Any = self.client.get(self.pending_key(conversation_id))
        return value.decode() if value is not None else None

    def delete_pending(self, conversation_id: str) -> None:
        self.client.delete(self.pending_key(conversation_id))
