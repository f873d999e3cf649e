"""The stack dump of :mod:`worker.stacks`: every thread's stack, each event-loop task's
await chain down to what it awaits, and a loop that does not answer reported as blocked.
(Sending SIGUSR1 to a real worker process: tests/integration/test_worker_signals.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from worker import stacks


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


async def _innermost(gate: asyncio.Event) -> None:
    await gate.wait()


async def _outer_run(gate: asyncio.Event) -> None:
    await _innermost(gate)


def test_a_waiting_task_shows_its_whole_await_chain_and_the_threads_their_stacks(
        loop: asyncio.AbstractEventLoop) -> None:
    gate = asyncio.Event()

    async def start() -> None:
        asyncio.get_running_loop().create_task(_outer_run(gate), name="the-run")

    asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    text = stacks.dump(loop)
    assert text.startswith("--- stack dump (SIGUSR1)") and text.endswith(
        "--- end of stack dump\n")
    assert "thread test-loop:" in text and f"thread {threading.current_thread().name}:" in text
    run = text[text.index("task the-run:"):]
    assert run.index("in _outer_run") < run.index("in _innermost") < run.index("in wait")
    assert "awaiting <Future pending" in run
    assert "1 asyncio task(s)" in text  # the dump's own task is not listed
    loop.call_soon_threadsafe(gate.set)


def test_a_blocked_loop_is_reported_not_waited_for(
        loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "LOOP_ANSWER_SECONDS", 0.2)
    entered, release = threading.Event(), threading.Event()

    def block() -> None:  # a sync call on the loop: the loop is blocked while it waits
        entered.set()
        release.wait(5)

    loop.call_soon_threadsafe(block)
    assert entered.wait(5)
    started = time.monotonic()
    text = stacks.dump(loop)
    release.set()
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(5)  # it came back
    assert time.monotonic() - started < 3
    assert "the event loop did not answer within 0.2 s" in text
    assert "in block" in text[text.index("thread test-loop:"):]  # where it blocks


def test_the_chain_of_a_plain_coroutine_and_of_a_non_coroutine() -> None:
    gate = asyncio.Event()
    coro = _outer_run(gate)
    assert stacks.await_chain(coro)[0].endswith("in _outer_run")  # not started: one frame
    coro.close()
    assert stacks.await_chain(object())[0].startswith("  awaiting <object object")
