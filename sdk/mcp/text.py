"""What an MCP server says is untrusted input: secrets out, size capped.

:func:`redact` replaces the secrets we know (header values, the stdio server's
environment values, anything that looks like a bearer token, a ``key=value``
credential or a URL's ``user:password@``) with ``[redacted]``; :func:`cap` keeps at
most ``limit`` characters and says how many were cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REDACTED", "cap", "redact", "short_error"]

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4  # shorter values (e.g. "1") would redact ordinary text
ERROR_TEXT_LIMIT = 300  # characters of a server's error text the model may read
BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[\w\-.~+/=]+")
KEY_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|token|secret|password|passwd|authorization)\"?\s*[=:]\s*\"?)"
    r"[^\s\"',;&]+")
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret values and without credential-looking tokens."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = KEY_VALUE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return CONTROL.sub("", text)


def cap(text: str, limit: int) -> str:
    """At most ``limit`` characters, with a note of what was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters cut]"


def short_error(text: str, secrets: Iterable[str] = ()) -> str:
    """A server's error text as the model may read it: redacted, one paragraph, capped."""
    flat = " ".join(redact(text, secrets).split())
    return cap(flat, ERROR_TEXT_LIMIT) or "(no error text)"
