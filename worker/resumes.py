"""The worker's :class:`sdk.ResumeStore`: a saved confirmation is resumed once, in Redis.

Every confirmation the worker resumes goes through :meth:`sdk.Agent.aresume` with this
store, the same protocol an SDK user gives ``Agent(resume_store=...)``
(:class:`sdk.InMemoryResumeStore` in one process). One Redis hash per saved state,
``{ns}:resume:{PendingConfirmation.resume_key}``, with fields ``owner`` (who claimed
it) and ``result`` (the finished :class:`sdk.RunResult` as JSON); it lives
``ttl`` seconds (the decided confirmation's lifetime, 7 days).

- ``claim``: the first caller gets it (``HSETNX``); a later caller is refused and
  gets the first one's result once it finished.
- **Takeover** (``lease=``): the worker resumes only while it holds the run's lease
  (:mod:`worker.lease`), so an unfinished claim by *another* lease holder belongs to
  a delivery that died or stalled past the lease: the holder of the lease takes it
  over and resumes again (its tool calls are claimed one by one, so a tool that ran
  is not run again). Without a lease a store never takes a claim over (the SDK's rule).
- ``aclaim``/``afinish``/``aresult`` run the same on the worker's I/O threads
  (:class:`sdk.AsyncResumeStore`): never on the event loop.
"""

from __future__ import annotations

import uuid
from concurrent.futures import Executor
from typing import Any

import redis

from worker.lease import Lease
from worker.redis_store import DECIDED_TTL
from worker.turn import off_loop

__all__ = ["RedisResumeStore"]

# KEYS[1] = the state's hash; ARGV[1] = owner, ARGV[2] = ttl, ARGV[3] = '1': take over
# an unfinished claim of another owner
_CLAIM = """
if redis.call('HSETNX', KEYS[1], 'owner', ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then
  return 0
end
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return 1
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1])
  return 1
end
return 0
"""


class RedisResumeStore:
    """:class:`sdk.ResumeStore` (and :class:`sdk.AsyncResumeStore`) in Redis; see the
    module docstring. ``lease``: the run's lease this delivery holds (takeover)."""

    def __init__(self, client: redis.Redis, namespace: str, *, ttl: int = DECIDED_TTL,
                 lease: Lease | None = None, io: Executor | None = None) -> None:
        self.client, self.namespace, self.ttl = client, namespace, ttl
        self.lease, self.io = lease, io
        self._claim = client.register_script(_CLAIM)

    def key(self, key: str) -> str:
        return f"{self.namespace}:resume:{key}"

    def claim(self, key: str) -> bool:
        if self.lease is not None:
            self.lease.check()
        # without a lease every claim is a new caller: only the first one gets it
        owner = self.lease.token if self.lease is not None else uuid.uuid4().hex
        taken: Any = self._claim(keys=[self.key(key)],
                                 args=[owner, self.ttl, "0" if self.lease is None else "1"])
        return bool(taken)

    def finish(self, key: str, result: str) -> None:
        with self.client.pipeline() as pipe:  # MULTI/EXEC
            pipe.hset(self.key(key), "result", result)
            pipe.expire(self.key(key), self.ttl)
            pipe.execute()

    def result(self, key: str) -> str | None:
        found: Any = self.client.hget(self.key(key), "result")
        return found.decode() if isinstance(found, bytes) else found

    async def aclaim(self, key: str) -> bool:
        return await off_loop(self.io, self.claim, key)

    async def afinish(self, key: str, result: str) -> None:
        await off_loop(self.io, self.finish, key, result)

    async def aresult(self, key: str) -> str | None:
        return await off_loop(self.io, self.result, key)
