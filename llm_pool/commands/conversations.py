"""``pool worker``, ``pool send``, ``pool confirm``, ``pool events``: drive agent
conversations from the shell and watch their events."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

__all__ = ["register"]

DEFAULT_WAIT = 60.0  # seconds `send`/`confirm` watch the stream for the reply


def register(subparsers: Any) -> None:
    work = subparsers.add_parser("worker", help="run Dramatiq workers (dramatiq worker.actors)")
    work.add_argument("--processes", type=int, default=1)
    work.add_argument("--threads", type=int, default=4)
    work.set_defaults(handler=run_worker)

    send = subparsers.add_parser("send", help="queue a user message for an agent")
    send.add_argument("text")
    send.add_argument("--tenant", required=True)
    send.add_argument("--conversation", required=True)
    send.add_argument("--agent", default="helpdesk", help="agent id from the agents file")
    send.add_argument("--message-id", default=None, help="default: a new uuid")
    _wait_args(send)
    send.set_defaults(handler=run_send)

    confirm = subparsers.add_parser("confirm", help="answer a pending confirmation")
    confirm.add_argument("conversation")
    answer = confirm.add_mutually_exclusive_group(required=True)
    answer.add_argument("--yes", dest="approved", action="store_true")
    answer.add_argument("--no", dest="approved", action="store_false")
    confirm.add_argument("--note", default=None)
    confirm.add_argument("--by", default=None, help="who decided (audit log)")
    _wait_args(confirm)
    confirm.set_defaults(handler=run_confirm)

    events = subparsers.add_parser("events", help="print a conversation's event stream")
    events.add_argument("conversation")
    events.add_argument("--follow", action="store_true")
    events.set_defaults(handler=run_events)


def _wait_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT,
                        help="seconds to watch the event stream for the reply (0: don't)")


def run_worker(args: argparse.Namespace) -> int:
    from llm_pool.runtime import proxy_env

    argv = [os.path.join(os.path.dirname(sys.executable), "dramatiq"), "worker.actors",
            "--processes", str(args.processes), "--threads", str(args.threads)]
    os.execve(argv[0], argv, proxy_env())


def _actors_and_store() -> tuple[Any, Any]:
    from worker.actors import actors, settings
    from worker.broker import redis_client
    from worker.redis_store import RedisStore

    return actors, RedisStore(redis_client(settings.redis_url), settings.namespace)


def _last_id(store: Any, conversation: str) -> str:
    entries: Any = store.client.xrevrange(store.stream_key(conversation), count=1)
    return entries[0][0].decode() if entries else "0-0"


def _print_event(event: dict[str, Any]) -> None:
    data = event["data"]
    if event["type"] == "reply":
        print(f"[reply:{data.get('status')}] {data.get('text')}", flush=True)
    else:
        print(f"[{event['type']}] {json.dumps(data)}", flush=True)


def _watch(store: Any, conversation: str, after: str, message_id: str | None,
           wait: float) -> int:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for entry_id, event in store.read_events(conversation, after, block_ms=500):
            after = entry_id
            _print_event(event)
            if event["type"] == "reply" and message_id in (None, event["message_id"]):
                return 0
    print(f"no reply within {wait:.0f} s (is `pool worker` running?)", file=sys.stderr)
    return 1


def run_send(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from worker.models import InboundMessage

    try:
        message = InboundMessage(tenant=args.tenant, conversation_id=args.conversation,
                                 agent_id=args.agent, text=args.text,
                                 message_id=args.message_id or uuid.uuid4().hex)
    except ValidationError as exc:
        print(f"pool send: invalid message: {exc}", file=sys.stderr)
        return 2
    actors, store = _actors_and_store()
    after = _last_id(store, message.conversation_id)
    actors.handle_message.send(message.model_dump())
    print(f"queued message {message.message_id} for {message.agent_id}", flush=True)
    if not args.wait:
        return 0
    return _watch(store, message.conversation_id, after, message.message_id, args.wait)


def run_confirm(args: argparse.Namespace) -> int:
    from worker.models import ConfirmMessage

    answer = ConfirmMessage(conversation_id=args.conversation, approved=args.approved,
                            note=args.note, decided_by=args.by or os.environ.get("USER"))
    actors, store = _actors_and_store()
    after = _last_id(store, answer.conversation_id)
    actors.confirm.send(answer.model_dump())
    print(f"sent {'yes' if answer.approved else 'no'} for {answer.conversation_id}", flush=True)
    return _watch(store, answer.conversation_id, after, None, args.wait) if args.wait else 0


def run_events(args: argparse.Namespace) -> int:
    _, store = _actors_and_store()
    after = "0-0"
    while True:
        block = 1000 if args.follow else None
        entries = store.read_events(args.conversation, after, block_ms=block)
        for entry_id, event in entries:
            after = entry_id
            _print_event(event)
        if not args.follow and not entries:
            return 0
