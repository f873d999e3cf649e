"""The retry policy: which gateway errors are retried, how long to wait.

The openai client's own retries are switched off (``max_retries=0``) so that
retries never stack. The proxy retries and falls back itself (``router_settings``:
``num_retries``, ``fallbacks``), so an error *answered by the proxy* means that
work is spent: the SDK does not repeat it. It retries, a bounded number of times
(``attempts``, with tenacity):

- :class:`RateLimitedError`, sleeping ``Retry-After`` when the proxy says;
- :class:`ProviderUnavailableError` *without* a status: a timeout, where the proxy
  gave no answer (exponential backoff with jitter).

So in a provider outage one SDK call makes exactly the proxy's attempts: for an
alias, ``num_retries + 1`` per deployment group in its fallback chain. With
``config/offline.yaml`` (``num_retries: 1``, ``quality -> fast``) one
``complete("quality")`` made 4 upstream requests (12 when the SDK also retried 5xx;
``tests/integration/test_sdk_agent.py``). Configuration errors
(:data:`~sdk.errors.CONFIGURATION_ERRORS`) and budget refusals are never retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from sdk.errors import ProviderUnavailableError, RateLimitedError

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_MAX_RETRY_AFTER",
    "RetryPolicy",
]

DEFAULT_ATTEMPTS = 3  # tries in all, the first included
DEFAULT_BACKOFF_INITIAL = 0.5  # seconds before the second try, doubled each time
DEFAULT_BACKOFF_MAX = 8.0
DEFAULT_MAX_RETRY_AFTER = 30.0  # a longer Retry-After is raised to the caller, not slept


@dataclass(frozen=True)
class RetryPolicy:
    """How transient gateway errors are retried (``attempts=1`` disables retries)."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, RateLimitedError):
            return exc.retry_after is None or exc.retry_after <= self.max_retry_after
        return isinstance(exc, ProviderUnavailableError) and exc.status is None

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            return float(exc.retry_after)
        backoff = min(self.backoff_max, self.backoff_initial * 2.0 ** (state.attempt_number - 1))
        return backoff * random.uniform(0.5, 1.0)

    def _options(self) -> dict[str, Any]:
        return {"stop": stop_after_attempt(self.attempts), "wait": self.wait,
                "retry": retry_if_exception(self.should_retry), "reraise": True}

    def retrying(self) -> Retrying:
        return Retrying(**self._options())

    def async_retrying(self) -> AsyncRetrying:
        return AsyncRetrying(**self._options())
