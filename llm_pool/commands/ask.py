"""``pool ask ALIAS PROMPT``: one chat completion through the gateway with the SDK,
the way a service calls it. Runs on the base install (``pip install llm-pool``).

The answer goes to stdout (streamed as it arrives with ``--stream``); who answered
(the deployment, after fallbacks), the tokens and the cost go to stderr, so
``pool ask fast "..." > answer.txt`` keeps the answer alone. An SDK error is one
line on stderr and exit code 1 (2 when no key is set).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

DESCRIPTION = ("One chat completion through the proxy at $POOL_PROXY_URL with the tenant key "
               "in $POOL_API_KEY. The answer goes to stdout; the deployment that answered, "
               "tokens and cost to stderr.")


def register(subparsers: Any) -> None:
    ask = subparsers.add_parser("ask", description=DESCRIPTION,
                                help="ask a model alias through the gateway with the SDK")
    ask.add_argument("alias", help="the model alias to ask, e.g. fast or quality")
    ask.add_argument("prompt", help="the user message")
    ask.add_argument("--system", default=None, help="a system message to put first")
    ask.add_argument("--stream", action="store_true",
                     help="print the answer as it arrives")
    ask.add_argument("--max-tokens", type=int, default=None,
                     help="largest answer, in tokens (default: the proxy's)")
    ask.add_argument("--proxy-url", default=None,
                     help="the proxy (default: $POOL_PROXY_URL, else http://127.0.0.1:4000)")
    ask.add_argument("--timeout", type=float, default=60.0,
                     help="seconds to wait for each attempt (default: %(default)s)")
    ask.set_defaults(handler=run_ask)


def run_ask(args: argparse.Namespace) -> int:
    from sdk import AuthError, Completion, Gateway, SDKError

    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    params = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
    try:
        gateway = Gateway(base_url=args.proxy_url, timeout=args.timeout)
    except AuthError as exc:
        print(f"pool ask: {exc} (a tenant key, from `pool keys create`)", file=sys.stderr)
        return 2
    try:
        with gateway:
            completion: Completion
            if args.stream:
                with gateway.stream(args.alias, messages, **params) as stream:
                    for delta in stream:
                        print(delta, end="", flush=True)
                    completion = stream.completion
                print()
            else:
                completion = gateway.complete(args.alias, messages, **params)
                print(completion.text)
    except SDKError as exc:
        print(f"pool ask: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    cost = "unknown" if completion.cost is None else f"{completion.cost:.6f} USD"
    print(f"[{completion.alias} -> {completion.deployment or completion.model}; "
          f"{completion.usage.prompt_tokens}+{completion.usage.completion_tokens} tokens; "
          f"cost {cost}; {completion.latency_ms:.0f} ms]", file=sys.stderr)
    return 0
