"""Tenant rpm/tpm windows and budget reservations in Redis: two atomic Lua scripts.

Per tenant (``<ns>:gw:t:<tenant id>:...``):

- ``rpm``: a sorted set of admitted requests scored by Redis server time (ms); a
  request is admitted while fewer than ``rpm`` were admitted in the last 60 s
  (a sliding window, exact whatever the number of processes).
- ``tpm`` / ``tpm:n`` / ``tpm:sum``: the same for tokens: each admitted request
  counts its prompt tokens plus a completion estimate, corrected to the real
  total when it settles; the sum drops entries older than 60 s.
- ``res`` / ``res:exp`` / ``res:sum``: budget reservations (estimated cost per
  admitted request) with a deadline: a reservation whose process died expires
  after ``POOL_RESERVATION_TTL``.
- ``spent:<YYYY-MM>``: month-to-date spend, seeded from PostgreSQL on the month's
  first request (``SET NX``), then increased by each settled request, in the same
  script that journals its spend row (:mod:`proxy.spend.journal`).

A request's tokens and cost are counted from its prompt bound and its completion
limit (:mod:`proxy.admission.estimate`), never from a statistic of earlier requests
a tenant could shape.

Admission is all or nothing: refused on rpm, on tpm (unless nothing is counted in
the window: a single request larger than the limit still passes alone), or when
``spent >= budget`` or ``spent + reserved + estimate > budget`` (unless nothing is
reserved: the last request may cross, so a budget is overrun by at most one
request, never refused while it still covers the requests in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ADMIT", "SETTLE", "Admission", "live_reserved", "month_key", "parse_admission",
           "tenant_keys"]

WINDOW_MS = 60_000

ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ticket = ARGV[1]
local rpm, tpm, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local prompt, completion = tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl, window = tonumber(ARGV[9]), tonumber(ARGV[10])
if budget >= 0 and redis.call('EXISTS', KEYS[8]) == 0 then return {4} end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if rpm > 0 and redis.call('ZCARD', KEYS[1]) >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, tostring(tonumber(oldest[2]) + window - now)}
end

local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - window)
for _, member in ipairs(old) do
  redis.call('DECRBY', KEYS[4], tonumber(redis.call('HGET', KEYS[3], member) or '0'))
  redis.call('HDEL', KEYS[3], member)
end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window) end
local tokens = prompt + completion
local used = tonumber(redis.call('GET', KEYS[4]) or '0')
if tpm > 0 and used > 0 and used + tokens > tpm then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = window
  if #oldest > 0 then wait = tonumber(oldest[2]) + window - now end
  return {2, tostring(wait), tostring(used)}
end

local cost = prompt * tonumber(ARGV[7]) + completion * tonumber(ARGV[8])
local gone = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
for _, member in ipairs(gone) do
  redis.call('INCRBYFLOAT', KEYS[7], -tonumber(redis.call('HGET', KEYS[5], member) or '0'))
  redis.call('HDEL', KEYS[5], member)
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now) end
if redis.call('HLEN', KEYS[5]) == 0 then redis.call('DEL', KEYS[7]) end
local reserved = tonumber(redis.call('GET', KEYS[7]) or '0')
if budget >= 0 then
  local spent = tonumber(redis.call('GET', KEYS[8]) or '0')
  if spent >= budget or (reserved > 0 and spent + reserved + cost > budget) then
    return {3, tostring(spent), tostring(reserved)}
  end
end

redis.call('ZADD', KEYS[1], now, ticket)
redis.call('ZADD', KEYS[2], now, ticket)
redis.call('HSET', KEYS[3], ticket, tokens)
redis.call('INCRBY', KEYS[4], tokens)
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], window) end
redis.call('HSET', KEYS[5], ticket, cost)
redis.call('ZADD', KEYS[6], now + ttl, ticket)
redis.call('INCRBYFLOAT', KEYS[7], cost)
for i = 5, 7 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {0, tostring(completion), tostring(cost)}
"""

SETTLE = """
local ticket = ARGV[1]
if ticket ~= '' then
  local counted = redis.call('HGET', KEYS[2], ticket)
  if counted then
    redis.call('HSET', KEYS[2], ticket, ARGV[2])
    redis.call('INCRBY', KEYS[3], tonumber(ARGV[2]) - tonumber(counted))
  end
  local held = redis.call('HGET', KEYS[4], ticket)
  if held then
    redis.call('HDEL', KEYS[4], ticket)
    redis.call('ZREM', KEYS[5], ticket)
    if redis.call('HLEN', KEYS[4]) == 0 then
      redis.call('DEL', KEYS[6])
    else
      redis.call('INCRBYFLOAT', KEYS[6], -tonumber(held))
    end
  end
end
if tonumber(ARGV[3]) ~= 0 and redis.call('EXISTS', KEYS[7]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[7], ARGV[3])
end
if ARGV[4] ~= '' then redis.call('XADD', KEYS[8], '*', 'row', ARGV[4]) end
return 1
"""


def month_key(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def tenant_keys(prefix: str, tenant_id: int) -> dict[str, str]:
    base = f"{prefix}:t:{tenant_id}"
    names = ("rpm", "tpm", "tpm:n", "tpm:sum", "res", "res:exp", "res:sum")
    keys = {name: f"{base}:{name}" for name in names}
    keys["spent"] = f"{base}:spent:{month_key()}"
    return keys


@dataclass(frozen=True)
class Admission:
    """The answer of :data:`ADMIT`: ``kind`` is ``ok``, ``rpm``, ``tpm``, ``budget`` or
    ``unseeded`` (the month's spend is not in Redis yet)."""

    kind: str
    completion_tokens: int = 0
    cost: float = 0.0
    retry_after: float = 0.0
    spent: float = 0.0
    reserved: float = 0.0


def parse_admission(reply: list[Any]) -> Admission:
    code = int(reply[0])
    values = [float(v.decode() if isinstance(v, bytes) else v) for v in reply[1:]]
    if code == 0:
        return Admission("ok", completion_tokens=int(values[0]), cost=values[1])
    if code in (1, 2):
        return Admission("rpm" if code == 1 else "tpm", retry_after=max(values[0], 0) / 1000)
    if code == 3:
        return Admission("budget", spent=values[0], reserved=values[1])
    return Admission("unseeded")


def live_reserved(client: Any, prefix: str, tenant_id: int) -> float:
    """USD reserved by a tenant's unexpired reservations (a synchronous ``redis.Redis``)."""
    keys = tenant_keys(prefix, tenant_id)
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    live = client.zrangebyscore(keys["res:exp"], now_ms, "+inf")
    amounts = client.hmget(keys["res"], live) if live else []
    return float(sum(float(a) for a in amounts if a is not None))
