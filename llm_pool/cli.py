"""``pool``: the one command line for operators and SDK users.

Each group of subcommands lives in its own module exposing
``register(subparsers)``; add a module to :data:`COMMAND_MODULES` to add commands.
A command that needs an optional part of the distribution sets ``extra=`` as a
parser default (see :mod:`llm_pool.extras`); its module imports that part inside
the handler only, so ``pool --help`` and the SDK-side commands run on the base
install.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from llm_pool.extras import missing_extra_message

__all__ = ["COMMAND_ENV", "COMMAND_MODULES", "build_parser", "main", "run"]

COMMAND_MODULES = (
    "llm_pool.commands.client",
    "llm_pool.commands.runtime",
    "llm_pool.commands.gateway",
    "llm_pool.commands.conversations",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pool",
        description="llm-pool: LLM gateway (stock LiteLLM proxy), tenants/spend, agent workers.",
        epilog="The base install (pip install llm-pool) runs `ask`, `models` and `provider`; "
               "the other commands name the extra they need (llm-pool[proxy], [worker], [all]).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


# What every ``pool`` command sets before anything imports LiteLLM: the local cost map
# (never a download at import: 3-8 s and warnings offline), and no ``.env`` read behind the
# operator's back (LiteLLM's load_dotenv() at import is off outside LITELLM_MODE=DEV).
# The proxy gets the same (``llm_pool.runtime.BASE_ENV``).
COMMAND_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION"}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.update(COMMAND_ENV)
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run a parsed command: first check that its extra is installed."""
    missing = missing_extra_message(args.command, getattr(args, "extra", None))
    if missing is not None:
        print(missing, file=sys.stderr)
        return 2
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
