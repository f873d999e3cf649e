"""Run leases (:mod:`worker.lease`) on a real Redis: a lease is given back when its block
ends even if the renewer's cancellation is lost inside the Redis client (seen after a
Redis restart: the renewer stayed "cancelling" and renewed the lease for ever, and the
run's next delivery waited for it; tests/faults/test_redis_restart.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from worker.lease import RunLeases

TTL_MS = 1500  # a renewal every 500 ms


class LosesItsCancellation(aioredis.Redis):
    """A client whose renewals take a while and, cancelled meanwhile, answer anyway
    (the cancellation is lost, as it was inside redis-py)."""

    lost = 0

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        if "PEXPIRE" not in script:
            return await super().eval(script, numkeys, *keys_and_args)  # type: ignore[misc]
        try:
            await asyncio.sleep(0.4)
        except asyncio.CancelledError:
            LosesItsCancellation.lost += 1
        return await super().eval(script, numkeys, *keys_and_args)  # type: ignore[misc]


def test_the_lease_is_given_back_even_when_the_renewers_cancellation_is_lost(
        redis_url: str, redis_prefix: str) -> None:
    leases = RunLeases(lambda: LosesItsCancellation.from_url(redis_url), redis_prefix, TTL_MS)
    key = leases.key("run-1")

    async def run() -> None:
        async with asyncio.timeout(10):  # (before the fix: waited here for ever)
            async with leases.hold("run-1") as lease:
                await asyncio.sleep(0.65)  # the first renewal (from 0.5 s) is under way
                assert await leases.holder("run-1") == lease.token

    started = time.monotonic()
    asyncio.run(run())
    took = time.monotonic() - started
    assert took < 3, f"the block took {took:.1f} s to end: it waited for the renewer"
    assert LosesItsCancellation.lost >= 1, "the renewer was not cancelled inside a renewal"
    assert redis.Redis.from_url(redis_url).get(key) is None, "the lease was not given back"
