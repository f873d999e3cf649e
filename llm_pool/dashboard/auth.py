"""The dashboard's sessions and its login throttle, both held in the dashboard process.

- A login with the master key creates a session: a random token (the cookie's value) kept
  in :class:`Sessions` with its expiry. Logging out deletes it, so a copied cookie stops
  working at once; a restart of the dashboard ends every session.
- :class:`Throttle` counts failed logins per client address and in all: past
  :data:`MAX_FAILS_PER_CLIENT` failures in :data:`WINDOW` seconds from one address (or
  :data:`MAX_FAILS_TOTAL` from everyone, against address rotation), every login attempt
  of that address (or everyone's) is refused with 429 and ``Retry-After`` until the
  oldest failure leaves the window, whether the key is right or not.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["MAX_FAILS_PER_CLIENT", "MAX_FAILS_TOTAL", "SESSION_SECONDS", "WINDOW", "Sessions",
           "Throttle"]

SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000
WINDOW = 300.0  # seconds
MAX_FAILS_PER_CLIENT = 5
MAX_FAILS_TOTAL = 50
MAX_CLIENTS = 10_000

Clock = Callable[[], float]


class Sessions:
    def __init__(self, clock: Clock = time.time, lifetime: float = SESSION_SECONDS) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            while len(self._expiry) >= MAX_SESSIONS:
                self._expiry.pop(min(self._expiry, key=self._expiry.__getitem__))
            self._expiry[token] = now + self._lifetime
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and expiry > self._clock()

    def end(self, token: str | None) -> None:
        with self._lock:
            self._expiry.pop(token or "", None)


class Throttle:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._per_client: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, fails: deque[float], now: float) -> None:
        while fails and fails[0] <= now - WINDOW:
            fails.popleft()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = self._clock()
        with self._lock:
            mine = self._per_client.get(client, deque())
            self._trim(mine, now)
            self._trim(self._all, now)
            waits = [fails[0] + WINDOW - now for fails, cap in (
                (mine, MAX_FAILS_PER_CLIENT), (self._all, MAX_FAILS_TOTAL)) if len(fails) >= cap]
        return max(waits, default=0.0)

    def failed(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            if client not in self._per_client and len(self._per_client) >= MAX_CLIENTS:
                for name in [c for c, f in self._per_client.items() if not f or
                             f[-1] <= now - WINDOW]:
                    del self._per_client[name]
            self._per_client.setdefault(client, deque()).append(now)
            self._all.append(now)
