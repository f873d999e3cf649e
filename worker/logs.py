"""What the worker logs, and what it keeps out of the logs.

- One line per failed delivery, by the actor (:func:`failure_line`): the message's
  ``message_id`` (ours, the one the sender chose, and Dramatiq's own id), the cause,
  and what happens next (``retried in the background`` or ``dead-lettered``). Never
  the user's text: that is logged at DEBUG only.
- Dramatiq's own log records name a message by ``str(message)``, which is the actor
  call *with its arguments*: the user's text. :class:`RedactMessages` (installed on
  the worker process's log handlers by :class:`LogPolicy`) replaces every message in a
  record by ``actor(message_id=...)`` and drops Dramatiq's "expected exception" and
  "unhandled exception" records of our own errors (:class:`~worker.errors.WorkerError`:
  the actor logged its one-line account of them; a traceback would add nothing).
  Any other exception keeps Dramatiq's record with its traceback (a bug).
"""

from __future__ import annotations

import logging
from typing import Any

from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from worker.errors import WorkerError

__all__ = ["EXPECTED_FAILURE", "LogPolicy", "RedactMessages", "describe", "failure_line"]

EXPECTED_FAILURE = "with expected exception"  # Dramatiq's line for an actor's `throws`


def describe(message: Any) -> str:
    """``actor(message_id=..., dramatiq_id=...)``: a message without its content."""
    if isinstance(message, MessageProxy):
        message = message._message
    if not isinstance(message, Message):
        return str(message)
    body = message.args[0] if message.args and isinstance(message.args[0], dict) else {}
    ours = body.get("message_id") or body.get("decision_id")
    conversation = body.get("conversation_id")
    parts = [f"message_id={ours}"] if ours else []
    if conversation:
        parts.append(f"conversation={conversation}")
    parts.append(f"dramatiq_id={message.message_id}")
    return f"{message.actor_name}({', '.join(parts)})"


def failure_line(actor: str, message_id: str | None, conversation: str | None,
                 dramatiq_id: str, cause: BaseException, next_step: str) -> str:
    cause_text = " ".join(str(cause).split())[:500]
    return (f"{actor} message_id={message_id or '-'} conversation={conversation or '-'} "
            f"dramatiq_id={dramatiq_id}: {type(cause).__name__}: {cause_text}; {next_step}")


class RedactMessages(logging.Filter):
    """Keeps message contents out of Dramatiq's log records (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and EXPECTED_FAILURE in record.msg:
            return False
        if record.exc_info and isinstance(record.exc_info[1], WorkerError) \
                and record.name.startswith("dramatiq."):
            return False
        if isinstance(record.args, tuple) and any(
                isinstance(a, Message | MessageProxy) for a in record.args):
            record.args = tuple(describe(a) if isinstance(a, Message | MessageProxy) else a
                                for a in record.args)
        return True


class LogPolicy(Middleware):
    """Installs :class:`RedactMessages` on the worker process's log handlers."""

    def after_process_boot(self, broker: Any) -> None:
        install(logging.getLogger())

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        install(logging.getLogger())


def install(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, RedactMessages) for f in handler.filters):
            handler.addFilter(RedactMessages())
