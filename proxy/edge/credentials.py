"""Request-body fields a tenant may never send: credentials, upstream routing, prices,
router controls, logging switches.

The gateway decides which upstream a request reaches, with which key, at which
price, how often it is retried, where it falls back, whether it is cached or mocked,
and that it is logged (one spend row per call). A body field that would change any of
that is refused (400 naming it) on
every model route, wherever LiteLLM would read it: at the top level, and inside
``metadata``, ``litellm_metadata``, ``extra_body`` and ``litellm_embedding_config``
(LiteLLM spreads or reads those too). Which other fields may pass is decided by the
closed body schemas (:mod:`proxy.edge.validation`, docs/request-rules.md).

A field is credential-like when (see :func:`refused_field`):

- its name is in :data:`REFUSED_NAMES` (our list), or in LiteLLM's own list of
  request-body fields it refuses (``api_base``, ``user_config``, the
  observability hosts and keys, the per-token price overrides ...);
- it starts with a provider credential prefix or an internal one
  (:data:`REFUSED_PREFIXES`: ``aws_``, ``vertex_``, ``azure_`` ..., ``litellm_``,
  ``mock_``, ``user_api_key``);
- it ends like a secret (:data:`REFUSED_SUFFIXES`: ``_api_key``, ``_secret``,
  ``_token``, ``_password`` ...) or is priced (``_cost_per_...``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["NESTED_KEYS", "REFUSED_NAMES", "REFUSED_PREFIXES", "REFUSED_SUFFIXES",
           "find_refused", "refused_field"]

REFUSED_NAMES = frozenset({
    # credentials
    "api_key", "api_token", "token", "access_token", "id_token", "refresh_token", "password",
    "secret", "client_id", "client_secret", "tenant_id", "organization", "project",
    "credentials", "litellm_credential_name", "azure_ad_token", "azure_ad_token_provider",
    # where the request goes, and how
    "api_base", "base_url", "api_version", "custom_llm_provider", "deployment_url",
    "model_list", "user_config", "litellm_params", "headers", "extra_headers",
    "configurable_clientside_auth_params", "use_chat_completions_api", "use_litellm_proxy",
    "region_name", "s3_endpoint_url", "sagemaker_base_url", "api_endpoint",
    # what it costs, and what is logged (``no-log`` would skip the spend row)
    "input_cost_per_token", "output_cost_per_token", "input_cost_per_second",
    "output_cost_per_second", "turn_off_message_logging", "no_log", "secret_fields",
    "proxy_server_request", "standard_logging_object",
    # the router's: retries, timeouts, fallbacks, cooldowns, caching, deployment choice
    "num_retries", "max_retries", "timeout", "stream_timeout", "request_timeout",
    "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
    "cooldown_time", "allowed_fails", "retry_policy", "routing_strategy", "caching", "cache",
    "specific_deployment", "deployment_id", "model_group",
})
REFUSED_PREFIXES = ("aws_", "vertex_", "azure_", "bedrock_", "watsonx_", "sagemaker_",
                    "databricks_", "oci_", "langfuse_", "langsmith_", "litellm_", "mock_",
                    "user_api_key")
REFUSED_SUFFIXES = ("_api_key", "_api_base", "_base_url", "_secret", "_secret_key",
                    "_access_key", "_access_key_id", "_private_key", "_token", "_password",
                    "_credentials", "_credential", "_endpoint", "_webhook_url")
PRICED = re.compile(r"_cost_per_|^cost_per_")
NESTED_KEYS = ("metadata", "litellm_metadata", "extra_body", "litellm_embedding_config")


@functools.cache
def _litellm_refused() -> frozenset[str]:
    from proxy.plugin.internals import litellm_banned_body_params

    return frozenset(litellm_banned_body_params())


@functools.lru_cache(maxsize=4096)  # field names repeat: a dict lookup per field
def refused_field(name: str) -> bool:
    """True for a body field name a tenant may not send (see the module docstring)."""
    lowered = name.lower().replace("-", "_")
    return (lowered in REFUSED_NAMES or lowered.startswith(REFUSED_PREFIXES)
            or lowered.endswith(REFUSED_SUFFIXES) or PRICED.search(lowered) is not None
            or name in _litellm_refused())


def _fields(body: Mapping[str, Any], depth: int = 2) -> Iterator[str]:
    """Field paths of ``body`` and of its containers LiteLLM reads (two levels:
    ``extra_body.metadata.x`` too)."""
    for key in body:
        yield str(key)
    for nested in NESTED_KEYS if depth else ():
        inner = body.get(nested)
        if isinstance(inner, Mapping):
            yield from (f"{nested}.{path}" for path in _fields(inner, depth - 1))


def find_refused(body: Mapping[str, Any]) -> str | None:
    """The first refused field of ``body`` (``"metadata.api_key"`` when nested), or None."""
    for path in _fields(body):
        if refused_field(path.rsplit(".", 1)[-1]):
            return path
    return None
