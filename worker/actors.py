"""Dramatiq actors: ``handle_message``, ``confirm`` and ``expire`` (async, on the
worker process's event loop: Dramatiq's AsyncIO middleware).

Run a worker with ``pool worker`` or ``dramatiq worker.actors``. The actors are
thin: they validate the message and call :class:`~worker.service.ConversationService`,
built once per worker process on first use. A message that stops for a
confirmation schedules its ``expire`` message at the confirmation's expiry (a
Dramatiq delayed message, kept in Redis: it survives worker restarts).

Sending from code: ``actors = declare(build_broker(settings), ...)`` then
``actors.handle_message.send(InboundMessage(...).model_dump())``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import pydantic
from dramatiq.broker import Broker
from dramatiq.middleware import CurrentMessage, Retries

from worker.agents import load_agents
from worker.broker import build_broker, redis_client
from worker.counters import Counters
from worker.db import WorkerDB
from worker.errors import (
    GatewayRefusedError,
    InvalidMessage,
    RetryLater,
    WorkerConfigError,
    WorkerError,
)
from worker.logs import failure_line
from worker.mcp_sessions import with_mcp_tools
from worker.models import ConfirmMessage, ExpireMessage, InboundMessage, Reply
from worker.redis_store import RedisStore
from worker.service import ConversationService
from worker.settings import WorkerSettings
from worker.tenant_keys import gateways_by_tenant, load_tenant_keys

__all__ = ["QUEUE", "Actors", "build_service", "declare"]

QUEUE = "conversations"
# never retried: Dramatiq's `throws` (dead-lettered at once; the actor logged one line)
PERMANENT = (WorkerConfigError, GatewayRefusedError, InvalidMessage)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actors:
    handle_message: dramatiq.Actor[..., Any]
    confirm: dramatiq.Actor[..., Any]
    expire: dramatiq.Actor[..., Any]


def build_service(settings: WorkerSettings, counters: Counters | None = None
                  ) -> ConversationService:
    """Everything a worker process needs: pools, the agents file, a gateway."""
    settings.require_proxy_key()
    gateway_for = gateways_by_tenant(settings.proxy_url, settings.api_key,
                                     load_tenant_keys(settings.tenant_keys_file))
    store = RedisStore(redis_client(settings.redis_url), settings.namespace,
                       settings.event_retention)
    agents = with_mcp_tools(load_agents(settings.agents_file))  # connects the MCP servers
    return ConversationService(settings, WorkerDB(settings.database_url), store, agents,
                               gateway_for, counters)


def _message_id() -> str:
    current = CurrentMessage.get_current_message()
    return current.message_id if current is not None else "local"


def _retries() -> int:
    current = CurrentMessage.get_current_message()
    return int(current.options.get("retries", 0)) if current is not None else 0


def _parse(model: type[pydantic.BaseModel], body: dict[str, Any]) -> Any:
    """The validated message; :class:`InvalidMessage` naming the fields, not their values."""
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}"
                           for e in exc.errors(include_url=False, include_input=False))
        raise InvalidMessage(f"invalid {model.__name__}: {fields}") from None


def declare(broker: Broker, service: Callable[[], ConversationService]) -> Actors:
    """Declare the actors on ``broker``; ``service`` builds the service (called lazily)."""
    options: dict[str, Any] = {"broker": broker, "queue_name": QUEUE, "store_results": True,
                               "throws": PERMANENT}
    retries = next((m for m in broker.middleware if isinstance(m, Retries)), None)

    def next_step(exc: BaseException) -> str:
        """What Dramatiq does with the failed message (the Retries middleware's policy)."""
        done = _retries()
        if retries is None:
            return "dead-lettered"
        again = (retries.retry_when(done, exc) if retries.retry_when is not None
                 else done < retries.max_retries)
        return f"retried with backoff (retry {done + 1})" if again else "dead-lettered"

    built: list[ConversationService] = []
    building = asyncio.Lock()

    async def running() -> ConversationService:
        """The service, built on first use on a thread, not on the event loop (building
        opens the pools and connects the agents' MCP servers); a build that failed is
        tried again by the next message."""
        if not built:
            async with building:
                if not built:
                    built.append(await asyncio.to_thread(service))
        return built[0]

    async def guarded(actor: str, message_id: str | None, conversation: str | None,
                      work: Callable[[ConversationService], Awaitable[Reply]]) -> Reply:
        """Run ``work`` on the service (built on first use: a configuration error is a
        failure too); a failure is logged on one line and re-raised for Dramatiq."""
        try:
            return await work(await running())
        except RetryLater as later:
            log.info(failure_line(actor, message_id, conversation, _message_id(), later,
                                  f"retried in {later.delay_ms} ms"))
            raise dramatiq.Retry(str(later), delay=later.delay_ms) from later
        except WorkerError as exc:
            step = next_step(exc)
            log.error(failure_line(actor, message_id, conversation, _message_id(), exc, step))
            if step == "dead-lettered" and conversation is not None:
                with contextlib.suppress(WorkerError):  # no service: the line says why
                    await (await running()).dead_lettered(conversation, message_id, exc)
            raise

    async def schedule_expiry(reply: Reply) -> None:
        """Queue the ``expire`` message of a confirmation (a Redis write: on the
        service's I/O threads, not on the loop)."""
        if reply.status == "needs_confirmation" and reply.expires_at is not None:
            due = ExpireMessage(conversation_id=reply.conversation_id,
                                message_id=reply.message_id)
            delay = max(0, int((reply.expires_at - time.time()) * 1000))
            await (await running()).off_loop(functools.partial(
                expire_actor.send_with_options, args=(due.model_dump(),), delay=delay))

    async def handle_message(message: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed: InboundMessage = _parse(InboundMessage, message)
        except InvalidMessage as exc:
            log.error(failure_line("handle_message", None, None, _message_id(), exc,
                                   "dead-lettered"))
            raise
        reply = await guarded("handle_message", parsed.message_id, parsed.conversation_id,
                              lambda running: running.handle(parsed))
        await schedule_expiry(reply)
        return reply.model_dump()

    async def confirm(answer: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed: ConfirmMessage = _parse(ConfirmMessage, answer)
        except InvalidMessage as exc:
            log.error(failure_line("confirm", None, None, _message_id(), exc, "dead-lettered"))
            raise
        decision = parsed.decision_id or _message_id()
        reply = await guarded("confirm", decision, parsed.conversation_id,
                              lambda running: running.confirm(parsed, decision))
        await schedule_expiry(reply)
        return reply.model_dump()

    async def expire(due: dict[str, Any]) -> dict[str, Any] | None:
        reply = await (await running()).expire(ExpireMessage.model_validate(due))
        return reply.model_dump() if reply is not None else None

    expire_actor = dramatiq.actor(actor_name="expire", **options)(expire)
    return Actors(
        handle_message=dramatiq.actor(actor_name="handle_message", **options)(handle_message),
        confirm=dramatiq.actor(actor_name="confirm", **options)(confirm),
        expire=expire_actor,
    )


settings = WorkerSettings.from_env()
broker = build_broker(settings)
dramatiq.set_broker(broker)
counters = Counters()  # counting once worker.metrics enables them (pool worker --metrics-port)
actors = declare(broker, functools.cache(functools.partial(build_service, settings, counters)))
handle_message = actors.handle_message
confirm = actors.confirm
