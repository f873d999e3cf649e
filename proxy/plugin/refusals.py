"""The one place the gateway's refusals become LiteLLM's ``ProxyException``.

The edge and admission modules raise :class:`proxy.errors.RequestRefused` subclasses,
which know nothing of LiteLLM. LiteLLM answers only its own ``ProxyException`` with the
status, type, param, message and headers it carries (in the OpenAI error shape; the
Anthropic routes reshape it, :mod:`proxy.edge.anthropic_errors`) and turns any other
exception from ``custom_auth`` or a hook into a bare 500. So ``custom_auth``
(:mod:`proxy.plugin.auth`) and the pre-call hook (:mod:`proxy.plugin.gateway`) hand
LiteLLM :func:`to_litellm` of a refusal. ``ProxyException``'s signature is checked with
the other internals
(:data:`proxy.plugin.internals.SIGNATURES`).
"""

from __future__ import annotations

from litellm.proxy._types import ProxyException

from proxy.errors import RequestRefused

__all__ = ["to_litellm"]


def to_litellm(refusal: RequestRefused) -> ProxyException:
    """``refusal`` as LiteLLM's ``ProxyException``: same status, type, param, message and
    headers (the same dict: a failure hook adding ``Retry-After`` adds it to both)."""
    exc = ProxyException(message=refusal.message, type=refusal.type, param=refusal.param,
                         code=refusal.status, headers=refusal.headers)
    exc.__cause__ = refusal
    return exc
