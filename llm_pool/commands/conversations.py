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
DEFAULT_THREADS = 64  # per worker process


def register(subparsers: Any) -> None:
    work = subparsers.add_parser("worker", help="run Dramatiq workers (dramatiq worker.actors)")
    work.add_argument("--processes", type=int, default=1,
                      help="worker processes (default: %(default)s)")
    work.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                      help="messages in flight per process (async actors: the threads only "
                           "wait; the agents share one event loop)")
    work.add_argument("--metrics-port", type=int, default=None,
                      help="serve Prometheus metrics (Dramatiq's and ours) on this port")
    work.add_argument("--metrics-host", default="0.0.0.0",
                      help="address of the metrics server (default: %(default)s)")
    work.set_defaults(handler=run_worker, extra="worker")

    send = subparsers.add_parser("send", help="queue a user message for an agent")
    send.add_argument("text", help="the user's message")
    send.add_argument("--tenant", required=True, help="the tenant the message belongs to")
    send.add_argument("--conversation", required=True, help="conversation id")
    send.add_argument("--agent", default="helpdesk", help="agent id from the agents file")
    send.add_argument("--message-id", default=None, help="default: a new uuid")
    _wait_args(send)
    send.set_defaults(handler=_one_line(run_send), extra="worker")

    confirm = subparsers.add_parser(
        "confirm", help="answer a pending confirmation",
        description="Answer every pending call (--yes/--no) or each by its id (the ids are in "
                    "the confirmation_required event): --approve ID [--args JSON] ... "
                    "--decline ID [--note TEXT] ...")
    confirm.add_argument("conversation", help="conversation id")
    confirm.add_argument("--yes", dest="approved", action="store_const", const=True,
                         default=None, help="approve every pending call")
    confirm.add_argument("--no", dest="approved", action="store_const", const=False,
                         help="decline every pending call")
    confirm.add_argument("--approve", metavar="CALL_ID", action=_Step,
                         help="approve one call (repeatable)")
    confirm.add_argument("--args", metavar="JSON", action=_Step,
                         help="run the call approved just before with these arguments")
    confirm.add_argument("--decline", metavar="CALL_ID", action=_Step,
                         help="decline one call (repeatable)")
    confirm.add_argument("--for-run", action=_Step, nargs=0, default=None,
                         help="after --approve CALL_ID: approve that tool for the rest of the "
                              "run (its later calls for this message run without asking); "
                              "with --yes: every pending tool")
    confirm.add_argument("--note", action=_Step, default=None,
                         help="after --decline: told to the model for that call; "
                              "otherwise: for the whole answer")
    confirm.add_argument("--by", default=None, help="who decided (audit log)")
    _wait_args(confirm)
    confirm.set_defaults(handler=_one_line(run_confirm), extra="worker")

    events = subparsers.add_parser("events", help="print a conversation's event stream")
    events.add_argument("conversation", help="conversation id")
    events.add_argument("--follow", action="store_true",
                        help="keep waiting for new events (Ctrl-C to stop)")
    events.add_argument("--json", action="store_true",
                        help="one JSON object per event (id, time, type, message_id, data)")
    events.set_defaults(handler=_one_line(run_events), extra="worker")


def _one_line(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from worker.errors import WorkerConfigError

        try:
            code: int = handler(args)
        except (Unreachable, WorkerConfigError) as exc:
            print(f"pool: {exc}", file=sys.stderr)
            return 1
        return code

    return run


class _Step(argparse.Action):
    """Keeps --approve/--args/--decline/--note in the order given (``args.steps``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        steps = list(getattr(namespace, "steps", None) or [])
        steps.append((self.dest, values))
        namespace.steps = steps


def _decisions(steps: list[tuple[str, Any]]
               ) -> tuple[dict[str, dict[str, Any]], str | None, bool]:
    """(per-call decisions, the answer's note, --for-run for every call) from the
    ordered steps; ValueError when --args or --for-run does not follow an --approve
    (--for-run: or come with --yes), or --args is not a JSON object."""
    decisions: dict[str, dict[str, Any]] = {}
    last: tuple[str, str] | None = None
    note = None
    for_all = False
    for kind, value in steps:
        if kind == "for_run":
            if last is None:
                for_all = True
            elif last[0] != "approve":
                raise ValueError("--for-run must follow an --approve CALL_ID (or go with --yes)")
            else:
                decisions[last[1]]["for_run"] = True
        elif kind in ("approve", "decline"):
            decisions[value] = {"approve": kind == "approve"}
            last = (kind, value)
        elif kind == "args":
            if last is None or last[0] != "approve":
                raise ValueError("--args must follow an --approve CALL_ID")
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError("--args must be a JSON object")
            decisions[last[1]]["arguments"] = parsed
        elif last is not None and last[0] == "decline":
            decisions[last[1]]["note"] = value
        else:
            note = value
    return decisions, note, for_all


def _wait_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT,
                        help="seconds to watch the event stream for the reply (0: don't)")


def run_worker(args: argparse.Namespace) -> int:
    from llm_pool.runtime import proxy_env, worker_metrics_env
    from worker.broker import STOP_GRACE_SECONDS, persistence_warning, redis_client
    from worker.errors import WorkerConfigError
    from worker.settings import WorkerSettings

    try:
        settings = WorkerSettings.from_env().require_proxy_key()
    except WorkerConfigError as exc:
        print(f"pool worker: {exc}", file=sys.stderr)
        return 2
    warning = persistence_warning(redis_client(settings.redis_url))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    env = proxy_env()
    module = "worker.actors"
    if args.metrics_port is not None:
        module = "worker.metrics"
        env.update(worker_metrics_env(args.metrics_host, args.metrics_port))
    # a worker process stops within STOP_GRACE_SECONDS of SIGTERM (worker.broker.StopInTime)
    shutdown_ms = int(STOP_GRACE_SECONDS * 1000) - 1000
    argv = [os.path.join(os.path.dirname(sys.executable), "dramatiq"), module,
            "--processes", str(args.processes), "--threads", str(args.threads),
            "--worker-shutdown-timeout", str(shutdown_ms)]
    os.execve(argv[0], argv, env)


class Unreachable(Exception):
    """Redis cannot be reached: one line on stderr, exit 1 (see :func:`_reachable`)."""


REACH_TIMEOUT = 3.0  # seconds; the store's own client rides out outages for 30 s


def _reachable(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=REACH_TIMEOUT,
                             socket_timeout=REACH_TIMEOUT).ping()
    except redis.RedisError as exc:
        raise Unreachable(f"cannot reach Redis at {url}: {exc}") from None


def _actors_and_store() -> tuple[Any, Any]:
    from worker.settings import WorkerSettings

    _reachable(WorkerSettings.from_env().redis_url)
    from worker.actors import actors, settings
    from worker.broker import redis_client
    from worker.redis_store import RedisStore

    return actors, RedisStore(redis_client(settings.redis_url), settings.namespace,
                              settings.event_retention)


def _last_id(store: Any, conversation: str) -> str:
    entries: Any = store.client.xrevrange(store.stream_key(conversation), count=1)
    return entries[0][0].decode() if entries else "0-0"


def _when(entry_id: str) -> str:
    """The UTC time of a stream entry (its id starts with the milliseconds)."""
    millis = int(entry_id.split("-", 1)[0])
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis / 1000)) + \
        f".{millis % 1000:03d}Z"


def _rounded(value: Any, key: str = "") -> Any:
    """Figures for people: 4 significant digits, epoch seconds (``*_at``) as UTC times."""
    if isinstance(value, dict):
        return {k: _rounded(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        if key.endswith("_at") and value > 1e9:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
        return float(f"{value:.4g}")
    return value


def _print_event(event: dict[str, Any], entry_id: str, as_json: bool = False) -> None:
    data = event["data"]
    if as_json:
        print(json.dumps({"id": entry_id, "time": _when(entry_id), "type": event["type"],
                          "message_id": event["message_id"], "data": data}), flush=True)
        return
    head = f"{_when(entry_id)} {event['message_id']}"
    if event["type"] == "reply":
        print(f"{head} [reply:{data.get('status')}] {data.get('text')}", flush=True)
    else:
        print(f"{head} [{event['type']}] {json.dumps(_rounded(data))}", flush=True)


def _watch(store: Any, conversation: str, after: str, message_id: str | None,
           wait: float) -> int:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for entry_id, event in store.read_events(conversation, after, block_ms=500):
            after = entry_id
            _print_event(event, entry_id)
            if event["type"] == "reply" and message_id in (None, event["message_id"]):
                return 1 if event["data"].get("status") == "refused" else 0
            if event["type"] == "dead_lettered" and message_id in (None, event["message_id"]):
                print(f"dead-lettered: {event['data'].get('cause')}", file=sys.stderr)
                return 1
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
    from worker.agents import load_agents
    from worker.settings import WorkerSettings

    agents_file = WorkerSettings.from_env().agents_file
    known = load_agents(agents_file)
    if message.agent_id not in known:
        print(f"pool send: unknown agent {message.agent_id!r} (agents in {agents_file}: "
              f"{', '.join(sorted(known))})", file=sys.stderr)
        return 2
    actors, store = _actors_and_store()
    after = _last_id(store, message.conversation_id)
    actors.handle_message.send(message.model_dump())
    print(f"queued message {message.message_id} for {message.agent_id}", flush=True)
    if not args.wait:
        return 0
    return _watch(store, message.conversation_id, after, message.message_id, args.wait)


def run_confirm(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from worker.models import ConfirmMessage

    try:
        decisions, note, for_run = _decisions(getattr(args, "steps", None) or [])
        if args.approved is None and not decisions:
            raise ValueError("say --yes or --no (every pending call), or decide call by call "
                             "with --approve CALL_ID / --decline CALL_ID")
        answer = ConfirmMessage.model_validate({
            "conversation_id": args.conversation, "approved": args.approved,
            "decisions": decisions or None, "note": note, "for_run": for_run,
            "decided_by": args.by or os.environ.get("USER"), "decision_id": uuid.uuid4().hex})
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        print(f"pool confirm: invalid answer: {exc}", file=sys.stderr)
        return 2
    actors, store = _actors_and_store()
    if store.get_pending(answer.conversation_id) is None:
        print(f"pool confirm: nothing is waiting for a confirmation in conversation "
              f"{answer.conversation_id} (answered already, expired, or never asked)",
              file=sys.stderr)
        return 1
    after = _last_id(store, answer.conversation_id)
    actors.confirm.send(answer.model_dump())
    what = (("yes" if answer.approved else "no") + (" for the run" if answer.for_run else "")
            if answer.decisions is None
            else ", ".join(f"{'approve' if d.approve else 'decline'} {cid}"
                           + (" for the run" if d.for_run else "")
                           for cid, d in answer.decisions.items()))
    print(f"sent {what} for {answer.conversation_id}", flush=True)
    return _watch(store, answer.conversation_id, after, None, args.wait) if args.wait else 0


def run_events(args: argparse.Namespace) -> int:
    _, store = _actors_and_store()
    after = "0-0"
    while True:
        block = 1000 if args.follow else None
        entries = store.read_events(args.conversation, after, block_ms=block)
        for entry_id, event in entries:
            after = entry_id
            _print_event(event, entry_id, args.json)
        if not args.follow and not entries:
            if after == "0-0":
                print(f"pool events: no events for conversation {args.conversation} (no such "
                      "conversation, or its events expired: POOL_EVENT_RETENTION)",
                      file=sys.stderr)
                return 1
            return 0
