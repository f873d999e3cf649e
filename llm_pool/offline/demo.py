"""``pool demo``: the whole system offline, no provider keys needed.

1. PostgreSQL schema (``pool db migrate``), a tenant ``demo`` and a fresh key for it;
2. the scripted provider (standing in for the LLM vendor) and the stock LiteLLM
   proxy on ``config/offline.yaml`` with our auth and spend plug-ins;
3. SDK calls with the tenant key: an alias, a ``quality -> fast`` fallback while
   ``quality`` is down, a stream;
4. a Dramatiq worker runs the ``helpdesk`` agent: a message asks for an email, the
   agent calls ``send_email`` (needs a human yes), we confirm, the email is sent,
   the final reply arrives on the conversation's event stream; then the same for
   ``create_ticket``, a tool of an MCP server (``llm_pool/offline/mcp_server.py``, a
   child process of the worker over stdio);
5. the tenant's spend rows and the conversation's audit rows, from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, proxy_env, start_proxy
from llm_pool.settings import REPO_ROOT, Settings

__all__ = ["run"]

TENANT = "demo"
AGENT = "helpdesk"
WORKER_STOP_TIMEOUT = 20.0
WORKER_START_TIMEOUT = 60.0
REPLY_TIMEOUT = 60.0
LEFTOVER_TTL = 3600  # seconds this run's events stay readable (`pool events`)
FAST_FLUSH = {"POOL_SPEND_FLUSH_INTERVAL": "0.2", "POOL_BUDGET_REFRESH_SECONDS": "1"}


def _say(title: str, detail: str = "") -> None:
    print(f"\n== {title}" + (f"\n   {detail}" if detail else ""), flush=True)


# ----------------------------------------------------------------- setup


def _tenant_key(url: str, label: str) -> str:
    from proxy.errors import TenantExists
    from proxy.storage.db import ensure_database, migrate
    from proxy.storage.tenants import create_key, create_tenant

    if ensure_database(url):
        print(f"   created the database ({url.rsplit('/', 1)[-1]})", flush=True)
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        with contextlib.suppress(TenantExists):
            create_tenant(conn, TENANT, budget=None, rpm=600)
        key, _ = create_key(conn, TENANT, label=label)
    return key


def _clean_up(url: str, label: str, redis_url: str, namespace: str) -> None:
    """Revoke this run's key; let this run's Redis keys (events, results) expire."""
    import redis

    from proxy.storage.tenants import revoke_key

    with psycopg.connect(url, autocommit=True) as conn:
        revoke_key(conn, f"{TENANT}/{label}")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    for key in client.scan_iter(f"{namespace}:*"):
        client.expire(key, LEFTOVER_TTL)
    _say("cleaned up", f"key {label!r} revoked; this run's Redis keys ({namespace}:*) expire "
         f"in {LEFTOVER_TTL // 60} minutes")


@contextlib.contextmanager
def _ticking(every: float = 5.0) -> Iterator[None]:
    """Print a dot every ``every`` seconds while a long step runs (progress, not silence)."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            print(".", end="", flush=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        print(flush=True)


# ----------------------------------------------------------------- gateway calls


def _gateway_calls(proxy: ProxyProcess, key: str, provider: ScriptedProvider) -> None:
    from sdk import Gateway

    gateway = Gateway(base_url=proxy.url, api_key=key)
    reply = gateway.complete("fast", "Say hello to the new teammate.")
    _say("alias `fast` through the SDK, with the tenant's key",
         f"{reply.text!r} (deployment {reply.deployment}, cost ${reply.cost or 0:.8f})")

    provider.add_rule("quality-*", {"status": 500, "error_message": "provider outage"})
    reply = gateway.complete("quality", "Summarise our Q3 plan.")
    _say("alias `quality` while every quality deployment returns 500",
         f"answered by {reply.deployment} (group {reply.model_group}): {reply.text!r}")
    provider.reset()

    _say("streaming from `balanced`")
    with gateway.stream("balanced", "Stream a short answer, word by word.") as stream:
        print("   ", end="")
        for delta in stream:
            print(delta, end="", flush=True)
    print()


# ----------------------------------------------------------------- the worker path


@contextlib.contextmanager
def _worker(env: dict[str, str], tmp: Path) -> Iterator[None]:
    log = tmp / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dramatiq")), "worker.actors",
             "--processes", "1", "--threads", "2"],
            cwd=REPO_ROOT, env=proxy_env(env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while "is ready for action" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield
    finally:
        # SIGTERM to Dramatiq's main process only, which stops its worker processes: a
        # second SIGTERM straight to a worker process (a signal to the whole group) makes
        # it exit hard while Dramatiq's event-loop thread keeps it alive forever
        proc.terminate()
        try:
            proc.wait(WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _figure(name: str, value: Any) -> str:
    """Figures as a person reads them: ``$0.00002380``, ``704 ms``."""
    if isinstance(value, float) and "cost" in name:
        return f"${value:.8f}"
    if isinstance(value, float):
        return f"{value:.0f}" if name.endswith("_ms") else f"{value:.3g}"
    return str(value)


def _until_reply(store: Any, conversation: str, after: str) -> tuple[str, dict[str, Any]]:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        for entry_id, event in store.read_events(conversation, after, block_ms=500):
            after = entry_id
            data = event["data"]
            if event["type"] == "reply":
                print(f"   [reply:{data['status']}] {data['text']}", flush=True)
                return after, data
            print(f"   [{event['type']}] " + ", ".join(f"{k}={_figure(k, v)}"
                                                       for k, v in data.items()
                                                       if k != "text"), flush=True)
    raise TimeoutError(f"no reply on {conversation} within {REPLY_TIMEOUT:.0f} s")


EMAIL_TEXT = "Please send an email to bob@example.com saying his order 1042 has shipped."
TICKET_TEXT = "Please create a ticket: my order 1042 arrived with a cracked screen."


def _conversations(env: dict[str, str], namespace: str) -> list[str]:
    """Two gated actions of the helpdesk agent: ``send_email`` (a ``@tool``) and
    ``create_ticket`` (a tool of the demo's MCP server, llm_pool/offline/mcp_server.py)."""
    from worker.actors import declare
    from worker.broker import build_broker, redis_client
    from worker.redis_store import RedisStore
    from worker.settings import WorkerSettings

    settings = WorkerSettings(redis_url=env["POOL_REDIS_URL"], namespace=namespace)
    actors = declare(build_broker(settings), lambda: None)  # type: ignore[arg-type,return-value]
    store = RedisStore(redis_client(settings.redis_url), namespace)
    done = [_confirmed(actors, store, EMAIL_TEXT),
            _confirmed(actors, store, TICKET_TEXT, "(an MCP tool)")]
    keys = list(store.client.scan_iter(f"{namespace}:dramatiq*"))
    if keys:
        store.client.delete(*keys)
    return done


def _confirmed(actors: Any, store: Any, text: str, what: str = "") -> str:
    from worker.models import ConfirmMessage, InboundMessage

    conversation = f"demo-{uuid.uuid4().hex[:8]}"
    _say(f"worker: user -> {AGENT} agent ({conversation}) {what}".rstrip(), text)
    actors.handle_message.send(InboundMessage(
        tenant=TENANT, conversation_id=conversation, agent_id=AGENT, text=text,
        message_id=uuid.uuid4().hex).model_dump())
    after, paused = _until_reply(store, conversation, "0-0")
    if paused["status"] != "needs_confirmation":
        raise RuntimeError(f"expected a confirmation request, got {paused}")
    _say("operator confirms: pool confirm " + conversation + " --yes")
    actors.confirm.send(ConfirmMessage(conversation_id=conversation, approved=True,
                                       decided_by="demo-operator").model_dump())
    _until_reply(store, conversation, after)
    return conversation


# ----------------------------------------------------------------- report


def _report(url: str, conversations: list[str], label: str) -> None:
    time.sleep(1.0)  # one spend flush interval
    with psycopg.connect(url) as conn:
        spend = conn.execute(
            "SELECT s.model_alias, s.deployment, s.status, count(*), sum(s.prompt_tokens"
            " + s.completion_tokens), sum(s.cost_usd) FROM spend s JOIN tenants t"
            " ON t.id = s.tenant_id WHERE t.name = %s AND s.key_label = %s"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", (TENANT, label)).fetchall()
        tools = conn.execute(
            "SELECT tool_name, outcome, confirmation, decided_by FROM audit_tool_calls"
            " WHERE conversation_id = ANY(%s) ORDER BY id", (conversations,)).fetchall()
        llm = conn.execute(
            "SELECT count(*), sum(prompt_tokens + completion_tokens), sum(cost_usd)"
            " FROM audit_llm_calls WHERE conversation_id = ANY(%s)", (conversations,)).fetchone()
        sent = conn.execute("SELECT payload->>'to' FROM demo_outbox ORDER BY created_at DESC"
                            " LIMIT 1").fetchone()
    _say(f"this run's spend rows (tenant {TENANT!r}, key {label!r}), from PostgreSQL")
    for alias, deployment, status, n, tokens, cost in spend:
        print(f"   {alias:<9} {deployment or '-':<16} {status:<6} {n:>3} req"
              f" {tokens or 0:>6} tokens  ${float(cost or 0):.8f}")
    _say("audit of the conversations")
    assert llm is not None
    print(f"   {llm[0]} LLM calls, {llm[1] or 0} tokens, ${float(llm[2] or 0):.8f}")
    for name, outcome, confirmation, who in tools:
        print(f"   tool {name}: {outcome} (confirmation: {confirmation}, by {who})")
    print(f"   demo_outbox: email to {sent[0] if sent else '-'}")


def run() -> int:
    settings = Settings.from_env()
    _say("PostgreSQL schema, tenant and key", settings.database_url)
    label = f"demo-{uuid.uuid4().hex[:6]}"
    key = _tenant_key(settings.database_url, label)
    master = f"sk-demo-{secrets.token_hex(8)}"
    namespace = f"llm-pool-demo-{uuid.uuid4().hex[:6]}"
    try:
        conversations = _run_parts(settings, key, master, namespace)
        _report(settings.database_url, conversations, label)
    finally:
        _clean_up(settings.database_url, label, settings.redis_url, namespace)
    _say("demo finished")
    return 0


def _run_parts(settings: Settings, key: str, master: str, namespace: str) -> list[str]:
    with ScriptedProvider() as provider, tempfile.TemporaryDirectory() as tmp:
        _say("starting the scripted provider and the stock LiteLLM proxy (config/offline.yaml)",
             "the proxy takes 20-60 s to start; a dot every 5 s")
        print("   ", end="", flush=True)
        with _ticking():
            proxy = start_proxy(REPO_ROOT / "config" / "offline.yaml",
                                log_path=Path(tmp) / "p.log",
                                env={"POOL_PROVIDER_URL": f"{provider.url}/v1",
                                     "LITELLM_MASTER_KEY": master,
                                     "POOL_DATABASE_URL": settings.database_url, **FAST_FLUSH})
        try:
            _say("proxy ready", proxy.url)
            _gateway_calls(proxy, key, provider)
            env = {"POOL_DATABASE_URL": settings.database_url, "POOL_REDIS_URL":
                   settings.redis_url, "POOL_PROXY_URL": proxy.url, "POOL_API_KEY": key,
                   "POOL_NAMESPACE": namespace}
            with _worker(env, Path(tmp)):
                return _conversations(env, namespace)
        finally:
            proxy.stop()
