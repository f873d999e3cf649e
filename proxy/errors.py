"""Errors of the gateway code (``proxy/``).

One root, :class:`GatewayError`; every subclass carries the context a caller
needs to act on it::

    GatewayError
    ├── ConfigError            bad knob value in the environment (``name``)
    ├── StoreUnavailable       PostgreSQL cannot be reached or failed (``cause``)
    ├── InvalidInput           bad operator input: a name, a budget, a date (``field``)
    ├── TenantExists           ``pool tenants add`` of a name already taken (``tenant``)
    ├── TenantNotFound         no tenant of that name (``tenant``)
    └── KeyNotFound            no key matches a key, prefix or label (``ref``)
        └── AmbiguousKey       several keys match; the matches are listed (``matches``)

What a *client of the proxy* sees is not one of these but the OpenAI-shaped
JSON the proxy emits for a ``ProxyException`` (see :mod:`proxy.auth` for the
401 and :mod:`proxy.budget` for the 429 ``budget_exceeded``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AmbiguousKey",
    "ConfigError",
    "GatewayError",
    "InvalidInput",
    "KeyNotFound",
    "StoreUnavailable",
    "TenantExists",
    "TenantNotFound",
]


class GatewayError(Exception):
    """Root of every error raised by ``proxy/``."""


class ConfigError(GatewayError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class StoreUnavailable(GatewayError):
    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class InvalidInput(GatewayError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TenantExists(GatewayError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} already exists")
        self.tenant = tenant


class TenantNotFound(GatewayError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"no tenant named {tenant!r} (see `pool tenants list`)")
        self.tenant = tenant


class KeyNotFound(GatewayError):
    def __init__(self, ref: str, message: str | None = None) -> None:
        super().__init__(message or f"no active key matches {ref!r} (a full key, its prefix, "
                                    "or its label)")
        self.ref = ref


class AmbiguousKey(KeyNotFound):
    def __init__(self, ref: str, matches: Sequence[str]) -> None:
        listed = ", ".join(matches)
        super().__init__(ref, f"{ref!r} matches {len(matches)} active keys ({listed}); "
                              "give the full key or a longer prefix")
        self.matches = tuple(matches)
