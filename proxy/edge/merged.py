"""The request as LiteLLM will send it, checked again in the pre-call hook.

``custom_auth`` checks the body and headers a tenant sent (:mod:`proxy.edge.validation`,
:mod:`proxy.edge.headers`, :mod:`proxy.edge.models`). LiteLLM then builds the provider
call from them, merging in what it reads from headers, query and metadata
(``litellm.proxy.litellm_pre_call_utils.add_litellm_data_to_request``). What reaches
the pre-call hook (``data``) is that merged request, and :func:`check_merged` holds it to
the same rules, so a LiteLLM mechanism the edge did not foresee is refused rather than
served:

- ``model`` is still one alias;
- none of :data:`MERGED_REFUSED` is set (router controls, credentials, upstream
  routing, merged bodies and headers: what a client-side mechanism would have put there);
- ``n``, the output limit and the prompt bound are within the tenant's caps.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from proxy.context import TenantContext
from proxy.edge.caps import OutputLimit, check_fields
from proxy.edge.models import check_model
from proxy.edge.validation import BadRequest

__all__ = ["MERGED_REFUSED", "check_merged"]

MERGED_REFUSED = frozenset({
    "extra_body", "extra_headers", "headers", "extra_query",
    "num_retries", "max_retries", "timeout", "stream_timeout", "request_timeout",
    "keepalive_seconds", "client_side_timeout", "fallbacks", "context_window_fallbacks",
    "content_policy_fallbacks", "mock_response", "mock_tool_calls", "mock_timeout",
    "model_list", "user_config", "api_base", "base_url", "api_key", "api_version",
    "organization", "custom_llm_provider", "input_cost_per_token", "output_cost_per_token",
    "cache", "caching", "ttl", "no-log", "specific_deployment",
})


def check_merged(data: Mapping[str, Any], tenant: TenantContext,
                 aliases: Callable[[], Collection[str]], output_limit: OutputLimit) -> None:
    """Raise a 4xx (a ``RequestRefused``) when the merged request breaks a rule."""
    check_model(data, aliases)
    for name in MERGED_REFUSED:
        if data.get(name) not in (None, {}, []):
            raise BadRequest(f"invalid request: {name!r} reached the provider call from the "
                             "request; it is set by the gateway", param=name)
    check_fields(data, tenant.caps, tenant.tenant, output_limit=output_limit)
