"""Key formats (:mod:`proxy.storage.tenants`) and the gate that refuses forged keys
without a lookup (:class:`proxy.plugin.auth.KeyFormats`)."""

from __future__ import annotations

import asyncio
import secrets
import zlib
from typing import Any

import pytest
from starlette.requests import Request

from proxy.plugin.auth import KeyFormats, KeyResolver, Unauthorized, authenticate
from proxy.storage.tenants import (
    KEY_ALPHABET,
    KEY_FORMAT_CHECKSUM,
    KEY_FORMAT_HMAC,
    KEY_FORMAT_LEGACY,
    KeyGate,
    KeyIdentity,
    generate_key,
    key_format,
)

SECRET = secrets.token_bytes(32)


def crc_key() -> str:
    """A key of format 2: anyone can compute its CRC32 checksum."""
    body = "".join(secrets.choice(KEY_ALPHABET) for _ in range(40))
    value, digits = zlib.crc32(body.encode()), []
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits.append(KEY_ALPHABET[digit])
    return "sk-pool-" + body + "".join(reversed(digits))


def test_new_keys_carry_an_hmac_that_catches_any_one_character_change() -> None:
    key = generate_key(SECRET)
    assert key.startswith("sk-pool-") and len(key) == 58
    assert key_format(key, SECRET) == KEY_FORMAT_HMAC
    for i in range(len("sk-pool-"), len(key)):
        swapped = "A" if key[i] != "A" else "B"
        assert key_format(key[:i] + swapped + key[i + 1:], SECRET) is None, i
    assert len({generate_key(SECRET) for _ in range(200)}) == 200


def test_only_the_secret_makes_a_valid_key() -> None:
    other = generate_key(secrets.token_bytes(32))
    assert key_format(other, SECRET) is None
    assert key_format(other) == KEY_FORMAT_HMAC  # secret unknown: the shape only


def test_older_formats_and_garbage() -> None:
    assert key_format(crc_key(), SECRET) == KEY_FORMAT_CHECKSUM
    assert key_format("sk-pool-" + secrets.token_urlsafe(32)) == KEY_FORMAT_LEGACY
    for bad in ("", "sk-pool-", "sk-xyz", "sk-pool-" + "a" * 46, "Bearer x", "sk-pool-" + "é" * 50,
                generate_key(SECRET) + "x", crc_key()[:-1] + "!"):
        assert key_format(bad, SECRET) is None, bad


def test_the_gate_admits_older_formats_only_while_keys_of_theirs_are_active() -> None:
    none_old = KeyGate(SECRET, frozenset({KEY_FORMAT_HMAC}))
    both_old = KeyGate(SECRET, frozenset({1, 2, 3}))
    legacy = "sk-pool-" + secrets.token_urlsafe(32)
    assert none_old.admits(generate_key(SECRET)) and both_old.admits(generate_key(SECRET))
    assert not none_old.admits(crc_key()) and both_old.admits(crc_key())
    assert not none_old.admits(legacy) and both_old.admits(legacy)
    assert not both_old.admits(generate_key(secrets.token_bytes(32)))


def _request() -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}
    return Request({"type": "http", "method": "GET", "path": "/v1/models", "headers": [],
                    "query_string": b"", "root_path": ""}, receive)


def test_forged_keys_cost_no_lookup() -> None:
    lookups: list[str] = []
    gate_reads: list[int] = []

    async def lookup(key_hash: str) -> KeyIdentity | None:
        lookups.append(key_hash)
        return None

    async def read_gate() -> KeyGate:
        gate_reads.append(1)
        return KeyGate(SECRET, frozenset({KEY_FORMAT_HMAC}))

    async def run() -> None:
        resolver = KeyResolver(lookup, ttl=60, max_stale=60)
        formats = KeyFormats(read_gate, ttl=60)
        forgers = (crc_key, lambda: generate_key(secrets.token_bytes(32)),
                   lambda: "sk-pool-" + secrets.token_urlsafe(32), lambda: secrets.token_hex(20))
        for i in range(2000):
            with pytest.raises(Unauthorized):
                await authenticate(resolver, "sk-master", _request(), forgers[i % 4](),
                                   formats=formats)
        assert lookups == [] and gate_reads == [1]
        with pytest.raises(Unauthorized):  # well-formed: looked up once, then cached
            await authenticate(resolver, "sk-master", _request(), generate_key(SECRET),
                               formats=formats)
        assert len(lookups) == 1

    asyncio.run(run())


def test_the_gate_is_reread_after_its_ttl_and_kept_while_the_store_cannot_say() -> None:
    answers: list[KeyGate | Exception] = [OSError("down"), KeyGate(SECRET, frozenset({2, 3})),
                                          OSError("down"), KeyGate(SECRET, frozenset({3}))]

    async def read_gate() -> KeyGate:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    now = [0.0]
    formats = KeyFormats(read_gate, ttl=5, clock=lambda: now[0])
    old, new = KeyGate(SECRET, frozenset({2, 3})), KeyGate(SECRET, frozenset({3}))

    async def run() -> None:
        assert await formats.gate() is None  # never read: the shape and the lookup decide
        now[0] = 10.0
        assert await formats.gate() == old  # nothing known yet: the caller waits for the read
        now[0] = 12.0
        assert await formats.gate() == old  # within ttl
        now[0] = 20.0
        assert await formats.gate() == old  # due: re-read in the background
        await asyncio.sleep(0)
        assert await formats.gate() == old  # down: kept
        now[0] = 30.0
        assert await formats.gate() == old  # due: the known gate serves while it is re-read
        await asyncio.sleep(0)
        assert await formats.gate() == new

    asyncio.run(run())
    assert answers == []


def test_a_slow_gate_reread_never_slows_a_request() -> None:
    """During a PostgreSQL outage the re-read hangs until the store's timeout: requests
    go on with the gate they know instead of waiting for it."""
    release = asyncio.Event()
    reads = [0]

    async def read_gate() -> KeyGate:
        reads[0] += 1
        if reads[0] > 1:
            await release.wait()
        return KeyGate(SECRET, frozenset({3}))

    now = [0.0]
    formats = KeyFormats(read_gate, ttl=5, clock=lambda: now[0])

    async def run() -> None:
        assert await formats.gate() is not None
        now[0] = 10.0
        known = await asyncio.wait_for(formats.gate(), timeout=1.0)
        assert known == KeyGate(SECRET, frozenset({3})) and reads[0] == 2
        release.set()

    asyncio.run(run())


def test_a_burst_of_forged_keys_during_the_first_gate_read_costs_no_lookup() -> None:
    lookups: list[str] = []

    async def lookup(key_hash: str) -> KeyIdentity | None:
        lookups.append(key_hash)
        return None

    async def run() -> None:
        release = asyncio.Event()
        reads: list[int] = []

        async def slow_gate() -> KeyGate:
            reads.append(1)
            await release.wait()
            return KeyGate(SECRET, frozenset({KEY_FORMAT_HMAC}))

        resolver = KeyResolver(lookup, ttl=60, max_stale=60)
        formats = KeyFormats(slow_gate, ttl=60)
        burst = [asyncio.ensure_future(authenticate(resolver, "sk-master", _request(),
                                                    crc_key(), formats=formats))
                 for _ in range(50)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in burst)  # all wait for the one read
        release.set()
        results = await asyncio.gather(*burst, return_exceptions=True)
        assert all(isinstance(r, Unauthorized) for r in results) and reads == [1]

    asyncio.run(run())
    assert lookups == []
