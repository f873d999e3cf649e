"""The SDK-side commands, for a service's shell: ``pool ask ALIAS PROMPT`` (one chat
completion, the way a service calls the gateway) and ``pool models`` (the aliases the
key may call). They run on the base install (``pip install llm-pool``), with the
proxy at ``$POOL_PROXY_URL`` and the tenant key in ``$POOL_API_KEY``.

``ask`` prints the answer to stdout (as it arrives with ``--stream``); who answered
(the deployment, after fallbacks), the tokens and the cost go to stderr, so
``pool ask fast "..." > answer.txt`` keeps the answer alone. An SDK error is one
line on stderr and exit code 1 (2 when no key is set).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk import Gateway

__all__ = ["register"]

ASK = ("One chat completion through the proxy at $POOL_PROXY_URL with the tenant key in "
       "$POOL_API_KEY. The answer goes to stdout; the deployment that answered, tokens and "
       "cost to stderr.")


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proxy-url", default=None,
                        help="the proxy (default: $POOL_PROXY_URL, else http://127.0.0.1:4000)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for each attempt (default: %(default)s)")


def register(subparsers: Any) -> None:
    ask = subparsers.add_parser("ask", description=ASK,
                                help="ask a model alias through the gateway with the SDK")
    ask.add_argument("alias", help="the model alias to ask, e.g. fast or quality")
    ask.add_argument("prompt", help="the user message")
    ask.add_argument("--system", default=None, help="a system message to put first")
    ask.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    ask.add_argument("--max-tokens", type=int, default=None,
                     help="largest answer, in tokens (default: the proxy's)")
    _connection(ask)
    ask.set_defaults(handler=run_ask)

    models = subparsers.add_parser("models", help="the model aliases your key may call")
    _connection(models)
    models.set_defaults(handler=run_models)


def _with_gateway(command: str, args: argparse.Namespace,
                  body: Callable[[Gateway], None]) -> int:
    """Run ``body`` with a gateway client; an SDK error is one line on stderr."""
    from sdk import AuthError, Gateway, SDKError

    try:
        gateway = Gateway(base_url=args.proxy_url, timeout=args.timeout)
    except AuthError as exc:
        print(f"pool {command}: {exc} (a tenant key, from `pool keys create`)", file=sys.stderr)
        return 2
    try:
        with gateway:
            body(gateway)
    except SDKError as exc:
        print(f"pool {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_ask(args: argparse.Namespace) -> int:
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    params = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}

    def ask(gateway: Gateway) -> None:
        if args.stream:
            with gateway.stream(args.alias, messages, **params) as stream:
                for delta in stream:
                    print(delta, end="", flush=True)
                completion = stream.completion
            print()
        else:
            completion = gateway.complete(args.alias, messages, **params)
            print(completion.text)
        cost = "unknown" if completion.cost is None else f"{completion.cost:.6f} USD"
        print(f"[{completion.alias} -> {completion.deployment or completion.model}; "
              f"{completion.usage.prompt_tokens}+{completion.usage.completion_tokens} tokens; "
              f"cost {cost}; {completion.latency_ms:.0f} ms]", file=sys.stderr)

    return _with_gateway("ask", args, ask)


def run_models(args: argparse.Namespace) -> int:
    def models(gateway: Gateway) -> None:
        print("\n".join(gateway.aliases()))

    return _with_gateway("models", args, models)
