"""Errors of the gateway code (``proxy/``): one root, :class:`ProxyError`.

Every exception class defined in ``proxy/`` descends from it (a unit test walks the
modules), and each carries the context a caller needs to act on it::

    ProxyError
    ├── ConfigError            bad setting in the environment (``name``: the variable)
    ├── StoreUnavailable       PostgreSQL cannot be reached or failed (``cause``)
    ├── InvalidInput           bad operator input: a name, a budget, a date (``field``)
    ├── TenantExists           ``pool tenants add`` of a name already taken (``tenant``)
    ├── TenantNotFound         no tenant of that name (``tenant``)
    ├── KeyNotFound            no key matches a key, prefix or label (``ref``)
    │   └── AmbiguousKey       several keys match; the matches are listed (``matches``)
    ├── SharedDown             (proxy.storage.shared) Redis unreachable: callers fall back or refuse
    ├── _ConnectionFailure     (proxy.plugin.internals) stands in for a real connection failure
    │                          in LiteLLM's cooldown check; never raised
    └── RequestRefused         a refusal sent to the proxy's client as an HTTP error
        ├── Unauthorized       401 (proxy.plugin.auth)      bad, unknown or revoked key
        ├── Forbidden          403 (proxy.plugin.auth)      route not open to tenant keys
        ├── StoreDown          503 (proxy.plugin.auth)      key store away, key not cached
        ├── AuthFailed         500 (proxy.plugin.auth)      unexpected error inside ``custom_auth``
        ├── NotStarted         503 (proxy.plugin.auth)      not started by ``pool proxy``
        ├── ContextError       500 (proxy.context)          tenant context missing or malformed
        ├── BadRequest         400 (proxy.edge.validation) body refused (schema, credentials)
        ├── TooLarge           413 (proxy.edge.validation) body over ``POOL_MAX_REQUEST_MB``
        ├── CapExceeded        400 (proxy.edge.caps)      ``n``/``max_tokens``/prompt over a cap
        │   └── OutputLimitExceeded 400 (proxy.edge.caps) over the alias's model output limit
        ├── RefusedHeader      400 (proxy.edge.headers)   LiteLLM control header or query parameter
        ├── TwoKeys            401 (proxy.edge.headers)   two different keys in one request
        ├── UnknownModel       404 (proxy.edge.models)    ``model`` is not one alias
        ├── CallIdTaken        409 (proxy.admission.callids) request id used by another request
        ├── Unpriced           503 (proxy.admission.estimate) alias with an unpriced deployment
        ├── BudgetExceeded     429 (proxy.admission.budget)    monthly budget reached
        ├── RateLimited        429 (proxy.admission.limits)    rpm/tpm window full
        └── LimitsUnavailable  503 (proxy.admission.limits)    Redis away with fail-closed limits

A :class:`RequestRefused` carries what the client gets: the HTTP status (``code``, a
string as in LiteLLM's errors; ``status``, the int), the OpenAI error ``type``, ``param``,
``message`` and extra ``headers`` (``Retry-After``). None of these classes is LiteLLM's:
LiteLLM answers only its own ``ProxyException`` with a status (anything else from
``custom_auth`` or a hook becomes a bare 500), so :mod:`proxy.plugin.refusals` turns a
refusal into one at the two boundaries, ``custom_auth`` and the hooks. This module
never imports LiteLLM (the CLI uses it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "AUTH_ERROR",
    "BAD_REQUEST_ERROR",
    "BUDGET_EXCEEDED",
    "AmbiguousKey",
    "ConfigError",
    "InvalidInput",
    "KeyNotFound",
    "ProxyError",
    "RequestRefused",
    "StoreUnavailable",
    "TenantExists",
    "TenantNotFound",
]


class ProxyError(Exception):
    """Root of every error raised by ``proxy/``."""


# OpenAI error types of the refusals (LiteLLM's ProxyErrorTypes agree: a unit test)
BAD_REQUEST_ERROR = "bad_request_error"
AUTH_ERROR = "auth_error"
BUDGET_EXCEEDED = "budget_exceeded"


class RequestRefused(ProxyError):
    """A refusal the proxy's client receives as an HTTP error (see the module docstring);
    the keywords are those of LiteLLM's ``ProxyException``."""

    def __init__(self, *, message: str, type: str, param: str | None, code: int,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.param = param
        self.status = code
        self.code = str(code)
        self.headers = dict(headers or {})


class ConfigError(ProxyError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class StoreUnavailable(ProxyError):
    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class InvalidInput(ProxyError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TenantExists(ProxyError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} already exists")
        self.tenant = tenant


class TenantNotFound(ProxyError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"no tenant named {tenant!r} (see `pool tenants list`)")
        self.tenant = tenant


class KeyNotFound(ProxyError):
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
