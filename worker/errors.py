"""Every exception the worker raises, under one root::

    WorkerError                     anything of ours in worker/
    ├── WorkerConfigError           the worker cannot run as configured; a message
    │   │                           failing with it is dead-lettered, never retried
    │   ├── WorkerSettingsError     a bad environment variable (the message names it)
    │   ├── AgentConfigError        the agents file: unreadable, invalid, a tool that
    │   │                           does not load
    │   └── TenantKeysError         the tenant keys file (POOL_TENANT_KEYS_FILE)
    ├── GatewayRefusedError         the gateway refused the worker's request for a reason
    │                               retrying cannot fix (a wrong key, an unknown alias, an
    │                               invalid request): dead-lettered, an operator must act
    ├── GatewayUnreachable          no connection to the gateway (a wrong POOL_PROXY_URL,
    │                               a stopped proxy): retried with backoff
    │                               (``POOL_WORKER_MAX_RETRIES``), then dead-lettered
    ├── InvalidMessage              the queue message is not a valid message: dead-lettered
    ├── LeaseLost                   (:mod:`worker.lease`) the run's lease expired under
    │                               this delivery: retried (it then waits for the run)
    └── RetryLater                  the gateway rate-limited the run: the actor retries
                                    the message after ``delay_ms``

Each failure is logged by the actor on one line (``message_id=...``, the cause, and
whether the message is retried or dead-lettered; never the user's text).

A message naming an agent the agents file does not define is not an exception: the
sender is told so in a ``failed`` reply (``pool send`` refuses it before queueing).
"""

from __future__ import annotations

__all__ = [
    "AgentConfigError",
    "GatewayRefusedError",
    "GatewayUnreachable",
    "InvalidMessage",
    "RetryLater",
    "TenantKeysError",
    "WorkerConfigError",
    "WorkerError",
    "WorkerSettingsError",
]


class WorkerError(Exception):
    """The root of the worker's exceptions."""


class WorkerConfigError(WorkerError):
    """The worker cannot run as configured (retrying a message cannot fix it)."""


class WorkerSettingsError(WorkerConfigError):
    """An environment variable has a bad value; ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class AgentConfigError(WorkerConfigError):
    """The agents file is missing, unreadable, invalid, or names a tool that can't load."""


class TenantKeysError(WorkerConfigError):
    """The tenant keys file is unreadable or not a mapping of tenant name to key."""


class GatewayRefusedError(WorkerError):
    """The gateway refused the worker's request for a reason retrying cannot fix (a
    wrong key, an unknown alias, an invalid request): an operator must act."""


class GatewayUnreachable(WorkerError):
    """No connection to the gateway: retried with backoff, then dead-lettered."""


class InvalidMessage(WorkerError):
    """A queue message that does not validate (the text says which fields, not their
    values)."""


class RetryLater(WorkerError):
    """Run the message again after ``delay_ms`` (the gateway rate-limited it)."""

    def __init__(self, message: str, delay_ms: int) -> None:
        super().__init__(message)
        self.delay_ms = delay_ms
