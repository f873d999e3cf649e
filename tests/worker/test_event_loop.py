"""Nothing blocks the worker's event loop: every PostgreSQL and Redis call of the async
actors runs off the loop (bounded I/O threads, ``redis.asyncio``).

The check: PostgreSQL and Redis are reached through private forwarders that hold each
answer back ``LINK_DELAY`` seconds, and Dramatiq's event loop runs in asyncio debug
mode, which logs every callback that keeps the loop longer than
``slow_callback_duration``. A synchronous PostgreSQL or Redis call made on the loop
keeps it at least ``LINK_DELAY`` (one round trip): it is logged, and the test fails
naming it. The actors run on a real Redis broker (through the slow link too, so the
``expire`` message a confirmation schedules counts), an in-process Dramatiq worker,
the real service; only the proxy is faked at the HTTP transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import httpx
import openai
import pytest
import redis
from dramatiq import Worker
from dramatiq.asyncio import get_event_loop_thread

from sdk import AsyncGateway, tool
from tests.sdk.fakes import BASE_URL, FAST_RETRY, chat
from worker.actors import Actors, declare
from worker.agents import AgentSpec
from worker.broker import build_broker
from worker.db import WorkerDB
from worker.redis_store import RedisStore
from worker.service import ConversationService
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

LINK_DELAY = 0.25  # seconds each answer of PostgreSQL or Redis is held back
SLOW_CALLBACK = 0.2  # seconds a callback may keep the loop before debug mode logs it
CONFIRM_TTL = 8  # seconds: the unanswered confirmation below expires by itself


class SlowLink:
    """A TCP forwarder to ``target`` that holds every chunk the server sends back for
    ``delay`` seconds (requests go through at once)."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.delay),
                             daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while chunk := source.recv(65536):
                if delay:
                    time.sleep(delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def url(self, url: str) -> str:
        """``url`` (postgresql:// or redis://) pointed at this link."""
        parts = urlsplit(url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.port}"))

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def slow_link(url: str, default_port: int) -> SlowLink:
    parts = urlsplit(url)
    return SlowLink((parts.hostname or "127.0.0.1", parts.port or default_port), LINK_DELAY)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(requires_confirmation=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


class Script:
    """The fake proxy: answers by the last user message (so conversations interleave)."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        said = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        tools = [m for m in body["messages"] if m["role"] == "tool"]
        if said.startswith("add") and not tools:
            return chat(tool_calls=[("add", {"a": 2, "b": 3}, "x")])
        if said.startswith("refund") and not tools:
            return chat(tool_calls=[("refund", {"order_id": 7}, "r")])
        return chat("done")


@dataclass
class SlowWorker:
    actors: Actors
    slow: list[logging.LogRecord]  # what debug mode logged as slow callbacks
    settings: WorkerSettings  # URLs through the slow links


@pytest.fixture
def slow_worker(pg_url: str, redis_url: str, redis_prefix: str) -> Iterator[SlowWorker]:
    pg, rd = slow_link(pg_url, 5432), slow_link(redis_url, 6379)
    settings = WorkerSettings(redis_url=rd.url(redis_url), database_url=pg.url(pg_url),
                              namespace=redis_prefix, confirm_ttl=CONFIRM_TTL)
    previous = dramatiq.get_broker()
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    client = openai.AsyncOpenAI(base_url=BASE_URL, api_key="k", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(Script())))
    gateway = AsyncGateway(client=client, retry=FAST_RETRY)
    spec = AgentSpec(name="Slowpoke", alias="fast", tools=["x.add", "x.refund"])
    db = WorkerDB(settings.database_url, max_size=4)

    def build() -> ConversationService:
        store = RedisStore(redis.Redis.from_url(settings.redis_url), redis_prefix)
        store.client.ping()  # a build does I/O (pools, MCP servers): never on the loop
        return ConversationService(settings, db, store, {"slowpoke": (spec, [add, refund])},
                                   lambda _tenant: gateway)

    actors = declare(broker, build)
    worker = Worker(broker, worker_threads=8, worker_timeout=50)
    worker.start()
    loop_thread = get_event_loop_thread()
    assert loop_thread is not None
    loop = loop_thread.loop
    loop.slow_callback_duration = SLOW_CALLBACK
    loop.call_soon_threadsafe(loop.set_debug, True)

    slow: list[logging.LogRecord] = []

    class Slow(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "took" in record.getMessage():  # "Executing <Task ...> took 0.251 seconds"
                slow.append(record)

    handler = Slow()
    logging.getLogger("asyncio").addHandler(handler)
    try:
        yield SlowWorker(actors, slow, settings)
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        worker.stop()
        broker.close()
        dramatiq.set_broker(previous)
        db.close()
        pg.close()
        rd.close()


def _send(actors: Actors, conversation: str, text: str) -> Any:
    return actors.handle_message.send({"tenant": "acme", "conversation_id": conversation,
                                       "agent_id": "slowpoke", "text": text,
                                       "message_id": uuid.uuid4().hex})


def _result(message: Any) -> dict[str, Any]:
    value: dict[str, Any] = message.get_result(block=True, timeout=120_000)
    return value


def test_no_postgres_or_redis_call_blocks_the_event_loop(slow_worker: SlowWorker,
                                                         redis_url: str,
                                                         redis_prefix: str) -> None:
    actors, slow = slow_worker.actors, slow_worker.slow
    # a first message warms the process up: the openai client imports its resource
    # modules on its first request (about a second of CPU, once per process)
    assert _result(_send(actors, f"c-warm-{uuid.uuid4().hex[:6]}", "hello"))["text"] == "done"
    slow.clear()
    # concurrent conversations: a tool loop, a confirmation answered, one left to expire
    sent = {name: _send(actors, f"c-{name}-{uuid.uuid4().hex[:6]}", text)
            for name, text in [("add", "add please"), ("refund", "refund please"),
                               ("expire", "refund please")]}
    assert _result(sent["add"])["text"] == "done"
    paused = _result(sent["refund"])
    assert paused["status"] == "needs_confirmation"
    answer = actors.confirm.send({"conversation_id": paused["conversation_id"],
                                  "approved": True})
    assert _result(answer)["status"] == "completed"
    waiting = _result(sent["expire"])
    assert waiting["status"] == "needs_confirmation"
    # the scheduled expire message ends it at the TTL
    store = RedisStore(redis.Redis.from_url(redis_url), redis_prefix)
    deadline = time.monotonic() + CONFIRM_TTL + 60
    while not any(e["type"] == "expired"
                  for _, e in store.read_events(waiting["conversation_id"])):
        assert time.monotonic() < deadline, "the confirmation never expired"
        time.sleep(0.2)
    loop_thread = get_event_loop_thread()
    assert loop_thread is not None and loop_thread.loop.get_debug()
    assert not slow, "callbacks kept the event loop busy:\n" + "\n".join(
        r.getMessage() for r in slow)


def test_the_detector_sees_a_sync_redis_call_on_the_loop(slow_worker: SlowWorker) -> None:
    """The check itself: one sync Redis call through the slow link, on the loop."""
    slow = slow_worker.slow
    loop_thread = get_event_loop_thread()
    assert loop_thread is not None
    client = redis.Redis.from_url(slow_worker.settings.redis_url)

    async def blocking() -> None:
        client.ping()

    asyncio.run_coroutine_threadsafe(blocking(), loop_thread.loop).result(10)
    deadline = time.monotonic() + 10
    while not slow:
        assert time.monotonic() < deadline, "debug mode did not report the blocking call"
        time.sleep(0.05)
    assert "blocking" in slow[0].getMessage()
