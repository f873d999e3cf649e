"""What a worker process is waiting on, on demand: ``SIGUSR1`` to a worker process (a
child of ``pool worker``; ``pkill -USR1 -P <pool worker pid>``) writes to its log the
stack of every thread and the await chain of every task on its event loop: a run that
seems stuck shows the line it awaits (an LLM call, a lease, an I/O hop). An event loop
that does not answer within ``LOOP_ANSWER_SECONDS`` is reported as blocked. Nothing
else changes; the process goes on working.

The dump is built on a thread of its own and written to the log in one piece (a worker
process's stderr is Dramatiq's logging pipe, which takes whole messages: raw writes to
its file descriptor, as :mod:`faulthandler` makes, would break it)."""

from __future__ import annotations

import asyncio
import io
import signal
import sys
import threading
import traceback
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

__all__ = ["DUMP_SIGNAL", "LOOP_ANSWER_SECONDS", "StackDumps", "dump"]

DUMP_SIGNAL = signal.SIGUSR1
LOOP_ANSWER_SECONDS = 5.0
TASK_FRAMES = 40  # innermost frames printed per task


def _threads() -> str:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    out = io.StringIO()
    for ident, frame in sys._current_frames().items():
        print(f"thread {names.get(ident, ident)}:", file=out)
        traceback.print_stack(frame, file=out)
    return out.getvalue()


def await_chain(awaitable: Any, waits_on: Any = None) -> list[str]:
    """Where a suspended coroutine waits: each frame of its await chain, outermost
    first, down to what it awaits last: ``waits_on`` (a task's future) when given, else
    the awaitable at the end of the chain (named, not followed)."""
    lines: list[str] = []
    while awaitable is not None and len(lines) < TASK_FRAMES:
        frame = (getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
                 or getattr(awaitable, "ag_frame", None))
        if frame is None:
            lines.append(f"  awaiting {waits_on if waits_on is not None else awaitable!r}")
            break
        lines.append(f'  File "{frame.f_code.co_filename}", line {frame.f_lineno}, '
                     f"in {frame.f_code.co_name}")
        awaitable = (getattr(awaitable, "cr_await", None)
                     or getattr(awaitable, "gi_yieldfrom", None)
                     or getattr(awaitable, "ag_await", None))
    return lines


async def _tasks() -> str:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    out = [f"{len(tasks)} asyncio task(s) on the worker's event loop"]
    for task in tasks:
        # the future the task is suspended on (asyncio's own attribute; None if unknown)
        waits_on = getattr(task, "_fut_waiter", None)
        out += [f"task {task.get_name()}:", *await_chain(task.get_coro(), waits_on)]
    return "\n".join(out) + "\n"


def dump(loop: asyncio.AbstractEventLoop | None) -> str:
    """The process's threads, and ``loop``'s tasks (asked on the loop)."""
    text = f"--- stack dump ({DUMP_SIGNAL.name})\n{_threads()}"
    if loop is not None:
        asked = asyncio.run_coroutine_threadsafe(_tasks(), loop)
        try:
            text += asked.result(LOOP_ANSWER_SECONDS)
        except TimeoutError:
            asked.cancel()  # the loop drops it when it comes back
            text += (f"the event loop did not answer within {LOOP_ANSWER_SECONDS} s: "
                     "something blocks it (see the threads above)\n")
    return text + "--- end of stack dump\n"


class StackDumps(Middleware):
    """In a worker process: ``DUMP_SIGNAL`` logs its threads and event loop tasks."""

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # not a `dramatiq` worker process (a test's Worker): no signals here
        loop_thread = get_event_loop_thread()
        loop = loop_thread.loop if loop_thread is not None else None

        def write() -> None:
            sys.stderr.write(dump(loop))
            sys.stderr.flush()

        def on_signal(signum: int, frame: Any) -> None:
            threading.Thread(target=write, name="pool-stack-dump", daemon=True).start()

        signal.signal(DUMP_SIGNAL, on_signal)
