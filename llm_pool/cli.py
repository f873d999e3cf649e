"""``pool``: the one command line for operators.

Each group of subcommands lives in its own module exposing
``register(subparsers)``; add a module to :data:`COMMAND_MODULES` to add commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES = (
    "llm_pool.commands.runtime",
    "llm_pool.commands.gateway",
    "llm_pool.commands.conversations",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pool",
        description="llm-pool: LLM gateway (stock LiteLLM proxy), tenants/spend, agent workers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
