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

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from dramatiq.middleware import CurrentMessage

from worker.agents import load_agents
from worker.broker import build_broker, redis_client
from worker.counters import Counters
from worker.db import WorkerDB
from worker.errors import RetryLater
from worker.mcp_sessions import with_mcp_tools
from worker.models import ConfirmMessage, ExpireMessage, InboundMessage, Reply
from worker.redis_store import RedisStore
from worker.service import ConversationService
from worker.settings import WorkerSettings
from worker.tenant_keys import gateways_by_tenant, load_tenant_keys

__all__ = ["QUEUE", "Actors", "build_service", "declare"]

QUEUE = "conversations"


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
    store = RedisStore(redis_client(settings.redis_url), settings.namespace)
    agents = with_mcp_tools(load_agents(settings.agents_file))  # connects the MCP servers
    return ConversationService(settings, WorkerDB(settings.database_url), store, agents,
                               gateway_for, counters)


def _message_id() -> str:
    current = CurrentMessage.get_current_message()
    return current.message_id if current is not None else "local"


def declare(broker: Broker, service: Callable[[], ConversationService]) -> Actors:
    """Declare the actors on ``broker``; ``service`` builds the service (called lazily)."""
    options: dict[str, Any] = {"broker": broker, "queue_name": QUEUE, "store_results": True}

    def schedule_expiry(reply: Reply) -> None:
        if reply.status == "needs_confirmation" and reply.expires_at is not None:
            due = ExpireMessage(conversation_id=reply.conversation_id,
                                message_id=reply.message_id)
            delay = max(0, int((reply.expires_at - time.time()) * 1000))
            expire_actor.send_with_options(args=(due.model_dump(),), delay=delay)

    async def handle_message(message: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = await service().handle(InboundMessage.model_validate(message))
        except RetryLater as later:
            raise dramatiq.Retry(str(later), delay=later.delay_ms) from later
        schedule_expiry(reply)
        return reply.model_dump()

    async def confirm(answer: dict[str, Any]) -> dict[str, Any]:
        parsed = ConfirmMessage.model_validate(answer)
        try:
            reply = await service().confirm(parsed, parsed.decision_id or _message_id())
        except RetryLater as later:
            raise dramatiq.Retry(str(later), delay=later.delay_ms) from later
        schedule_expiry(reply)
        return reply.model_dump()

    async def expire(due: dict[str, Any]) -> dict[str, Any] | None:
        reply = await service().expire(ExpireMessage.model_validate(due))
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
