"""Request bodies checked at the edge, before anything reaches a provider.

Called from ``custom_auth`` (:mod:`proxy.plugin.auth`) once the key is known, for the
routes with a body schema in :data:`proxy.edge.routes.ROUTES` (chat completions,
embeddings, the Responses API, Anthropic Messages and its token count; the models in
:mod:`proxy.edge.schemas`):

- a body over ``POOL_MAX_REQUEST_MB`` (default 4 MB) is refused with **413**;
- the body must be a JSON object; the fields the route documents must have the
  right JSON type (``messages`` a non-empty list of ``{role, content}`` objects,
  ``max_tokens`` an integer ...): else **400** with a message naming the field;
- credentials, upstream routing and price fields (``api_key``, ``api_base``,
  ``aws_*`` ...) and the router's and logger's controls (``num_retries``,
  ``fallbacks``, ``mock_*``, ``no-log`` ...; see :mod:`proxy.edge.credentials`) are refused
  with **400** naming the field, at the top level and inside ``metadata``/``extra_body``;
- the top level is **closed**: a field the route's schema does not list is refused
  with **400** naming it. LiteLLM reads more than the OpenAI/Anthropic schemas (its
  own parameters, ``extra_body`` merged into the provider call after every check, and
  unknown fields passed to the provider as is, where ``options.num_predict``,
  ``min_tokens`` or ``ignore_eos`` would outrun the caps), so only documented fields and
  a few inert provider ones (``top_k``, ``min_p``, ``repetition_penalty``,
  ``chat_template_kwargs``, ``guided_json``) reach it. The list, field by field, with what
  LiteLLM does with each: ``docs/request-rules.md``;
- ``metadata`` may hold ``tags`` (a list of strings) and ``user_id`` (Anthropic's) only:
  LiteLLM reads many other keys as controls (``model_info``, ``deployment``,
  ``disable_fallbacks``, ``guardrails``, ``spend_logs_metadata`` ...);
- the Responses API is stateless here (no response is kept): ``store: true``,
  ``previous_response_id``, ``conversation`` and ``background: true`` are refused
  with **400** saying to send the whole conversation in ``input``.

Without this, LiteLLM forwarded wrong types to the provider (200 or a 500 from
deep inside the call) and read bodies of any size.

A body that is valid JSON but not an object (``[...]``, ``"x"``) crashed LiteLLM
in its own pre-auth checks, before ``custom_auth`` runs (a bare 500); the narrow
guard :func:`install_body_guard` (installed when LiteLLM loads ``proxy.plugin.auth``)
makes LiteLLM treat it as unparsable JSON: a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from proxy.edge.credentials import find_refused
from proxy.edge.routes import route_of
from proxy.edge.schemas import ResponsesRequest
from proxy.errors import BAD_REQUEST_ERROR, RequestRefused

__all__ = ["BadRequest", "TooLarge", "check_body", "not_an_object"]
REFUSED = "not allowed in the request body (credentials, upstream routing, prices, " \
          "retries, fallbacks, caching and logging are set by the gateway)"
STATELESS = "is not supported: this gateway keeps no responses; send the whole conversation " \
            "in `input` (and `store: false` or no `store`)"


class BadRequest(RequestRefused):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message=message, type=BAD_REQUEST_ERROR,
                         param=param, code=400)


def not_an_object() -> BadRequest:
    """The 400 for a JSON body that is not an object (the edge refuses one before LiteLLM
    parses it with the same message, :mod:`proxy.edge.objects`)."""
    return BadRequest("the request body must be a JSON object")


class TooLarge(RequestRefused):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(message=f"request body too large: {size / 1e6:.1f} MB, the limit is "
                                 f"{limit / 1e6:.1f} MB (POOL_MAX_REQUEST_MB)",
                         type="request_too_large", param=None, code=413)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


EXTRA_BODY = ("is not accepted: send its fields at the top level of the body (the OpenAI "
              "SDK's extra_body= argument already does), where each is checked")
METADATA = ("is not accepted: metadata may hold `tags` and `user_id` only (LiteLLM reads its "
            "other keys as routing, pricing and logging controls)")
NOT_ACCEPTED = ("is not a field this gateway accepts on {route} (documented OpenAI/Anthropic "
                "fields only: LiteLLM would pass an unknown field to the provider unchecked; "
                "see docs/request-rules.md)")


def _refusal(error: ValidationError, route: str) -> BadRequest:
    """The 400 for a body the schema refuses: an unknown field named as such."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        why = (EXTRA_BODY if where == "extra_body" else METADATA if where.startswith("metadata.")
               else NOT_ACCEPTED.format(route=route))
        return BadRequest(f"invalid request: `{where}` {why}", param=where)
    return BadRequest(f"invalid request: {_describe(error)}",
                      param=str(first["loc"][0]) if first["loc"] else None)


def _stateful_field(parsed: BaseModel) -> str | None:
    """The Responses field asking for state this gateway does not keep, if any."""
    if not isinstance(parsed, ResponsesRequest):
        return None
    if parsed.store:
        return "store: true"
    if parsed.background:
        return "background: true"
    for name in ("previous_response_id", "conversation"):
        if getattr(parsed, name) is not None:
            return name
    return None


def check_body(route: str, body: Any, size: int | None, max_bytes: int) -> None:
    """Raise :class:`TooLarge` or :class:`BadRequest` for a body ``route`` must refuse."""
    found = route_of(route)
    schema = found.schema if found is not None else None
    if schema is None:
        return
    if size is not None and size > max_bytes:
        raise TooLarge(size, max_bytes)
    if not isinstance(body, Mapping):
        raise not_an_object()
    refused = find_refused(body)
    if refused is not None:
        raise BadRequest(f"invalid request: {refused}: {REFUSED}", param=refused)
    try:
        parsed = schema.model_validate(body)
    except ValidationError as exc:
        raise _refusal(exc, route) from None
    stateful = _stateful_field(parsed)
    if stateful is not None:
        raise BadRequest(f"invalid request: {stateful} {STATELESS}",
                         param=stateful.split(":")[0])
