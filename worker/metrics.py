"""``dramatiq worker.metrics``: the workers with Prometheus metrics (``pool worker
--metrics-port PORT``).

The same actors as :mod:`worker.actors`, with Dramatiq's Prometheus middleware (off by
default since Dramatiq 2.0: ``dramatiq_messages_total``, ``dramatiq_message_errors_total``,
``..._retries_total``, ``..._rejects_total``, ``dramatiq_messages_inprogress``,
``dramatiq_message_duration_milliseconds``, per queue and actor) and ours:

- ``pool_worker_replies_total{actor, status}``: each actor's result
  (:class:`~worker.models.Reply`), by status: ``completed``, ``needs_confirmation`` (a
  confirmation was asked for), ``declined``, ``expired``, ``failed``, ``max_iterations``,
  ``budget_exceeded``, ``refused`` (a decision refused), ``nothing_pending``; a reply
  answered again (a redelivered message, a second answer) counts again;
- ``pool_worker_pending_confirmations``: confirmations waiting for a human now (the
  pending keys in Redis), re-counted after each message and every :data:`PENDING_EVERY` s;
- counted by the service where things happen, each once (see :mod:`worker.counters`):
  ``pool_worker_turns_total{agent, outcome}`` (conversation turns ended),
  ``pool_worker_tool_calls_total{agent, tool, outcome}`` (``ok``, ``error``,
  ``declined``) and ``pool_worker_expire_runs_total{result}`` (the ``expire`` actor:
  ``expired``, ``decided``, ``gone``, ``early``).

Dramatiq serves them all, added up over the worker processes, from a process of its own
on ``dramatiq_prom_host``:``dramatiq_prom_port``, from the files in ``dramatiq_prom_db``;
``pool worker`` sets the three (a directory private to the user and port: Dramatiq's
default is one directory in /tmp for every worker on the machine).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from dramatiq.middleware.prometheus import DB_PATH, Prometheus

from worker import actors as _actors
from worker.broker import redis_client
from worker.counters import Counters
from worker.redis_store import RedisStore

__all__ = ["ReplyMetrics", "confirm", "handle_message"]


PENDING_EVERY = 5.0  # seconds between two counts of the pending confirmations


class ReplyMetrics(Middleware):
    """Counts each actor's reply by status, and the pending confirmations; enables the
    service's :class:`~worker.counters.Counters` (all created after Dramatiq's
    Prometheus middleware has pointed ``prometheus_client`` at its multi-process
    directory)."""

    def __init__(self, store: RedisStore, counters: Counters) -> None:
        self.replies: Any = None
        self.pending: Any = None
        self.counters = counters
        self._pattern = store.pending_key("*")
        self._client = store.client

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # "after" hooks run in reverse order: this one may run before Prometheus's, and
        # prometheus_client picks its storage when first imported
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = DB_PATH
        import prometheus_client as prom

        registry = prom.CollectorRegistry()
        self.replies = prom.Counter("pool_worker_replies", "Agent turns finished, by outcome",
                                    ["actor", "status"], registry=registry)
        self.pending = prom.Gauge("pool_worker_pending_confirmations",
                                  "Confirmations waiting for a human", registry=registry,
                                  multiprocess_mode="livemax")
        self.counters.enable(registry)
        threading.Thread(target=self._count_forever, name="pool-pending", daemon=True).start()

    def count_pending(self) -> None:
        if self.pending is not None:
            with contextlib.suppress(redis.RedisError):
                self.pending.set(sum(1 for _ in self._client.scan_iter(self._pattern,
                                                                       count=1000)))

    def _count_forever(self) -> None:
        while True:
            self.count_pending()
            time.sleep(PENDING_EVERY)

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None
                              ) -> None:
        if self.replies is not None and exception is None and isinstance(result, dict):
            self.replies.labels(message.actor_name, str(result.get("status"))).inc()
        self.count_pending()


_actors.broker.add_middleware(Prometheus())
_actors.broker.add_middleware(ReplyMetrics(
    RedisStore(redis_client(_actors.settings.redis_url), _actors.settings.namespace),
    _actors.counters))
handle_message = _actors.handle_message
confirm = _actors.confirm
