"""Bench-only start-up module: the gateway with some of its features switched off, to
measure what each one costs (``bench/costs.py``). Never part of a production set-up.

A variant config written by the bench names this module's :data:`callbacks` *instead of*
``proxy.plugin.gateway.callbacks`` (it is the same object, loaded after the patches
below), first in ``litellm_settings.callbacks``, so it is imported before anything of
ours. The features to switch off are read from ``POOL_BENCH_OFF`` (comma-separated names
of :data:`SWITCHES`), an environment variable only this module reads: the proxy's own
code has no switch that turns a check off, and a production config never loads ``bench``.

Two switches are config edits the bench makes itself, not patches: ``prometheus``
(LiteLLM's callback left out of ``callbacks``) and ``message_logging``
(``turn_off_message_logging: false``). ``custom_auth`` also names :func:`fixed_auth`
as the config's ``custom_auth``.
"""

from __future__ import annotations

import os
from typing import Any

SWITCHES = {
    "edge": "proxy/edge/guard.py EdgeGuard (routes, header filter, redaction, body bound)",
    "anthropic_layer": "proxy/edge/anthropic_errors.py ASGI layer",
    "body_checks": "custom_auth's body schema, model, tags and header checks",
    "caps": "per-request caps: at the edge (check_caps), merged (check_merged), output limit",
    "custom_auth": "custom_auth replaced by a fixed tenant identity (no key hash/lookup/checks)",
    "admission": "pre-call admission: rpm/tpm and budget reservation (settlement kept)",
    "spend_callback": "async_log_success/failure_event of ours (no settle, no spend row)",
    "journal": "the Redis spend-journal drainer (rows stay in the stream)",
    "our_metrics": "proxy/plugin/metrics.py: key-resolver wrappers and the poller thread",
    "prometheus": "LiteLLM's `prometheus` callback (config edit)",
    "message_logging": "turn_off_message_logging: false (config edit)",
}
CONFIG_SWITCHES = frozenset({"prometheus", "message_logging"})

OFF = frozenset(name for name in os.environ.get("POOL_BENCH_OFF", "").split(",") if name)
assert not OFF - set(SWITCHES), f"unknown switches: {sorted(OFF - set(SWITCHES))}"


async def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _patch() -> None:
    from proxy.edge import anthropic_errors, guard
    from proxy.plugin import metrics

    if "edge" in OFF:
        guard.install = lambda *args, **kwargs: False  # type: ignore[assignment]
    if "anthropic_layer" in OFF:
        anthropic_errors.install = lambda *args, **kwargs: False  # type: ignore[assignment]
    if "our_metrics" in OFF:
        metrics.instrument = (  # type: ignore[assignment]
            lambda gateway, poll=True: metrics.Instrumented(gateway))
    if "journal" in OFF:
        from proxy.spend.journal import SpendJournal

        SpendJournal.start = lambda self: None  # type: ignore[method-assign]

    from proxy.plugin import auth, gateway

    if "body_checks" in OFF:
        auth.check_body = lambda *args, **kwargs: None  # type: ignore[assignment]
        auth.check_model = lambda *args, **kwargs: None  # type: ignore[assignment]
        auth.check_tags = lambda *args, **kwargs: None  # type: ignore[assignment]
        auth._check_tenant_headers = lambda request: None  # type: ignore[assignment]
    if "caps" in OFF:
        auth.check_caps = lambda *args, **kwargs: None  # type: ignore[assignment]
        gateway.check_merged = lambda *args, **kwargs: None  # type: ignore[assignment]
        gateway.apply_output_limit = lambda *args, **kwargs: None  # type: ignore[assignment]
    if "admission" in OFF:
        gateway.ProxyCallbacks._admit = _nothing  # type: ignore[method-assign]
    if "spend_callback" in OFF:
        gateway.ProxyCallbacks.async_log_success_event = _nothing  # type: ignore[method-assign]
        gateway.ProxyCallbacks.async_log_failure_event = _nothing  # type: ignore[method-assign]


_patch()

from proxy.plugin.gateway import callbacks  # noqa: E402  (after the patches, on purpose)

_fixed: dict[str, Any] = {}


async def fixed_auth(request: Any, api_key: str | None) -> Any:
    """``custom_auth`` switched off: the tenant identity of the first key seen, resolved
    once, for every request (no key format gate, hash, cache, header or body checks)."""
    from proxy.edge.caps import Limits
    from proxy.plugin.gateway import proxy_state
    from proxy.storage.tenants import hash_key

    if "auth" not in _fixed:
        gw = proxy_state()
        entry = await gw.keys.resolve(hash_key(api_key or ""))
        assert entry.auth is not None and entry.identity is not None, "fixed_auth: bad key"
        auth = entry.auth.model_copy(deep=False)
        limits = Limits.of(entry.identity.caps, gw.settings.default_caps)
        auth.metadata = {**entry.auth.metadata, **limits.as_metadata(),
                         "pool_client_call_id": False}
        _fixed["auth"] = auth
    return _fixed["auth"].model_copy(deep=False)


__all__ = ["SWITCHES", "callbacks", "fixed_auth"]
