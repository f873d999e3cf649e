"""Every LiteLLM internal the gateway reaches into, in one place.

LiteLLM's documented extension points (``custom_auth``, ``callbacks``, router
settings) cover most of what the gateway needs. What they do not cover is here,
one small function per internal symbol, each saying why. An upgrade that moves a
symbol fails in ``tests/gateway/test_isolation_units.py`` with its name.

- :func:`proxy_app`: the proxy's FastAPI app, which the start-up wraps in the gateway's
  ASGI layers (:mod:`proxy.plugin.startup`; LiteLLM's own middleware stack untouched).
- The only changes made to LiteLLM's code, run by the start-up (never at import), each
  with a call-path test in ``tests/gateway/test_call_paths.py`` that drives LiteLLM's own
  code in-process and fails if LiteLLM stops calling it: :func:`install_patches` wraps
  five functions for four things (cooldown decision: two functions; fallback decision;
  the 422 fix; the stream-usage flag): five functions in four places. Everything else
  is read, subclassed or called, not changed.
- :func:`router_api_bases`, :func:`router_aliases`, :func:`group_deployments`: no longer
  LiteLLM's router: read from the YAML the proxy was started with
  (:mod:`proxy.plugin.deployments`), re-exported here under their old names.
- :func:`install_client_error_policy`: client-caused provider errors (4xx other
  than 408/429) neither cool a deployment down nor trigger fallbacks to another
  group: LiteLLM cools down on 401/404 and falls back on any error, so one
  tenant's bad request could take an alias away from every other tenant.
- :func:`install_client_error_policy` also keeps router timeouts out of the cooldown
  count: a tenant's long generation that runs past the timeout is that tenant's, not
  a provider fault another tenant should pay for.
- :func:`install_unprocessable_fix`: with ``drop_params: true``, an upstream 422
  that names no droppable parameter made LiteLLM's OpenAI handler fall out of its
  retry loop and return ``None`` (the client got HTTP 200 with body ``null``).
- :func:`litellm_banned_body_params`: LiteLLM's own list of request-body fields it
  refuses (credentials, endpoints, observability hosts, price overrides), so the
  gateway's body check (:mod:`proxy.edge.credentials`) refuses at least those, with a
  400 naming the field, on every model route.
- :func:`request_route`, :func:`read_request_body`: the route and the parsed body
  exactly as LiteLLM's own auth sees them (``root_path`` stripped; the body parsed
  once and cached on the request), so ``custom_auth`` checks what LiteLLM then serves.
- :func:`replace_request_headers`: the headers LiteLLM reads after ``custom_auth``
  (Starlette caches them on the request, LiteLLM on ``request.state``), so a tenant's
  request reaches LiteLLM with the allowlisted headers only (:mod:`proxy.edge.headers`).
- :func:`is_rejected_request`: LiteLLM's refusal of client-side credentials is a
  ``ValueError`` recognised only by its text; without Prisma it reached clients as 500.
- :func:`key_auth_metadata`: where LiteLLM copies ``UserAPIKeyAuth.metadata`` (the
  tenant, key and principal ``custom_auth`` set) into the logging payload.
- :func:`anthropic_error_response`: LiteLLM's Anthropic error shape, so the gateway's
  own errors on ``/v1/messages`` look like the rest.
- :func:`keep_answer_model`: LiteLLM's restamp of a stream chunk's ``model`` switched
  off for a request by its own metadata flag, so that the alias the gateway's hooks
  stamp (:mod:`proxy.plugin.answers`) is not replaced by the fallback group's name.
- :func:`install_stream_usage_flag`: a stream whose provider sent no usage is counted
  by LiteLLM's tokenizer in ``stream_chunk_builder``, silently; the wrapper marks the
  call (:data:`USAGE_ESTIMATED` in the logging object's details, the ``kwargs`` of the
  success callback) so its spend row says ``estimated``.
- :func:`forget_failed_attempt`: all of a request's attempts share one logging object.
  LiteLLM logs one failure per request on it (``has_logged_async_failure``), so a second
  failed provider call of one request (a retry, or a stream cut on the sibling after a first
  failure) reached no callback and had no spend row; and a stream cut mid-answer leaves its
  partial usage there (``combined_usage_object``), which the next attempt's log reported as
  its own (the answer after a fallback carried the cut attempt's tokens). Once the gateway
  has recorded a failed attempt (:mod:`proxy.plugin.gateway`) it clears both, and the sync
  twin of that flag (``has_logged_sync_failure``): the router counts a deployment's failures
  toward its cooldown in a sync failure callback, and counted a fallback deployment's only
  while the async flag stayed set; now each attempt's failure counts once, retries within a
  group included.
- :data:`UNROUTED_ERRORS`: the errors the router raises when it picked no deployment
  (every one cooling down; none that takes the request's parameters). A request's attempts
  share one logging object, whose ``api_base`` and ``model_id`` are those of another
  attempt when such an error is logged after a provider call (a retry or fallback of the
  same request): the row must name no deployment (:mod:`proxy.spend.rows`).
- :func:`stream_incomplete`: a Messages stream (native Anthropic) that ended in an
  ``event: error`` (or without ``message_stop``) is logged by LiteLLM as a success; the
  ``prompt_cache_response_complete`` flag it sets in the call's details says so.
- :func:`prometheus_logger`: LiteLLM's ``prometheus`` callback, per successful request,
  builds label sets for gauges of LiteLLM's own rate limiters and budgets, which the
  gateway does not run (its limits and budgets are its own, :mod:`proxy.admission`):
  40 % of that callback's CPU for series that stay empty. A subclass of
  ``PrometheusLogger`` overrides those three steps (private methods: their names are
  checked by a call-path test) and the YAML's ``callbacks`` name it instead of the
  ``"prometheus"`` string (``proxy.plugin.metrics.prometheus``).
- :func:`prometheus_settings_first`: the YAML's ``prometheus_*`` settings applied before
  LiteLLM makes that logger (it applies them in the YAML's order, the string's logger
  is made later, ours at ``callbacks``).
- :func:`mount_metrics`: LiteLLM mounts ``/metrics`` only for that string; the start-up
  calls the same private static, ``PrometheusLogger._mount_metrics_endpoint``.

:data:`SIGNATURES` lists each internal symbol with the parameters the gateway relies
on; ``tests/gateway/test_isolation_units.py`` imports and checks every one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from proxy.errors import ProxyError
from proxy.plugin.deployments import aliases as router_aliases
from proxy.plugin.deployments import api_bases as router_api_bases
from proxy.plugin.deployments import group_deployments

__all__ = [
    "AUTH_METADATA_KEY",
    "CLIENT_ERROR_STATUSES",
    "REJECTED_REQUEST",
    "SIGNATURES",
    "UNROUTED_ERRORS",
    "USAGE_ESTIMATED",
    "anthropic_error_response",
    "forget_failed_attempt",
    "group_deployments",
    "install_client_error_policy",
    "install_patches",
    "install_stream_usage_flag",
    "install_unprocessable_fix",
    "is_client_error",
    "is_connection_failure",
    "is_rejected_request",
    "is_timeout",
    "keep_answer_model",
    "key_auth_metadata",
    "litellm_banned_body_params",
    "mount_metrics",
    "prometheus_logger",
    "prometheus_logger_class",
    "prometheus_settings_first",
    "proxy_app",
    "read_request_body",
    "replace_request_headers",
    "request_route",
    "router_aliases",
    "router_api_bases",
    "stream_incomplete",
    "usage_estimated",
]

log = logging.getLogger("llm_pool.internals")

# Every internal symbol reached below: "module:attribute" -> the leading parameters the
# gateway relies on (None: not a function, it only has to exist).
SIGNATURES: dict[str, tuple[str, ...] | None] = {
    "litellm.proxy.proxy_server:app": None,
    "litellm.router_utils.cooldown_handlers:_should_run_cooldown_logic": (
        "litellm_router_instance", "deployment", "exception_status", "original_exception",
        "time_to_cooldown", "request_kwargs"),
    "litellm.router_utils.cooldown_handlers:_should_cooldown_deployment": (
        "litellm_router_instance", "deployment", "exception_status", "original_exception",
        "requested_model_group"),
    "litellm.router:Router.async_function_with_fallbacks_common_utils": ("self", "e"),
    "litellm.llms.openai.openai:drop_params_from_unprocessable_entity_error": ("e", "data"),
    "litellm.proxy.auth.auth_utils:_BANNED_REQUEST_BODY_PARAMS": None,
    "litellm.proxy.auth.auth_utils:get_request_route": ("request",),
    "litellm.proxy.auth.auth_utils:is_request_body_safe": (
        "request_body", "general_settings", "llm_router", "model"),
    "litellm.proxy.common_utils.http_parsing_utils:read_request_body": ("request",),
    "litellm.types.utils:StandardLoggingMetadata": None,
    "litellm.anthropic_interface.exceptions:AnthropicExceptionMapping.create_error_response": (
        "status_code", "message"),
    # the documented hooks the gateway implements or raises through, with the parameters
    # it overrides or passes (a changed hook signature is a silent no-op otherwise)
    "litellm.proxy._types:ProxyException.__init__": (
        "self", "message", "type", "param", "code", "headers"),
    "litellm.integrations.custom_logger:CustomLogger.async_pre_call_hook": (
        "self", "user_api_key_dict", "cache", "data", "call_type"),
    "litellm.integrations.custom_logger:CustomLogger.async_post_call_failure_hook": (
        "self", "request_data", "original_exception", "user_api_key_dict", "traceback_str"),
    "litellm.integrations.custom_logger:CustomLogger.async_post_call_response_headers_hook": (
        "self", "data", "user_api_key_dict", "response", "request_headers", "litellm_call_info"),
    "litellm.integrations.custom_logger:CustomLogger.async_log_success_event": (
        "self", "kwargs", "response_obj", "start_time", "end_time"),
    "litellm.integrations.custom_logger:CustomLogger.async_log_failure_event": (
        "self", "kwargs", "response_obj", "start_time", "end_time"),
    "litellm.constants:RETURN_RAW_MODEL_NAME_METADATA_KEY": None,
    "litellm.proxy.common_request_processing:should_return_raw_model_name": ("request_data",),
    "litellm.integrations.custom_logger:CustomLogger.async_post_call_success_hook": (
        "self", "data", "user_api_key_dict", "response"),
    "litellm.integrations.custom_logger:CustomLogger.async_post_call_streaming_iterator_hook": (
        "self", "user_api_key_dict", "response", "request_data"),
    "litellm:stream_chunk_builder": ("chunks", "messages", "start_time", "end_time",
                                     "logging_obj"),
    "litellm.proxy.auth.user_api_key_auth:_seed_request_destinations": (
        "user_api_key_dict", "request"),
    "litellm.integrations.prometheus:PrometheusLogger._mount_metrics_endpoint": None,
    # UNROUTED_ERRORS, matched by class name in the logging payload
    "litellm.types.router:RouterRateLimitError": None,
    "litellm.types.router:RouterRateLimitErrorBasic": None,
    "litellm.exceptions:UnsupportedParamsError": None,
}

# the router found no deployment to call: all cooling down (RouterRateLimitError; its
# Basic twin inside the router), or none supports the request's parameters
UNROUTED_ERRORS = frozenset({"RouterRateLimitError", "RouterRateLimitErrorBasic",
                             "UnsupportedParamsError"})
USAGE_ESTIMATED = "pool_usage_estimated"  # set in a call's details: no provider usage
REJECTED_REQUEST = "Rejected Request"  # how LiteLLM's body-safety ValueErrors begin
AUTH_METADATA_KEY = "user_api_key_auth_metadata"  # StandardLoggingMetadata's key

# 4xx a provider answers because of the request itself; 408 and 429 are the provider's
CLIENT_ERROR_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 413, 415, 422})


def proxy_app() -> Any:
    """``litellm.proxy.proxy_server.app``: the FastAPI app the ``litellm`` CLI serves."""
    from litellm.proxy.proxy_server import app

    return app


def is_client_error(exc: BaseException) -> bool:
    """True for a provider error caused by the request (see :data:`CLIENT_ERROR_STATUSES`).

    Context-window and content-policy errors are left to LiteLLM: they have fallbacks
    of their own (``context_window_fallbacks``, ``content_policy_fallbacks``)."""
    from litellm.exceptions import ContentPolicyViolationError, ContextWindowExceededError

    if isinstance(exc, ContextWindowExceededError | ContentPolicyViolationError):
        return False
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status in CLIENT_ERROR_STATUSES


class _ConnectionFailure(ProxyError):
    """Stands in for an ``APIConnectionError`` in the cooldown check: LiteLLM skips any
    exception whose text names that class."""


def _as_unavailable(exc: Exception) -> Exception:
    """A refused connection as LiteLLM's ``ServiceUnavailableError``, so the router's
    ``allowed_fails_policy`` (``ServiceUnavailableErrorAllowedFails``) counts it: LiteLLM
    1.108 never cools a lone deployment for an error type the policy does not name, and
    it has no entry for ``APIConnectionError``."""
    from litellm.exceptions import ServiceUnavailableError

    return ServiceUnavailableError(message=str(exc), llm_provider="", model="")


def _status(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def is_connection_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) is a failure to reach the provider:
    refused, reset, DNS, connect timeout. LiteLLM wraps these and many of its own errors
    alike as ``APIConnectionError``; only the real ones should cool a deployment down."""
    import httpx

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError):
            return True
        if type(seen).__name__ in ("ClientConnectorError", "ServerDisconnectedError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_timeout(exc: BaseException) -> bool:
    """True for the router's own timeout (``litellm.Timeout``): the request ran longer
    than ``timeout`` allows, which a tenant decides (a long generation), so it must not
    count toward a deployment's ``allowed_fails``. A refused or reset connection is not
    a timeout and still counts (:func:`is_connection_failure`)."""
    from litellm.exceptions import Timeout

    return isinstance(exc, Timeout) and not is_connection_failure(exc)


def install_client_error_policy() -> None:
    """Wrap ``litellm.router_utils.cooldown_handlers._should_run_cooldown_logic``: a client
    error status never runs the cooldown logic; a real connection failure does (LiteLLM
    skips every ``APIConnectionError``). Wrap ``Router.async_function_with_fallbacks_common_utils``:
    a client error is raised as is, with no fallback to another group. Retries within the
    group stay LiteLLM's: it does not retry 400/404/422 (``should_retry_this_error``)."""
    from litellm.router import Router
    from litellm.router_utils import cooldown_handlers

    should_run = cooldown_handlers._should_run_cooldown_logic
    if not getattr(should_run, "pool_wrapped", False):
        @functools.wraps(should_run)
        def run_cooldown_logic(litellm_router_instance: Any, deployment: str | None,
                               exception_status: str | int, original_exception: Exception,
                               time_to_cooldown: float | None = None,
                               request_kwargs: Mapping[str, object] | None = None) -> bool:
            if _status(exception_status) in CLIENT_ERROR_STATUSES or is_timeout(original_exception):
                return False
            if is_connection_failure(original_exception):
                original_exception = _ConnectionFailure(str(exception_status))
            return bool(should_run(litellm_router_instance, deployment, exception_status,
                                   original_exception, time_to_cooldown, request_kwargs))

        run_cooldown_logic.__dict__["pool_wrapped"] = True
        cooldown_handlers._should_run_cooldown_logic = run_cooldown_logic

    should_cool = cooldown_handlers._should_cooldown_deployment
    if not getattr(should_cool, "pool_wrapped", False):
        @functools.wraps(should_cool)
        def cool_deployment(litellm_router_instance: Any, deployment: str,
                            exception_status: str | int, original_exception: Exception,
                            requested_model_group: str | None = None) -> bool:
            if is_connection_failure(original_exception):
                original_exception = _as_unavailable(original_exception)
            return bool(should_cool(litellm_router_instance, deployment, exception_status,
                                    original_exception, requested_model_group))

        cool_deployment.__dict__["pool_wrapped"] = True
        cooldown_handlers._should_cooldown_deployment = cool_deployment

    fallbacks = Router.async_function_with_fallbacks_common_utils
    if not getattr(fallbacks, "pool_wrapped", False):
        @functools.wraps(fallbacks)
        async def no_fallback_for_client_errors(self: Any, e: Exception, *args: Any,
                                                **kwargs: Any) -> Any:
            if is_client_error(e):
                raise e
            return await fallbacks(self, e, *args, **kwargs)

        no_fallback_for_client_errors.__dict__["pool_wrapped"] = True
        Router.async_function_with_fallbacks_common_utils = (  # type: ignore[method-assign]
            no_fallback_for_client_errors)


def install_patches() -> None:
    """Every LiteLLM function the gateway changes (:func:`install_client_error_policy`,
    :func:`install_unprocessable_fix`, :func:`install_stream_usage_flag`);
    idempotent. Called by :mod:`proxy.plugin.startup`."""
    install_client_error_policy()
    install_unprocessable_fix()
    install_stream_usage_flag()  # a stream without provider usage: its row is estimated


def install_unprocessable_fix() -> None:
    """Wrap ``litellm.llms.openai.openai.drop_params_from_unprocessable_entity_error``:
    when the 422 names no parameter to drop, re-raise it (a retry would be the same
    request) instead of letting the caller's loop end and return ``None``."""
    from litellm.llms.openai import openai as module

    name = "drop_params_from_unprocessable_entity_error"
    drop: Callable[..., dict[str, object]] = getattr(module, name)
    if getattr(drop, "pool_wrapped", False):
        return

    @functools.wraps(drop)
    def drop_or_raise(e: Exception, data: Mapping[str, object]) -> dict[str, object]:
        kept = drop(e, data)
        if len(kept) == len(data):
            raise e
        return kept

    drop_or_raise.__dict__["pool_wrapped"] = True
    setattr(module, name, drop_or_raise)


def keep_answer_model(request_data: dict[str, Any]) -> None:
    """Switch LiteLLM's restamp of ``model`` off for this request: set
    ``litellm.constants.RETURN_RAW_MODEL_NAME_METADATA_KEY`` (its complexity router's
    "return the raw model name" flag) in the request's metadata, which
    ``common_request_processing.should_return_raw_model_name`` reads before each
    restamp (``proxy_server._restamp_streaming_chunk_model``: per stream chunk, after the
    callbacks' hooks, naming the fallback group after a fallback). The gateway's own
    hooks name the alias instead (:mod:`proxy.plugin.answers`)."""
    from litellm.constants import RETURN_RAW_MODEL_NAME_METADATA_KEY

    for name in ("litellm_metadata", "metadata"):
        bucket = request_data.get(name)
        if isinstance(bucket, dict):
            bucket[RETURN_RAW_MODEL_NAME_METADATA_KEY] = True
            return
    request_data["litellm_metadata"] = {RETURN_RAW_MODEL_NAME_METADATA_KEY: True}


def _reported_usage(chunk: Any) -> bool:
    usage = chunk.get("usage") if isinstance(chunk, dict) else getattr(chunk, "usage", None)
    if usage is None:
        return False
    counts = [usage.get(k) if isinstance(usage, dict) else getattr(usage, k, None)
              for k in ("prompt_tokens", "completion_tokens")]
    return any(isinstance(c, int) and c > 0 for c in counts)


def usage_estimated(details: Mapping[str, Any]) -> bool:
    """Whether :func:`install_stream_usage_flag` marked this call (its success ``kwargs``)
    or the streamed response it logs."""
    if details.get(USAGE_ESTIMATED):
        return True
    for name in ("complete_streaming_response", "async_complete_streaming_response"):
        hidden = getattr(details.get(name), "_hidden_params", None)
        if isinstance(hidden, dict) and hidden.get(USAGE_ESTIMATED):
            return True
    return False


FAILURE_LOGGED = "has_logged_async_failure"  # Logging.should_run_logging's once-per-request flag
SYNC_FAILURE_LOGGED = "has_logged_sync_failure"  # its twin: the router's cooldown count runs there
PARTIAL_USAGE = "combined_usage_object"  # Logging.record_partial_usage_for_failure's
STREAM_COMPLETE = "prompt_cache_response_complete"  # set by the Anthropic stream logging


def forget_failed_attempt(details: dict[str, Any]) -> None:
    """Once a failed attempt is recorded: let the request's next failed attempt reach the
    failure callbacks too, and keep this one's partial usage out of the next attempt's log
    (see the module docstring). ``details`` is the call's ``model_call_details``, the
    ``kwargs`` of ``async_log_failure_event``."""
    details.pop(FAILURE_LOGGED, None)
    details.pop(SYNC_FAILURE_LOGGED, None)
    details.pop(PARTIAL_USAGE, None)


def stream_incomplete(details: Mapping[str, Any]) -> bool:
    """A Messages stream LiteLLM logs as a success that ended in the provider's error event
    or without ``message_stop`` (False: complete, or not such a stream)."""
    return details.get(STREAM_COMPLETE) is False


def install_stream_usage_flag() -> None:
    """Wrap ``litellm.stream_chunk_builder`` (looked up on the module at the end of each
    stream): when no chunk carried the provider's usage, set :data:`USAGE_ESTIMATED` in
    the call's ``logging_obj.model_call_details``."""
    import litellm

    build = litellm.stream_chunk_builder
    if getattr(build, "pool_wrapped", False):
        return

    @functools.wraps(build)
    def build_and_flag(chunks: list[Any], *args: Any, **kwargs: Any) -> Any:
        built = build(chunks, *args, **kwargs)
        if built is None or not chunks or any(_reported_usage(c) for c in chunks):
            return built
        details = getattr(kwargs.get("logging_obj"), "model_call_details", None)
        if isinstance(details, dict):
            details[USAGE_ESTIMATED] = True
        hidden = getattr(built, "_hidden_params", None)  # LiteLLM's logging builds its own
        if isinstance(hidden, dict):  # response, without logging_obj: mark that one too
            hidden[USAGE_ESTIMATED] = True
        return built

    build_and_flag.__dict__["pool_wrapped"] = True
    litellm.stream_chunk_builder = build_and_flag


def litellm_banned_body_params() -> tuple[str, ...]:
    """``litellm.proxy.auth.auth_utils._BANNED_REQUEST_BODY_PARAMS`` (empty, with a
    warning, when this LiteLLM has no such list: the gateway's own list still applies)."""
    try:
        from litellm.proxy.auth.auth_utils import _BANNED_REQUEST_BODY_PARAMS
    except ImportError:  # pragma: no cover - another LiteLLM layout
        log.warning("internals: LiteLLM has no _BANNED_REQUEST_BODY_PARAMS; only the "
                    "gateway's own list of refused body fields applies")
        return ()
    return tuple(str(name) for name in _BANNED_REQUEST_BODY_PARAMS)


def request_route(request: Any) -> str:
    """``litellm.proxy.auth.auth_utils.get_request_route``: the route LiteLLM's auth and
    routing use (from the ASGI scope, ``root_path`` stripped), so the gateway's checks
    by route (tenant routes, body schemas, caps) never disagree with what LiteLLM serves."""
    from litellm.proxy.auth.auth_utils import get_request_route

    return str(get_request_route(request))


async def read_request_body(request: Any) -> Any:
    """``litellm.proxy.common_utils.http_parsing_utils.read_request_body``: the body as
    LiteLLM parses it (JSON or form), cached on the request so that the proxy's handler
    reads the same object afterwards instead of parsing the bytes a second time."""
    from litellm.proxy.common_utils.http_parsing_utils import read_request_body as read

    return await read(request)


CACHED_HEADERS = "_cached_headers"  # litellm ... http_parsing_utils.safe_get_request_headers


def replace_request_headers(request: Any, headers: list[tuple[bytes, bytes]]) -> None:
    """Make ``headers`` the request's headers for everything that reads them later:
    the ASGI scope (any new ``Request`` on it), Starlette's cache on this ``Request``
    (``_headers``) and LiteLLM's on ``request.state`` (``safe_get_request_headers``)."""
    request.scope["headers"] = headers
    request.__dict__.pop("_headers", None)
    state = request.scope.get("state")
    if isinstance(state, dict):
        state.pop(CACHED_HEADERS, None)


def is_rejected_request(exc: BaseException) -> bool:
    """True for LiteLLM's refusal of a body carrying ``api_base``, credentials or the
    like (``litellm.proxy.auth.auth_utils.is_request_body_safe``): a plain ``ValueError``
    told apart from others only by its text, :data:`REJECTED_REQUEST`."""
    return isinstance(exc, ValueError) and str(exc).startswith(REJECTED_REQUEST)


def key_auth_metadata(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """``payload["metadata"]["user_api_key_auth_metadata"]`` of a ``StandardLoggingPayload``:
    where LiteLLM puts the ``UserAPIKeyAuth.metadata`` that ``custom_auth`` returned
    (tenant, key, principal). Not a documented field; empty when absent."""
    metadata = payload.get("metadata") or {}
    found = metadata.get(AUTH_METADATA_KEY) if isinstance(metadata, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def anthropic_error_response(status: int, message: str) -> dict[str, Any]:
    """``litellm.anthropic_interface.exceptions.AnthropicExceptionMapping.create_error_response``:
    Anthropic's error body (``{"type": "error", "error": {"type": ..., "message": ...}}``)
    with LiteLLM's status-to-type mapping, so the gateway's refusals on the Anthropic
    routes match the errors LiteLLM itself sends there."""
    from litellm.anthropic_interface.exceptions import AnthropicExceptionMapping

    return dict(AnthropicExceptionMapping.create_error_response(status, message))


# PrometheusLogger steps that only feed LiteLLM's own rate limiters' and budgets' gauges
# (x-ratelimit-<key|team|project>-* headers of its v3 limiter, its per-key rpm/tpm
# limiter, remaining key/team/user/org budgets): the gateway runs none of them.
PROMETHEUS_UNUSED = ("_set_v3_rate_limit_allowed_and_used_metrics",
                     "_set_virtual_key_rate_limit_metrics",
                     "_increment_remaining_budget_metrics")


@functools.cache
def prometheus_logger_class() -> type[Any]:
    """A subclass of ``litellm.integrations.prometheus.PrometheusLogger`` whose
    :data:`PROMETHEUS_UNUSED` steps do nothing (an override, not a patch: LiteLLM's class
    is left as it is). Requests, failures, tokens, spend, latency, time to first token,
    deployment state, fallbacks and cooldowns are recorded as LiteLLM records them."""
    from litellm.integrations.prometheus import PrometheusLogger

    class GatewayPrometheusLogger(PrometheusLogger):
        """LiteLLM's ``prometheus`` callback less the gauges of limiters and budgets the
        gateway does not run (``internals.PROMETHEUS_UNUSED``)."""

        def _set_v3_rate_limit_allowed_and_used_metrics(self, *args: Any,
                                                         **kwargs: Any) -> None:
            return None

        def _set_virtual_key_rate_limit_metrics(self, *args: Any, **kwargs: Any) -> None:
            return None

        async def _increment_remaining_budget_metrics(self, *args: Any,
                                                      **kwargs: Any) -> None:
            return None

    return GatewayPrometheusLogger


@functools.cache
def prometheus_logger() -> Any:
    """The process's one :func:`prometheus_logger_class` instance (made at first use:
    making it registers LiteLLM's series in ``prometheus_client``'s registry)."""
    return prometheus_logger_class()()


def prometheus_settings_first(config: Path) -> None:
    """Set every ``litellm_settings`` key of ``config`` that names ``prometheus`` (labels
    excluded, buckets, series caps, ...) on ``litellm`` now, as LiteLLM sets them (plain
    ``setattr``, ``proxy_server.ProxyConfig.load_config``). LiteLLM applies the YAML's
    ``litellm_settings`` in order, and :func:`prometheus_logger`, made when it reaches
    ``callbacks``, reads them in its ``__init__`` (its collectors' label names are fixed
    then): a ``prometheus_exclude_labels`` after ``callbacks`` (or a YAML written with
    sorted keys) would be ignored. LiteLLM's ``"prometheus"`` string is made at first
    use, after all of them."""
    import litellm
    import yaml

    loaded = yaml.safe_load(config.read_text()) or {}
    settings = loaded.get("litellm_settings") if isinstance(loaded, Mapping) else None
    for key, value in (settings or {}).items():
        if isinstance(key, str) and "prometheus" in key:
            setattr(litellm, key, value)


def mount_metrics() -> bool:
    """``PrometheusLogger._mount_metrics_endpoint()``: LiteLLM's ``/metrics`` app (its
    registry, or with ``PROMETHEUS_MULTIPROC_DIR`` every worker's files added up, rendered
    off the event loop) mounted on the proxy's app, as LiteLLM mounts it for the
    ``"prometheus"`` callback string only. Done when LiteLLM loaded :func:`prometheus_logger`
    as a callback (the YAML names ``proxy.plugin.metrics.prometheus``), once; True if
    ``/metrics`` is mounted."""
    import litellm
    from litellm.integrations.prometheus import PrometheusLogger

    from proxy.edge.routes import METRICS_ROUTES

    mounted = {path.rstrip("/") for _, path in METRICS_ROUTES}  # LiteLLM's mount point
    app = proxy_app()
    if any(getattr(r, "path", None) in mounted for r in app.router.routes):
        return True
    if prometheus_logger.cache_info().currsize == 0 or not any(
            c is prometheus_logger() for c in litellm.callbacks):
        return False
    mount: Callable[[], None] = PrometheusLogger._mount_metrics_endpoint  # untyped
    mount()
    return True
