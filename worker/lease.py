"""Run leases: at most one delivery of a message works on its run at a time.

A run is a message and everything that follows it, resumed confirmations included
(key: the message id). Before a delivery of ``handle_message`` or ``confirm`` touches
a run it takes the run's lease, a Redis key ``{ns}:lease:{message id}`` holding a
fresh token, set with ``NX`` and a TTL of ``ttl_ms``. While the delivery works, a task
on the event loop renews it every third of the TTL (compare-and-expire in Lua); the
delivery gives it back when it is done (compare-and-delete).

A second delivery of the same message or decision (a service retrying a send, Dramatiq
redelivering a slow worker's message) finds the lease taken and *waits* for it, then
sees what the first delivery did (a stored outcome, a finished decision) and answers
from that: it never runs the run a second time. A worker that dies holding a lease
stops renewing it: the lease expires ``ttl_ms`` later and the next delivery takes the
run over (Dramatiq requeues the dead worker's message after its heartbeat, which is
the lease TTL by default: ``POOL_WORKER_HEARTBEAT_MS``).

A holder that could not renew in time (its process stalled longer than the TTL) has
*lost* the lease: :meth:`Lease.check` raises :class:`LeaseLost` before it claims
anything more (tool calls are claimed only under a held lease, see :mod:`worker.turn`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from worker.errors import WorkerError

__all__ = ["LEASE_POLL_SECONDS", "Lease", "LeaseLost", "RunLeases"]

log = logging.getLogger(__name__)

LEASE_POLL_SECONDS = 0.2  # how often a waiting delivery looks at a taken lease

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(WorkerError):
    """The run's lease expired under its holder (stalled longer than the TTL): another
    delivery may own the run now, so this one claims nothing more."""


@dataclass
class Lease:
    """A held run lease; ``token`` names the holder in tool call claims."""

    run: str
    token: str
    lost: bool = False
    waited: bool = False  # another delivery held it when this one arrived

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"the lease on run {self.run} expired under this delivery")


class RunLeases:
    """Leases on runs, in Redis (``redis.asyncio``: nothing here blocks the loop).
    ``connect`` makes a client; one is made per event loop (a client's connections
    belong to the loop that opened them)."""

    def __init__(self, connect: Callable[[], aioredis.Redis], namespace: str, ttl_ms: int,
                 poll: float = LEASE_POLL_SECONDS) -> None:
        self.connect, self.namespace, self.ttl_ms, self.poll = connect, namespace, ttl_ms, poll
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = \
            weakref.WeakKeyDictionary()

    @property
    def client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = self.connect()
        return self._clients[loop]

    def key(self, run: str) -> str:
        return f"{self.namespace}:lease:{run}"

    async def holder(self, run: str) -> str | None:
        value: Any = await self.client.get(self.key(run))
        return value.decode() if isinstance(value, bytes) else value

    @contextlib.asynccontextmanager
    async def hold(self, run: str) -> AsyncIterator[Lease]:
        """Wait for the run's lease, hold it (renewed) for the block, give it back."""
        lease = Lease(run, uuid.uuid4().hex)
        key = self.key(run)
        while not await self.client.set(key, lease.token, nx=True, px=self.ttl_ms):
            if not lease.waited:
                log.info("message_id=%s: another delivery is working on this run; waiting "
                         "for it", run)
            lease.waited = True
            await asyncio.sleep(self.poll)
        done = asyncio.Event()
        renewer = asyncio.create_task(self._keep(key, lease, done))
        try:
            yield lease
        finally:
            # The renewer is cancelled, and told by ``done``: a cancellation can be lost
            # inside the Redis client (seen after a Redis restart: the task stayed
            # "cancelling" and renewed the lease on and on, so the run's next delivery
            # waited for ever). Told, it stops at its next step whatever happened to
            # the cancellation; the lease is given back only once it has stopped.
            done.set()
            renewer.cancel()
            await asyncio.wait({renewer})
            if not renewer.cancelled() and (failed := renewer.exception()) is not None:
                log.error("message_id=%s: the run's lease renewer failed: %r", run, failed)
            await self.client.eval(_RELEASE, 1, key, lease.token)

    async def _keep(self, key: str, lease: Lease, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.ttl_ms / 3000)
            if done.is_set():
                return
            try:
                renewed = await self.client.eval(
                    _RENEW, 1, key, lease.token, str(self.ttl_ms))
            except aioredis.RedisError as exc:  # Redis away: the next round tries again
                log.warning("message_id=%s: could not renew the run's lease: %s", lease.run, exc)
                continue
            if not renewed:
                lease.lost = True
                log.error("message_id=%s: the run's lease expired under this delivery "
                          "(stalled longer than %d ms); it claims no more tool calls",
                          lease.run, self.ttl_ms)
                return
