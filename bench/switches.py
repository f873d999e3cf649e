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



def _replace(owner: Any, name: str, value: Any) -> None:
    setattr(owner, name, value)


async def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _patch() -> None:
    off = frozenset(name for name in os.environ.get("POOL_BENCH_OFF", "").split(",") if name)
    assert not off - set(SWITCHES), f"unknown switches: {sorted(off - set(SWITCHES))}"
    from proxy.edge import anthropic_errors, guard
    from proxy.plugin import metrics

    if "edge" in off:
        _replace(guard, "install", lambda *args, **kwargs: False)
    if "anthropic_layer" in off:
        _replace(anthropic_errors, "install", lambda *args, **kwargs: False)
    if "our_metrics" in off:
        _replace(metrics, "instrument", lambda gateway, poll=True: metrics.Instrumented(gateway))
    if "journal" in off:
        from proxy.spend.journal import SpendJournal

        _replace(SpendJournal, "start", lambda self: None)

    from proxy.plugin import auth, gateway

    if "body_checks" in off:
        _replace(auth, "check_body", lambda *args, **kwargs: None)
        _replace(auth, "check_model", lambda *args, **kwargs: None)
        _replace(auth, "check_tags", lambda *args, **kwargs: None)
        _replace(auth, "_check_tenant_headers", lambda request: None)
    if "caps" in off:
        _replace(auth, "check_caps", lambda *args, **kwargs: None)
        _replace(gateway, "check_merged", lambda *args, **kwargs: None)
        _replace(gateway, "apply_output_limit", lambda *args, **kwargs: None)
    if "admission" in off:
        _replace(gateway.ProxyCallbacks, "_admit", _nothing)
    if "spend_callback" in off:
        _replace(gateway.ProxyCallbacks, "async_log_success_event", _nothing)
        _replace(gateway.ProxyCallbacks, "async_log_failure_event", _nothing)


_fixed: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``callbacks``: the gateway's, loaded after the patches (LiteLLM's ``getattr`` on
    this module is what applies them; importing the module alone does nothing)."""
    if name != "callbacks":
        raise AttributeError(name)
    if "callbacks" not in _fixed:
        _patch()
        from proxy.plugin.gateway import callbacks

        _fixed["callbacks"] = callbacks
    return _fixed["callbacks"]


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


__all__ = ["CONFIG_SWITCHES", "SWITCHES", "fixed_auth"]
