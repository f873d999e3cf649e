"""What a request may cost, before the provider call: prompt tokens, the completion it
asks for, and the per-token prices of its alias (the dearest deployment).

Prices come from the deployment's ``model_info`` (``input_cost_per_token``,
``output_cost_per_token``), else from LiteLLM's cost map for its model. They are
cached per alias for the life of the process (the YAML is read once at start).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import litellm

from proxy.plugin.internals import group_deployments

__all__ = ["alias_prices", "prompt_tokens", "requested_completion", "warm_up_tokenizer"]

log = logging.getLogger("llm_pool.estimate")

EMBEDDING_CALLS = frozenset({"embeddings", "aembedding", "embedding"})


def _price(deployment: Mapping[str, Any], field: str) -> float:
    info = deployment.get("model_info") or {}
    if isinstance(info.get(field), int | float):
        return float(info[field])
    model = (deployment.get("litellm_params") or {}).get("model")
    try:
        found = litellm.get_model_info(model=str(model))
    except Exception:  # unknown to the cost map: no price known
        return 0.0
    value = found.get(field)
    return float(value) if isinstance(value, int | float) else 0.0


@lru_cache(maxsize=256)
def alias_prices(model_group: str) -> tuple[float, float]:
    """(input, output) USD per token: the highest of the alias's deployments."""
    deployments = group_deployments(model_group)
    if not deployments:
        return 0.0, 0.0
    return (max(_price(d, "input_cost_per_token") for d in deployments),
            max(_price(d, "output_cost_per_token") for d in deployments))


def prompt_tokens(data: Mapping[str, Any], call_type: str) -> int:
    """Tokens of the prompt, counted with LiteLLM's tokenizer for the model."""
    model = str(data.get("model") or "")
    try:
        if call_type in EMBEDDING_CALLS:
            text = data.get("input")
            texts = [text] if isinstance(text, str) else [str(t) for t in text or []]
            return int(litellm.token_counter(model=model, text=texts)) if texts else 0
        messages = data.get("messages")
        if isinstance(messages, list) and messages:
            return int(litellm.token_counter(model=model, messages=messages))
        prompt = data.get("prompt")
        return int(litellm.token_counter(model=model, text=str(prompt))) if prompt else 0
    except Exception:  # a body the tokenizer cannot read: validated elsewhere
        log.debug("estimate: could not count prompt tokens", exc_info=True)
        return 0


def requested_completion(data: Mapping[str, Any], call_type: str) -> int | None:
    """``max_tokens`` (or ``max_completion_tokens``) x ``n``; 0 for embeddings;
    None when the request does not say (the running estimate applies)."""
    if call_type in EMBEDDING_CALLS:
        return 0
    cap = data.get("max_completion_tokens") or data.get("max_tokens")
    if not isinstance(cap, int) or cap <= 0:
        return None
    n = data.get("n")
    return cap * (n if isinstance(n, int) and n > 0 else 1)


def warm_up_tokenizer() -> None:
    """Count a few tokens once: the first count loads the tokenizer (a CPU-bound second)."""
    prompt_tokens({"model": "", "messages": [{"role": "user", "content": "warm up"}]}, "")
