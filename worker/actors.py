"""Dramatiq actors: ``handle_message`` and ``confirm``.

Run a worker with ``pool worker`` or ``dramatiq worker.actors``. The actors are
thin: they validate the message and call :class:`~worker.service.ConversationService`,
built once per worker process on first use.

Sending from code: ``actors = declare(build_broker(settings), ...)`` then
``actors.handle_message.send(InboundMessage(...).model_dump())``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.broker import Broker

from worker.agents import load_agents
from worker.broker import build_broker, redis_client
from worker.db import WorkerDB
from worker.models import ConfirmMessage, InboundMessage
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


def build_service(settings: WorkerSettings) -> ConversationService:
    """Everything a worker process needs: pools, the agents file, a gateway."""
    gateway_for = gateways_by_tenant(settings.proxy_url, settings.api_key,
                                     load_tenant_keys(settings.tenant_keys_file))
    store = RedisStore(redis_client(settings.redis_url), settings.namespace)
    return ConversationService(settings, WorkerDB(settings.database_url), store,
                               load_agents(settings.agents_file), gateway_for)


def declare(broker: Broker, service: Callable[[], ConversationService]) -> Actors:
    """Declare the actors on ``broker``; ``service`` builds the service (called lazily)."""

    def handle_message(message: dict[str, Any]) -> dict[str, Any]:
        return service().handle(InboundMessage.model_validate(message)).model_dump()

    def confirm(answer: dict[str, Any]) -> dict[str, Any]:
        return service().confirm(ConfirmMessage.model_validate(answer)).model_dump()

    options: dict[str, Any] = {"broker": broker, "queue_name": QUEUE, "store_results": True}
    return Actors(
        handle_message=dramatiq.actor(actor_name="handle_message", **options)(handle_message),
        confirm=dramatiq.actor(actor_name="confirm", **options)(confirm),
    )


settings = WorkerSettings.from_env()
broker = build_broker(settings)
dramatiq.set_broker(broker)
actors = declare(broker, functools.cache(functools.partial(build_service, settings)))
handle_message = actors.handle_message
confirm = actors.confirm
