"""One resume per saved confirmation: :class:`ResumeStore`.

A :class:`~sdk.agent.PendingConfirmation` is plain JSON: nothing stops two processes
(or one retrying) from resuming the same saved state, and each would run its approved
tools. Give the agent a ``resume_store`` and the first :meth:`~sdk.Agent.resume` of a
state claims it (:attr:`PendingConfirmation.resume_key`); a later resume of the same
state gets the first one's :class:`~sdk.RunResult` back (once it finished) or a
:class:`~sdk.errors.ConfirmationError` (while it runs), and runs nothing.

A resume that raised (the gateway failed after the approved tools ran) keeps its claim:
the state cannot be resumed again, since its tools may have run; start a new run.

:class:`InMemoryResumeStore` holds the claims in a dict (one process; the default for
tests). Across processes, implement the protocol on a shared store: the Dramatiq
worker's is :class:`worker.resumes.RedisResumeStore` (Redis, the same keys for every
worker process), which :meth:`~sdk.Agent.aresume` uses for every confirmation the worker
resumes. A store may also have coroutine twins ``aclaim``/``afinish``/``aresult``
(:class:`AsyncResumeStore`): :meth:`~sdk.Agent.aresume` awaits them, so a store on a
network never blocks the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["AsyncResumeStore", "InMemoryResumeStore", "ResumeStore"]


@runtime_checkable
class ResumeStore(Protocol):
    def claim(self, key: str) -> bool:
        """Atomically: ``True`` for the first caller with ``key``, ``False`` after."""
        ...

    def finish(self, key: str, result: str) -> None:
        """Keep the claimed resume's result (JSON)."""
        ...

    def result(self, key: str) -> str | None:
        """The result kept for ``key``, once its resume finished."""
        ...


@runtime_checkable
class AsyncResumeStore(Protocol):
    """:class:`ResumeStore`'s coroutine twins (awaited by :meth:`~sdk.Agent.aresume`)."""

    async def aclaim(self, key: str) -> bool: ...

    async def afinish(self, key: str, result: str) -> None: ...

    async def aresult(self, key: str) -> str | None: ...


@dataclass
class InMemoryResumeStore:
    """A :class:`ResumeStore` in a dict (one process; tests)."""

    claimed: set[str] = field(default_factory=set)
    results: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, key: str) -> bool:
        with self.lock:
            if key in self.claimed:
                return False
            self.claimed.add(key)
            return True

    def finish(self, key: str, result: str) -> None:
        with self.lock:
            self.results[key] = result

    def result(self, key: str) -> str | None:
        with self.lock:
            return self.results.get(key)

    async def aclaim(self, key: str) -> bool:
        return self.claim(key)

    async def afinish(self, key: str, result: str) -> None:
        self.finish(key, result)

    async def aresult(self, key: str) -> str | None:
        return self.result(key)
