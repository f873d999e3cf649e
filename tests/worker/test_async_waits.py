"""The worker threads waiting for their async actor's coroutine look for an interrupt
once a second (:class:`worker.broker.AsyncIOWaits`), not Dramatiq's ten times: and a
time limit still stops a coroutine, at most that second later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import TimeLimitExceeded

from worker.broker import INTERRUPT_CHECK_SECONDS, middleware
from worker.settings import WorkerSettings

TIME_LIMIT_MS = 300


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    previous = dramatiq.get_broker()
    stub = StubBroker(middleware=middleware(WorkerSettings(time_limit_ms=TIME_LIMIT_MS,
                                                           max_retries=0)))
    dramatiq.set_broker(stub)
    stub.emit_after("process_boot")  # what `dramatiq` does: starts TimeLimit's thread
    yield stub
    stub.close()
    dramatiq.set_broker(previous)


def test_waiting_threads_check_once_a_second_and_time_limits_still_apply(
        broker: StubBroker) -> None:
    finished: list[str] = []

    @dramatiq.actor(broker=broker, max_retries=0)
    async def sleepy(seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished.append("done")

    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        assert loop_thread.interrupt_check_ival == INTERRUPT_CHECK_SECONDS == 1.0
        sleepy.send(0.05)
        broker.join(sleepy.queue_name, fail_fast=True)
        assert finished == ["done"]
        sleepy.send(30)
        started = time.monotonic()
        with pytest.raises(TimeLimitExceeded):
            broker.join(sleepy.queue_name, fail_fast=True)
        # stopped by the time limit within the check interval (Dramatiq's TimeLimit
        # itself looks every second), not after the coroutine's 30 s
        assert time.monotonic() - started < TIME_LIMIT_MS / 1000 + 2 * INTERRUPT_CHECK_SECONDS + 1
        assert finished == ["done"]
    finally:
        worker.stop()
