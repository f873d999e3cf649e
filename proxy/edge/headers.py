"""Request headers and query strings of tenant requests on the model routes.

LiteLLM reads a request's headers after authentication and acts on many of them
(``litellm.proxy.litellm_pre_call_utils``): ``x-litellm-timeout``,
``x-litellm-stream-timeout``, ``x-litellm-num-retries``, ``x-litellm-keepalive-seconds``
(router controls), ``x-litellm-call-id`` (the request's id, the spend row's),
``x-litellm-tags``, ``x-litellm-spend-logs-metadata``, ``x-litellm-agent-id``,
``x-litellm-trace-id`` / ``x-litellm-session-id`` and any ``x-*-session-id``,
``traceparent``, ``baggage`` (logging metadata), ``x-litellm-api-key`` (a second key
header), ``litellm-disable-message-redaction``, ``typesafe-danger-zone-*`` (forwarded to
a provider), ``openai-organization`` (forwarded with ``forward_openai_org_id``),
``Cache-Control`` (the cache ttl), ``anthropic-version`` / ``anthropic-beta``
(forwarded to Anthropic deployments), every ``x-*`` header (forwarded to the provider
with ``forward_client_headers_to_llm_api``), and the query string's ``api-version``.

For a tenant (:func:`check_tenant_headers`, called by ``custom_auth``):

- a LiteLLM control header (:data:`CONTROL_PREFIXES`: ``x-litellm-*``, ``litellm-*``,
  ``typesafe-danger-zone-*``) is refused: **400** naming it. Except ``x-litellm-call-id``
  (the SDK sends one per call): each id serves one request only
  (:mod:`proxy.admission.callids`: a reused id is 409), and :mod:`proxy.edge.guard` keeps
  its shape to 1-128 of ``[A-Za-z0-9._:-]``;
- two key headers carrying different credentials (``Authorization`` and ``x-api-key``,
  ...) are refused: **401**, one key per request;
- a query parameter other than :data:`ALLOWED_QUERY` is refused: **400** naming it;
- every other header not on the allowlist (:data:`ALLOWED_HEADERS`,
  :data:`ALLOWED_PREFIXES`) is removed before LiteLLM reads the headers
  (:func:`allowed_headers`; ``x-forwarded-for``, ``cache-control``, ``traceparent``,
  ``openai-organization``, custom ``x-*`` headers ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from proxy.errors import AUTH_ERROR, BAD_REQUEST_ERROR, RequestRefused

__all__ = [
    "ALLOWED_HEADERS",
    "ALLOWED_PREFIXES",
    "ALLOWED_QUERY",
    "CONTROL_PREFIXES",
    "KEY_HEADERS",
    "RefusedHeader",
    "TwoKeys",
    "allowed_headers",
    "check_tenant_headers",
    "credentials",
]

CONTROL_PREFIXES = ("x-litellm-", "litellm-", "litellm_", "x-litellm_", "typesafe-danger-zone-")
KEY_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key")
CALL_ID = b"x-litellm-call-id"  # the request's id: claimed once (proxy.admission.callids)
ALLOWED_HEADERS = frozenset({
    b"host", b"content-type", b"content-length", b"content-encoding", b"transfer-encoding",
    b"accept", b"accept-encoding", b"accept-language", b"user-agent", b"connection",
    b"expect", *KEY_HEADERS, CALL_ID,
    # the Anthropic SDK's; LiteLLM forwards them to Anthropic deployments only
    b"anthropic-version", b"anthropic-beta",
})
ALLOWED_PREFIXES = (b"x-stainless-",)  # the OpenAI/Anthropic SDKs' telemetry; LiteLLM drops it
ALLOWED_QUERY = frozenset({"beta"})  # the Anthropic SDK's beta client: /v1/messages?beta=true

Headers = list[tuple[bytes, bytes]]


class RefusedHeader(RequestRefused):
    def __init__(self, name: str, what: str) -> None:
        super().__init__(message=f"{what} {name!r} is not accepted from tenant keys: retries, "
                                 "timeouts, request ids, tags, logging and routing are set by "
                                 "the gateway",
                         type=BAD_REQUEST_ERROR, param=name, code=400)


class TwoKeys(RequestRefused):
    def __init__(self, names: list[str]) -> None:
        super().__init__(message=f"one key per request: {' and '.join(names)} carry different "
                                 "credentials; send the key in one header",
                         type=AUTH_ERROR, param="api_key", code=401)


def _credential(name: bytes, value: bytes) -> str:
    text = value.decode("latin-1").strip()
    if name == b"authorization":
        scheme, _, token = text.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else text
    return text


def credentials(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, set[str]]:
    """Key header name -> the distinct credentials it carries (empty ones left out)."""
    found: dict[str, set[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in KEY_HEADERS:
            credential = _credential(lowered, value)
            if credential:
                found.setdefault(lowered.decode(), set()).add(credential)
    return found


def _is_control(name: str) -> bool:
    return name.startswith(CONTROL_PREFIXES)


def check_tenant_headers(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> None:
    """Raise :class:`RefusedHeader` (400) or :class:`TwoKeys` (401) for a tenant's
    request that LiteLLM would read differently from the gateway."""
    listed = list(headers)
    for name, _ in listed:
        text = name.decode("latin-1").lower()
        if _is_control(text) and name.lower() != CALL_ID:
            raise RefusedHeader(text, "header")
    found = credentials(listed)
    if found and len(set().union(*found.values())) > 1:
        raise TwoKeys(sorted(found))
    for param, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if param not in ALLOWED_QUERY:
            raise RefusedHeader(param, "query parameter")


def allowed_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The headers LiteLLM may read of a tenant's request (see the module docstring)."""
    return [(name, value) for name, value in headers
            if name.lower() in ALLOWED_HEADERS or name.lower().startswith(ALLOWED_PREFIXES)]
