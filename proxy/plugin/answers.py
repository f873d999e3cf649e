"""Every answer names the alias the client asked for in ``model``, through LiteLLM's
documented hooks (no patch); :class:`proxy.plugin.gateway.ProxyCallbacks` delegates here.

LiteLLM restamps ``model`` itself, but not after a fallback (a non-streamed answer then
named the provider's model, ``ollama_chat/qwen3:8b``; a stream, the fallback group) and
not in a Responses stream's events (``response.model``: the provider's model).

- :func:`name_the_alias` (``async_post_call_success_hook``, non-streamed answers): LiteLLM
  calls it before its own restamp, which names the alias too, or, after a fallback,
  leaves ``model`` as it finds it: the alias this hook wrote.
- :func:`alias_stream` (``async_post_call_streaming_iterator_hook``, streamed chat and
  Responses answers): each chunk and a Responses event's ``response`` are stamped on a
  copy (LiteLLM prices the chunks it keeps, with the provider's model), and LiteLLM's
  own per-chunk restamp, which runs after this hook and would name the fallback group,
  is switched off for the request (:func:`proxy.plugin.internals.keep_answer_model`).
  An Anthropic stream (``/v1/messages``) is restamped by LiteLLM with the alias, fallback
  or not; its chunks pass through unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from proxy.plugin import internals

__all__ = ["alias_of", "alias_stream", "name_the_alias", "stamped"]


def alias_of(data: Mapping[str, Any]) -> str | None:
    """The alias the request named (``data["model"]``: LiteLLM leaves it as the client
    sent it, a fallback works on a copy); None when there is none."""
    model = data.get("model")
    return model if isinstance(model, str) and model else None


def name_the_alias(data: Mapping[str, Any], response: Any) -> None:
    """Stamp the alias on a non-streamed answer, in place (as LiteLLM's own restamp)."""
    alias = alias_of(data)
    if alias is None:
        return
    if isinstance(response, dict):
        if "model" in response:
            response["model"] = alias
    elif getattr(response, "model", None) is not None:
        try:
            response.model = alias
        except (AttributeError, TypeError, ValueError):  # a frozen answer: left as it is
            return


def _copy_with_model(obj: Any, alias: str) -> Any:
    """``obj`` with ``model = alias`` (a copy; ``obj`` itself when it has no ``model``
    or names the alias already)."""
    if isinstance(obj, dict):
        return {**obj, "model": alias} if obj.get("model") not in (None, alias) else obj
    if getattr(obj, "model", None) in (None, alias) or not hasattr(obj, "model_copy"):
        return obj
    return obj.model_copy(update={"model": alias})


def _nested_response(chunk: Any) -> Any:
    """A Responses event's ``response`` (a field, or a pydantic extra), else None. Read
    from the instance's fields: ``getattr`` on a pydantic model that lacks the attribute
    (every chat chunk) raises and catches an ``AttributeError``, as long as the copy."""
    if isinstance(chunk, dict):
        return chunk.get("response")
    fields = getattr(chunk, "__dict__", None)
    found = fields.get("response") if isinstance(fields, dict) else None
    if found is None:
        extra = getattr(chunk, "__pydantic_extra__", None)
        found = extra.get("response") if isinstance(extra, dict) else None
    return found


def stamped(chunk: Any, alias: str) -> Any:
    """A stream chunk naming ``alias``: its ``model`` and its ``response.model`` (the
    Responses API's events carry the whole response); bytes and text pass unchanged."""
    chunk = _copy_with_model(chunk, alias)
    nested = _nested_response(chunk)
    if nested is None:
        return chunk
    renamed = _copy_with_model(nested, alias)
    if renamed is nested:
        return chunk
    if isinstance(chunk, dict):
        return {**chunk, "response": renamed}
    return chunk.model_copy(update={"response": renamed})


async def alias_stream(response: AsyncIterator[Any],
                       request_data: dict[str, Any]) -> AsyncIterator[Any]:
    """The stream with every chunk naming the alias (see the module's docstring)."""
    alias = alias_of(request_data)
    if alias is None:
        async for chunk in response:
            yield chunk
        return
    internals.keep_answer_model(request_data)
    async for chunk in response:
        yield stamped(chunk, alias)
