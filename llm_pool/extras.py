"""Which optional part of the distribution a ``pool`` command needs.

``pip install llm-pool`` installs the SDK and the CLI core (``pool ask``,
``pool provider``); the gateway and the workers are extras (``pyproject.toml``):
``llm-pool[proxy]``, ``llm-pool[worker]``, ``llm-pool[all]``. A command sets
``extra=`` as a parser default; :func:`missing_extra_message` says, in one line,
which extra to install when a module of it is absent. The command modules import
these packages inside their handlers only, so ``pool --help`` runs without them.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "missing_extra_message", "missing_modules"]

_PROXY = ("litellm", "psycopg", "psycopg_pool", "redis", "prometheus_client", "yaml",
          "pydantic_settings")
_WORKER = ("dramatiq", "psycopg", "psycopg_pool", "redis", "prometheus_client", "yaml",
           "pydantic_settings")

# extra -> the import names it provides (what a command of that extra imports)
EXTRAS: dict[str, tuple[str, ...]] = {
    "proxy": _PROXY,
    "worker": _WORKER,
    "all": tuple(dict.fromkeys((*_PROXY, *_WORKER, "starlette", "uvicorn"))),
}


def missing_modules(extra: str) -> list[str]:
    """The import names of ``extra`` that are not installed."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def missing_extra_message(command: str, extra: str | None) -> str | None:
    """``None`` when ``command`` can run, else the one line to print."""
    if extra is None:
        return None
    missing = missing_modules(extra)
    if not missing:
        return None
    return (f"pool {command} needs the {extra} extra: pip install 'llm-pool[{extra}]' "
            f"(missing: {', '.join(missing)})")
