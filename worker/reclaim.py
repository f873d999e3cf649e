"""Messages a live worker process fetched but never received, given back to their queue.

Dramatiq's Redis broker fetches with a script that moves messages from the queue to the
process's acknowledgement set (``{ns}:__acks__.{broker id}.{queue}``) and returns them.
Two things can leave a message in that set without the process ever getting it:

- Redis crashes after running the fetch and before its reply arrives. Our clients retry
  through a restart (``worker.broker.redis_client``), and the retried fetch returns the
  next messages, not these.
- A consumer restarts after a connection error (an outage longer than the retries) and
  forgets the messages it had prefetched.

Stock Dramatiq gives such messages back only when the process's heartbeat goes stale, that
is, when the process has died. :class:`Reclaimer` (run by ``worker.broker.Maintenance``
every second) compares each acknowledgement set with what the process's consumers hold:
prefetched, or handed to a worker thread and not yet acknowledged. A message that no
consumer holds in two rounds running is requeued. Two rounds, because a fetch's messages
reach the consumer a moment after Redis moved them.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from typing import Any

from dramatiq import Message

__all__ = ["Reclaimer"]

log = logging.getLogger(__name__)

READ_TRIES = 3  # a consumer's state read while it changes is read again


def _held(consumers: list[Any]) -> tuple[set[str], set[str]] | None:
    """The Redis ids of the messages the consumers prefetched, and the message ids of
    those handed out and not yet acknowledged; ``None`` if they kept changing."""
    for _ in range(READ_TRIES):
        try:
            cached = [data for consumer in consumers for data in list(consumer.message_cache)]
            queued = {mid for consumer in consumers for mid in set(consumer.queued_message_ids)}
        except RuntimeError:  # changed size while read
            continue
        redis_ids = {str(Message.decode(data).options.get("redis_message_id"))
                     for data in cached if data is not None}
        return redis_ids, queued
    return None


class Reclaimer:
    """Tracks a broker's consumers; :meth:`run` requeues what they lost."""

    def __init__(self) -> None:
        self.consumers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._unheld: dict[str, set[str]] = {}  # queue -> Redis ids no one held last round
        self._message_ids: dict[str, str] = {}  # Redis id -> message id (members seen)

    def track(self, consumer: Any) -> Any:
        self.consumers.add(consumer)
        return consumer

    def run(self, broker: Any) -> int:
        """One round over ``broker``'s queues; how many messages were requeued."""
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for consumer in list(self.consumers):
            by_queue[consumer.queue_name].append(consumer)
        requeued, seen = 0, set()
        for queue, consumers in by_queue.items():
            acks = f"{broker.namespace}:__acks__.{broker.broker_id}.{queue}"
            members = {m.decode() for m in broker.client.smembers(acks)}  # before the state
            seen |= members
            held = _held(consumers)
            if held is None:
                continue
            cached, queued = held
            self._learn(broker, queue, members - cached)
            unheld = {rid for rid in members - cached
                      if rid in self._message_ids and self._message_ids[rid] not in queued}
            lost = unheld & self._unheld.get(queue, set())
            if lost:
                broker.do_requeue(queue, *sorted(lost))
                requeued += len(lost)
                log.warning("requeued %d message(s) of queue %s that this worker process had "
                            "fetched but never received (a Redis outage during a fetch)",
                            len(lost), queue)
            self._unheld[queue] = unheld - lost
        self._message_ids = {rid: mid for rid, mid in self._message_ids.items() if rid in seen}
        return requeued

    def _learn(self, broker: Any, queue: str, redis_ids: set[str]) -> None:
        """Map the Redis ids not seen before to their messages' ids."""
        new = sorted(rid for rid in redis_ids if rid not in self._message_ids)
        if not new:
            return
        stored = broker.client.hmget(f"{broker.namespace}:{queue}.msgs", new)
        for rid, data in zip(new, stored, strict=True):
            if data is not None:  # None: acknowledged meanwhile
                self._message_ids[rid] = Message.decode(data).message_id
