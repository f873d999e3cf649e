"""What holds right now, read from Redis (read-only): each tenant's rpm and tpm use in the
current 60-second window and the budget reserved by its requests in flight (the gateway's
keys, :mod:`proxy.admission.reservations`), and the deployments LiteLLM's router has
cooled down (its keys ``[<namespace>:]deployment:<id>:cooldown``, shared by every proxy
through ``router_settings.redis_url``; the YAML's namespace is ``POOL_NAMESPACE``)."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from proxy.admission.reservations import live_reserved, tenant_keys

__all__ = ["WINDOW_MS", "Live", "cooldowns", "tenant_use"]

WINDOW_MS = 60_000
MAX_COOLDOWN_KEYS = 1000


@dataclass(frozen=True)
class Live:
    """Where the live figures are: a ``redis.Redis`` client (None: no POOL_REDIS_URL), the
    gateway's key prefix and LiteLLM's router namespace."""

    client: Any
    prefix: str
    router_namespace: str | None


def _now_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def tenant_use(live: Live, tenant_id: int) -> dict[str, float]:
    """Requests and tokens counted in the last 60 s, USD reserved now."""
    keys = tenant_keys(live.prefix, tenant_id)
    now = _now_ms(live.client)
    rpm = int(live.client.zcount(keys["rpm"], now - WINDOW_MS, "+inf"))
    members = live.client.zrangebyscore(keys["tpm"], now - WINDOW_MS, "+inf")
    counted = live.client.hmget(keys["tpm:n"], members) if members else []
    tpm = sum(int(float(v)) for v in counted if v is not None)
    return {"rpm_used": rpm, "tpm_used": tpm,
            "reserved_usd": live_reserved(live.client, live.prefix, tenant_id)}


def _value(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    for parse in (json.loads, ast.literal_eval):
        try:
            found = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(found, dict):
            return found
    return {}


def cooldowns(live: Live) -> list[dict[str, Any]]:
    """Deployments cooling down now: why (status, the masked exception), since when, and
    for how many more seconds."""
    head = f"{live.router_namespace}:" if live.router_namespace else ""
    found = []
    for number, key in enumerate(live.client.scan_iter(f"{head}deployment:*:cooldown",
                                                       count=200)):
        if number >= MAX_COOLDOWN_KEYS:
            break
        name = key.decode() if isinstance(key, bytes) else str(key)
        deployment = name[len(head):].removeprefix("deployment:").removesuffix(":cooldown")
        value = _value(live.client.get(key))
        ttl = float(live.client.pttl(key)) / 1000
        since = value.get("timestamp")
        found.append({"deployment": deployment, "status_code": value.get("status_code"),
                      "since": datetime.fromtimestamp(since, UTC)
                      if isinstance(since, int | float) else None,
                      "remaining_s": math.ceil(ttl) if ttl > 0 else None,
                      "error": str(value.get("exception_received") or "")[:500] or None})
    return sorted(found, key=lambda c: c["deployment"])
