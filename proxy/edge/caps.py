"""Per-tenant consumption caps, checked in ``custom_auth`` before anything reaches a provider.

| cap | default (``POOL_DEFAULT_...``) | what it bounds |
|---|---|---|
| ``max_n`` | 4 (``MAX_N``) | ``n``: choices per request |
| ``max_tokens`` | 16,384 (``MAX_TOKENS``) | ``max_tokens`` and its aliases |
| ``max_prompt_tokens`` | 131,072 (``MAX_PROMPT_TOKENS``) | the prompt, estimated before the call |

A tenant's own value (``pool tenants add/set --max-n/--max-tokens/--max-prompt-tokens``)
replaces the default. Over a cap the request gets **400** naming the cap and the
tenant's value, and nothing is sent. The output cap follows the alias's models
(:mod:`proxy.edge.output_limits`): a request may ask for up to the alias's output limit
(the default ``max_tokens`` applies only to aliases of unknown limit), a tenant's own
``max_tokens`` holds when lower, and above the model's limit the 400 names the model's
figure. An absent ``max_tokens`` is left to the
provider's default (setting it would break models whose output limit is lower).

The prompt estimate (:func:`estimate_prompt_tokens`) walks the prompt fields of the
body (messages, system, instructions, input, prompt, tools, functions) and is a
**bound**, not a guess: a text costs one token per UTF-8 byte. Byte-level BPE
tokenizers (OpenAI's, Anthropic's, Llama's, Qwen's) never make a token of less than
one byte, so no text (digits, CJK, emoji, base64, whitespace runs) can hold more tokens
than bytes. Each object (a message, a content part, a tool) adds
:data:`MESSAGE_OVERHEAD`, a number (an embedding token id) one, an image part
(``image_url``/``input_image``/``image``, or a ``data:image/`` URL) a flat
:data:`IMAGE_TOKENS`. Ordinary English is over-counted about 4x, so
``max_prompt_tokens`` acts as a byte budget: the default 131,072 admits a prompt of
128 KiB of text. The same bound is what the tpm window and the budget reservation
count (:mod:`proxy.admission.tickets`); the real count replaces it when the answer
settles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.edge.output_limits import output_cap
from proxy.edge.routes import ALL_CAPS, Cap, route_of
from proxy.errors import BAD_REQUEST_ERROR, RequestRefused
from proxy.storage.tenants import Caps

__all__ = ["IMAGE_TOKENS", "CapExceeded", "Limits", "OutputLimitExceeded", "check_caps",
           "check_fields", "estimate_prompt_tokens"]

IMAGE_TOKENS = 2_000  # above the most an image costs at OpenAI (1,105) or Anthropic (1,600)
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
MESSAGE_OVERHEAD = 4  # tokens per object: a message, a content part, a tool (separators)

# prompt-bearing fields and output limits of every route family (which caps a route
# checks: proxy.edge.routes.ROUTES)
PROMPT_FIELDS = ("messages", "system", "instructions", "input", "prompt", "tools", "functions")
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True)
class Limits:
    """The caps in force for one tenant: its own, else the gateway's defaults."""

    max_n: int
    max_tokens: int
    max_prompt_tokens: int
    max_tokens_own: bool = False  # True: the tenant's own max_tokens, not the default

    @classmethod
    def of(cls, own: Caps, defaults: Caps) -> Limits:
        def pick(name: str) -> int:
            value = getattr(own, name)
            value = getattr(defaults, name) if value is None else value
            return int(value)
        return cls(max_n=pick("max_n"), max_tokens=pick("max_tokens"),
                   max_prompt_tokens=pick("max_prompt_tokens"),
                   max_tokens_own=own.max_tokens is not None)



class CapExceeded(RequestRefused):
    def __init__(self, param: str, value: int, cap: str, limit: int, tenant: str) -> None:
        super().__init__(
            message=(f"{param}={value:,} is over tenant {tenant}'s cap {cap}={limit:,}; "
                     "nothing was sent to the model"),
            type=BAD_REQUEST_ERROR, param=param, code=400)
        self.cap = cap
        self.limit = limit


class OutputLimitExceeded(CapExceeded):
    def __init__(self, param: str, value: int, alias: str, limit: int) -> None:
        RequestRefused.__init__(
            self, message=(f"{param}={value:,} is over the output limit of model {alias!r}: "
                           f"{limit:,} tokens; nothing was sent to the model"),
            type=BAD_REQUEST_ERROR, param=param, code=400)
        self.cap = "model output limit"
        self.limit = limit


def _text_tokens(text: str) -> int:
    if text.startswith("data:image/"):
        return IMAGE_TOKENS
    return len(text.encode("utf-8", "surrogatepass"))


def _walk(value: Any) -> int:
    if isinstance(value, str):
        return _text_tokens(value)
    if isinstance(value, Mapping):
        if value.get("type") in IMAGE_PARTS:
            return MESSAGE_OVERHEAD + IMAGE_TOKENS
        return MESSAGE_OVERHEAD + sum(_walk(v) for v in value.values())
    if isinstance(value, list):
        return sum(_walk(v) for v in value)
    return 1 if isinstance(value, int | float) else 0  # a token id of an embedding input


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A bound on the prompt tokens of a chat, embedding, Responses or Messages body."""
    return sum(_walk(body.get(name)) for name in PROMPT_FIELDS)


def _int_field(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


OutputLimit = Callable[[str], int | None]  # alias -> its models' output limit (None: unknown)


def _unknown(alias: str) -> int | None:
    return None


def check_caps(route: str, body: Any, limits: Limits, tenant: str,
               output_limit: OutputLimit = _unknown) -> None:
    """Raise :class:`CapExceeded` when ``body`` (already schema-checked) is over one of
    the caps ``route`` checks (:data:`proxy.edge.routes.ROUTES`)."""
    found = route_of(route)
    if found is not None and found.caps and isinstance(body, Mapping):
        check_fields(body, limits, tenant, found.caps, output_limit)


def check_fields(body: Mapping[str, Any], limits: Limits, tenant: str,
                 caps: frozenset[Cap] = ALL_CAPS, output_limit: OutputLimit = _unknown) -> None:
    """:func:`check_caps` on any request body (all caps: the merged request LiteLLM sends)."""
    n = _int_field(body, "n") if "max_n" in caps else None
    if n is not None and n > limits.max_n:
        raise CapExceeded("n", n, "max_n", limits.max_n, tenant)
    alias = str(body.get("model") or "")
    for name in OUTPUT_FIELDS if "max_tokens" in caps else ():
        asked = _int_field(body, name)
        if asked is None:
            continue
        cap = output_cap(limits.max_tokens, limits.max_tokens_own, output_limit(alias))
        if asked > cap.limit and cap.model:
            raise OutputLimitExceeded(name, asked, alias, cap.limit)
        if asked > cap.limit:
            raise CapExceeded(name, asked, "max_tokens", cap.limit, tenant)
    prompt = estimate_prompt_tokens(body) if "max_prompt_tokens" in caps else 0
    if prompt > limits.max_prompt_tokens:
        raise CapExceeded("prompt (estimated tokens)", prompt, "max_prompt_tokens",
                          limits.max_prompt_tokens, tenant)
