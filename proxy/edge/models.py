"""Model names a tenant may send: exactly one alias of the loaded ``model_list``.

LiteLLM's proxy reads more into ``model`` than an alias: a comma-separated list fans one
request out to every model named (one upstream call each, one spend row in all); a
deployment id (``model_info.id``) or the provider model string (``openai/fast-1``)
reaches that deployment directly, outside the alias's load balancing and price; a
wildcard alias (``openai/*``) passes any provider model through. So a tenant's
``model`` must be, character for character, the ``model_name`` of a deployment in
the YAML (wildcard names excluded), and anything else is refused before LiteLLM
sees it (404, naming the model and pointing at ``GET /v1/models``), so an unknown name
creates no Prometheus series either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from proxy.errors import RequestRefused

__all__ = ["UnknownModel", "check_model", "is_alias"]

WILDCARD = "*"
MAX_SHOWN = 80  # characters of a refused model name quoted back


class UnknownModel(RequestRefused):
    def __init__(self, model: object, why: str) -> None:
        shown = repr(model if not isinstance(model, str) else model[:MAX_SHOWN])
        super().__init__(message=f"model {shown} {why}; send one alias listed by GET /v1/models",
                         type="invalid_request_error", param="model", code=404)


def is_alias(model: str, aliases: Collection[str]) -> bool:
    return WILDCARD not in model and model in aliases


def _why(model: str) -> str:
    if "," in model:
        return "is a list: one request names one model"
    if WILDCARD in model:
        return "is a pattern, not a model"
    if "/" in model:
        return "names a provider model; the gateway serves aliases only"
    return "is not a model of this gateway"


def check_model(body: Mapping[str, Any], aliases: Callable[[], Collection[str]]) -> None:
    """Raise :class:`UnknownModel` unless ``body["model"]`` is one alias. A missing
    ``model`` is left to the body schema (400 naming the field)."""
    model = body.get("model")
    if model is None:
        return
    if not isinstance(model, str):
        raise UnknownModel(model, "is not a string")
    if not is_alias(model, aliases()):
        raise UnknownModel(model, _why(model))
