"""What a request may cost, before the provider call: a bound on its prompt tokens, the
completion it may produce, and the per-token prices of its alias (the dearest deployment).

Nothing here is a statistic of the tenant's history, so no earlier request can make a
later one look cheaper:

- the prompt: :func:`proxy.edge.caps.estimate_prompt_tokens`, a bound (one token per
  UTF-8 byte of text) that digits, CJK, emoji or base64 cannot beat;
- the completion: :func:`completion_limit`, the request's own output limit (``max_tokens``,
  ``max_completion_tokens`` or ``max_output_tokens``) times ``n``, else the tenant's
  ``max_tokens`` cap (lowered to the model's output limit when LiteLLM knows it), which
  the gateway then writes into the request (:func:`apply_output_limit`), so the provider
  is held to the figure the reservation was made for;
- prices (:func:`deployment_price`): the deployment's ``litellm_params`` (LiteLLM's own
  ``input_cost_per_token`` / ``output_cost_per_token``), else its ``model_info``, else
  LiteLLM's cost map for its model; ``model_info: {pool_free: true}`` or an explicit 0 is
  free on purpose. A deployment with none of these has no price: ``pool check-config``
  refuses it, and the gateway refuses requests to its alias (:class:`Unpriced`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import litellm

from proxy.edge.output_limits import group_limit
from proxy.errors import RequestRefused
from proxy.plugin.internals import group_deployments

__all__ = ["OUTPUT_LIMIT_FIELDS", "Price", "Unpriced", "alias_output_limit", "alias_prices",
           "apply_output_limit", "completion_limit", "deployment_price", "map_output_limit",
           "warm_up_tokenizer"]

EMBEDDING_CALLS = frozenset({"embeddings", "aembedding", "embedding"})
RESPONSES_CALLS = frozenset({"responses", "aresponses"})
# the fields that bound a completion, by the route that reads them
OUTPUT_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
PRICE_FIELDS = ("input_cost_per_token", "output_cost_per_token")
LOCAL_PREFIXES = frozenset({"ollama", "ollama_chat"})


@dataclass(frozen=True)
class Price:
    """USD per token."""

    input: float
    output: float


class Unpriced(RequestRefused):
    """A request to an alias with a deployment of unknown price: refused, never served
    at $0 (``pool check-config`` refuses such a YAML before it gets here)."""

    def __init__(self, alias: str) -> None:
        super().__init__(message=f"model {alias!r} has a deployment without a price; the "
                                 "operator must declare one (see `pool check-config`)",
                         type="service_unavailable", param="model", code=503)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _declared(source: Mapping[str, Any], embedding: bool) -> Price | None:
    inp, out = (_number(source.get(field)) for field in PRICE_FIELDS)
    if inp is None or (out is None and not embedding):
        return None
    return Price(inp, out or 0.0)


def deployment_price(deployment: Mapping[str, Any]) -> Price | None:
    """The per-token price of one deployment (a ``model_list`` entry), or None when
    neither the YAML nor LiteLLM's cost map has one (see the module docstring)."""
    params = deployment.get("litellm_params") or {}
    info = deployment.get("model_info") or {}
    if info.get("pool_free") is True:
        return Price(0.0, 0.0)
    embedding = info.get("mode") == "embedding"
    for source in (params, info):
        found = _declared(source, embedding)
        if found is not None:
            return found
    try:
        known = litellm.get_model_info(model=str(params.get("model")))
    except Exception:  # unknown to the cost map
        return None
    return _declared(dict(known), embedding or known.get("mode") == "embedding")


@lru_cache(maxsize=256)
def alias_prices(model_group: str) -> tuple[float, float]:
    """(input, output) USD per token: the highest of the alias's deployments. Raises
    :class:`Unpriced` when one of them has no price."""
    prices = []
    for deployment in group_deployments(model_group):
        price = deployment_price(deployment)
        if price is None:
            raise Unpriced(model_group)
        prices.append(price)
    if not prices:
        return 0.0, 0.0
    return max(p.input for p in prices), max(p.output for p in prices)


def map_output_limit(model: str) -> int | None:
    """``max_output_tokens`` of LiteLLM's public model map for ``model`` (None: unknown).
    Ollama models are never looked up: LiteLLM would ask the Ollama server (a blocking
    call), and the YAML declares their limit (:mod:`proxy.edge.output_limits`)."""
    if model.split("/", 1)[0] in LOCAL_PREFIXES:
        return None
    try:
        found = litellm.get_model_info(model=model).get("max_output_tokens")
    except Exception:  # unknown to the map
        return None
    return found if isinstance(found, int) else None


@lru_cache(maxsize=256)
def alias_output_limit(model_group: str) -> int | None:
    """The alias's output limit (:func:`proxy.edge.output_limits.group_limit`: the
    smallest of its deployments', from the YAML or the map; None: unknown)."""
    return group_limit(group_deployments(model_group), map_output_limit)


def _asked(data: Mapping[str, Any]) -> int | None:
    for name in OUTPUT_LIMIT_FIELDS:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _choices(data: Mapping[str, Any]) -> int:
    n = data.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _default_limit(data: Mapping[str, Any], cap: int) -> int:
    known = alias_output_limit(str(data.get("model") or ""))
    return min(cap, known) if known else cap


def completion_limit(data: Mapping[str, Any], call_type: str, cap: int) -> int:
    """The most completion tokens the request may produce: its own limit, else ``cap``
    (the tenant's ``max_tokens``), times ``n``; 0 for embeddings."""
    if call_type in EMBEDDING_CALLS:
        return 0
    return (_asked(data) or _default_limit(data, cap)) * _choices(data)


def apply_output_limit(data: MutableMapping[str, Any], call_type: str, cap: int) -> None:
    """Write the limit :func:`completion_limit` assumed into a request that names none:
    ``max_output_tokens`` on the Responses API, ``max_tokens`` elsewhere."""
    if call_type in EMBEDDING_CALLS or _asked(data) is not None:
        return
    field = "max_output_tokens" if call_type in RESPONSES_CALLS else "max_tokens"
    data[field] = _default_limit(data, cap)


def warm_up_tokenizer() -> None:
    """Count a few tokens once: the first count loads the tokenizer (a CPU-bound second),
    which LiteLLM's own cost and usage code uses; not inside a request burst."""
    with contextlib.suppress(Exception):  # best effort
        litellm.token_counter(model="", messages=[{"role": "user", "content": "warm up"}])
