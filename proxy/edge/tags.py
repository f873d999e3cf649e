"""Request tags, bounded: a tenant may label its requests, not fill the spend table.

LiteLLM reads a request's tags from the body's ``tags``, ``metadata.tags`` and
``litellm_metadata.tags`` and from the ``x-litellm-tags`` header (comma-separated), and
merges them into the spend row (``spend.tags``) and its callbacks. Each of those places
may hold at most ``POOL_MAX_TAGS`` tags (all of them together too), each a string of 1 to
``POOL_MAX_TAG_CHARS`` characters; else **400** naming the field (``tags``,
``metadata.tags``, ``litellm_metadata.tags``, ``x-litellm-tags``). Called from
``custom_auth`` (:mod:`proxy.plugin.auth`) with the parsed body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from proxy.edge.validation import BadRequest
from proxy.settings import TagLimits

__all__ = ["TAG_HEADER", "check_tags"]

TAG_HEADER = "x-litellm-tags"
BODY_PLACES = (("tags",), ("metadata", "tags"), ("litellm_metadata", "tags"))


def _at(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _checked(field: str, tags: Any, limits: TagLimits) -> list[str]:
    if not isinstance(tags, list):
        raise BadRequest(f"invalid request: {field} must be a list of strings", param=field)
    if len(tags) > limits.max_tags:
        raise BadRequest(f"invalid request: {field} has {len(tags)} tags, at most "
                         f"{limits.max_tags} are allowed (POOL_MAX_TAGS)", param=field)
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= limits.max_chars:
            raise BadRequest(f"invalid request: each of {field} must be a string of 1 to "
                             f"{limits.max_chars} characters (POOL_MAX_TAG_CHARS)", param=field)
    return tags


def check_tags(body: Any, header_values: Iterable[str], limits: TagLimits) -> None:
    """Raise :class:`~proxy.edge.validation.BadRequest` for tags over ``limits``
    (``header_values``: every ``x-litellm-tags`` header of the request)."""
    found: set[str] = set()
    for raw in header_values:
        found.update(_checked(TAG_HEADER, [tag.strip() for tag in raw.split(",")], limits))
    if isinstance(body, Mapping):
        for path in BODY_PLACES:
            tags = _at(body, path)
            if tags is not None:
                found.update(_checked(".".join(path), tags, limits))
    if len(found) > limits.max_tags:
        raise BadRequest(f"invalid request: {len(found)} distinct tags in all, at most "
                         f"{limits.max_tags} are allowed (POOL_MAX_TAGS)", param="tags")
