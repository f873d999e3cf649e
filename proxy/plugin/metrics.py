"""The gateway's own Prometheus metrics, served on the proxy's ``/metrics`` beside LiteLLM's.

``litellm_settings.callbacks: [..., "proxy.plugin.metrics.prometheus"]`` turns on LiteLLM's
integration (:data:`prometheus`, LiteLLM's ``PrometheusLogger`` less the gauges of its own
rate limiters and budgets, :func:`proxy.plugin.internals.prometheus_logger`; the start-up
then mounts LiteLLM's ``/metrics`` app, as LiteLLM does for its ``"prometheus"`` string).
It counts requests, failures by exception class, tokens, spend,
latency, time to first token, fallbacks and cooldowns, labelled by tenant (``team``,
``team_alias``), key label (``api_key_alias``), alias (``model_group``) and deployment
(``model_id``). No label takes a value a tenant chooses freely: the YAML's
``prometheus_exclude_labels`` drops ``end_user``, ``user``, ``user_email``, ``client_ip``,
``user_agent``, ``tag``, ``service_tier`` and ``model`` (docs/limits-and-keys.md).
``litellm_settings.require_auth_for_metrics_endpoint: false`` leaves the
gate to :mod:`proxy.edge.guard`: the master key, or exactly ``POOL_METRICS_KEY`` on
``GET /metrics`` only; tenants and anonymous callers are refused.

The gateway adds (one set per proxy process; with several workers, ``pool proxy``
sets ``PROMETHEUS_MULTIPROC_DIR`` and the scrape adds the processes up):

- ``pool_spend_buffer_rows`` (gauge, summed): spend rows waiting in the process's
  buffer (with ``POOL_REDIS_URL`` rows wait in the Redis journal instead, and this stays
  0 unless Redis is away);
- ``pool_spend_rows_written_total``, ``pool_spend_rows_dropped_total`` (counters): rows
  written to PostgreSQL (by the buffer or the journal drainer), rows dropped because
  the buffer was full;
- ``pool_spend_seconds_since_last_write`` (gauge, max over processes): how long rows
  have waited since the last successful spend write; 0 while nothing waits;
- ``pool_budget_seconds_since_last_refresh`` (gauge, max): since month-to-date spend
  was last read from PostgreSQL (0 before the process's first budget check);
- ``pool_key_cache_hits_total`` / ``pool_key_cache_misses_total`` (counters): tenant
  key checks answered without a key-store query of their own / that queried it;
- ``pool_key_store_errors_total`` (counter): key-store queries that failed;
- ``pool_shared_state_degraded`` (gauge, max over processes): 1 while ``POOL_REDIS_URL``
  is set but Redis does not answer, so this process counts rpm/tpm limits and budget
  reservations on its own (fail-open; with ``POOL_LIMITS_FAIL_CLOSED=1`` it refuses
  tenant requests with 503 instead); 0 while Redis answers, and without
  ``POOL_REDIS_URL``. It turns 1 at the first failed Redis call and back to 0 at the
  first one that succeeds; with several workers the scrape is 1 if any is degraded.

Settings: ``POOL_METRICS_KEY`` (optional, :mod:`proxy.settings`) a key that may read
``/metrics`` and nothing else.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from proxy.plugin import internals

__all__ = ["POLL_SECONDS", "Instrumented", "instrument"]

POLL_SECONDS = 1.0  # how often the gauges are refreshed from the gateway's state

SPEND_BUFFER = Gauge("pool_spend_buffer_rows", "Spend rows waiting to be written",
                     multiprocess_mode="livesum")
SPEND_WRITTEN = Counter("pool_spend_rows_written", "Spend rows written to PostgreSQL")
SPEND_DROPPED = Counter("pool_spend_rows_dropped", "Spend rows dropped (buffer full)")
SPEND_LAG = Gauge("pool_spend_seconds_since_last_write",
                  "Seconds rows have waited since the last successful spend write (0: none wait)",
                  multiprocess_mode="livemax")
BUDGET_LAG = Gauge("pool_budget_seconds_since_last_refresh",
                   "Seconds since month-to-date spend was last read from PostgreSQL",
                   multiprocess_mode="livemax")
KEY_HITS = Counter("pool_key_cache_hits", "Tenant key checks answered from the cache")
KEY_MISSES = Counter("pool_key_cache_misses", "Tenant key checks that queried the key store")
KEY_ERRORS = Counter("pool_key_store_errors", "Key-store queries that failed")
SHARED_DEGRADED = Gauge("pool_shared_state_degraded",
                        "1 while POOL_REDIS_URL is set but Redis is unreachable and limits "
                        "and budgets are counted per process (0 otherwise)",
                        multiprocess_mode="livemax")

_looked_up: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "pool_key_looked_up", default=None)


@dataclass
class Instrumented:
    """What the poller remembers between two looks at the gateway."""

    gateway: Any
    clock: Callable[[], float] = time.monotonic
    written: int = 0
    dropped: int = 0
    last_write: float | None = None
    waiting_since: float | None = None
    budget_started: float | None = None
    budget_refreshed: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        """Refresh the gauges and counters from the gateway's writer and budget tracker."""
        now = self.clock()
        shared = getattr(self.gateway, "shared", None)  # None without POOL_REDIS_URL
        SHARED_DEGRADED.set(1 if shared is not None and shared.degraded else 0)
        writer = self.gateway.writer
        stats, buffered = writer.stats, int(writer.buffered)
        journal = getattr(self.gateway, "journal", None)  # rows through Redis, when set
        written = stats.written + int(getattr(journal, "written", 0) or 0)
        if written > self.written:
            SPEND_WRITTEN.inc(written - self.written)
            self.written, self.last_write = written, now
        if stats.dropped > self.dropped:
            SPEND_DROPPED.inc(stats.dropped - self.dropped)
            self.dropped = stats.dropped
        SPEND_BUFFER.set(buffered)
        if buffered == 0:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = now
        since = max(self.waiting_since or now, self.last_write or 0.0)
        SPEND_LAG.set(round(now - since, 3) if buffered else 0.0)
        if self.budget_started is not None:
            BUDGET_LAG.set(round(now - (self.budget_refreshed or self.budget_started), 3))

    def run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            try:
                self.poll()
            except Exception:  # metrics must never take the gateway down
                continue


def _wrap_budget(state: Instrumented) -> None:
    budget = getattr(state.gateway, "budget", None)
    refresh = getattr(budget, "refresh", None)
    if budget is None or refresh is None:
        return

    async def counted_refresh() -> bool:
        if state.budget_started is None:
            state.budget_started = state.clock()
        ok = bool(await refresh())
        if ok:
            state.budget_refreshed = state.clock()
        return ok

    budget.refresh = counted_refresh


def _wrap_keys(resolver: Any) -> None:
    """Count key checks that queried the store (misses) or did not (hits), and store
    errors. A check coalesced onto another's query is a hit: it caused no query."""
    resolve: Callable[[str], Awaitable[Any]] = resolver.resolve
    lookup: Callable[[str], Awaitable[Any]] = resolver._lookup

    async def counted_lookup(key_hash: str) -> Any:
        flag = _looked_up.get()
        if flag is not None:
            flag[0] = True
        try:
            return await lookup(key_hash)
        except Exception:
            KEY_ERRORS.inc()
            raise

    async def counted_resolve(key_hash: str) -> Any:
        flag = [False]
        token = _looked_up.set(flag)
        try:
            return await resolve(key_hash)
        finally:
            _looked_up.reset(token)
            (KEY_MISSES if flag[0] else KEY_HITS).inc()

    resolver._lookup = counted_lookup
    resolver.resolve = counted_resolve


def instrument(gateway: Any, *, poll: bool = True) -> Instrumented:
    """Hook the gateway's key resolver and budget tracker, start the poller thread."""
    state = Instrumented(gateway)
    _wrap_budget(state)
    if getattr(gateway, "keys", None) is not None:
        _wrap_keys(gateway.keys)
    if poll:
        threading.Thread(target=state.run, name="pool-metrics", daemon=True).start()
    return state


def __getattr__(name: str) -> Any:
    """``prometheus``: the YAML's callback (``proxy.plugin.metrics.prometheus``), LiteLLM's
    Prometheus integration made when LiteLLM loads the YAML, not at import (making it
    registers LiteLLM's series): :func:`proxy.plugin.internals.prometheus_logger`."""
    if name == "prometheus":
        return internals.prometheus_logger()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
