"""The spend journal's drainer on a real Redis (the PostgreSQL write replaced by a
recorder): every entry written once, after a failed write too, entries a dead consumer
held are claimed, and under a stream of rows it writes them in fuller batches than one
per row (it no longer reads its own pending entries and claims others' before every
batch: ``proxy/spend/journal.py``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
import redis

from proxy.spend.journal import GROUP, SpendJournal
from proxy.spend.rows import SpendRow, row_to_json

pytestmark = pytest.mark.integration

ROW = SpendRow(request_id="r", tenant_id=1, key_label="k", call_type="acompletion",
               model_alias="fast", deployment="fast-1", provider_model=None, prompt_tokens=1,
               completion_tokens=1, cost_usd=0.0, latency_ms=None, status="ok",
               error_class=None, created_at=datetime(2026, 1, 2, tzinfo=UTC))


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.failures = failures

    async def __call__(self, rows: Sequence[SpendRow]) -> None:
        if self.failures:
            self.failures -= 1
            raise psycopg.OperationalError("PostgreSQL is down")
        self.batches.append([r.request_id for r in rows])

    @property
    def written(self) -> list[str]:
        return [rid for batch in self.batches for rid in batch]


def _add(client: redis.Redis, stream: str, ids: range) -> None:
    for i in ids:
        client.xadd(stream, {"row": row_to_json(replace(ROW, request_id=f"r{i}"))})


async def _until(recorder: Recorder, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(recorder.written) < count:
        assert time.monotonic() < deadline, f"{len(recorder.written)} of {count} written"
        await asyncio.sleep(0.02)


def test_every_entry_is_written_once_claimed_from_the_dead_and_in_batches(
        redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = f"llmpool-test-{uuid.uuid4().hex[:8]}:gw:spend"
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    _add(client, stream, range(5))
    client.xreadgroup(GROUP, "dead-consumer", {stream: ">"}, count=5)  # then it died

    async def run() -> Recorder:
        recorder = Recorder(failures=1)
        journal = SpendJournal(url=redis_url, stream=stream, write=recorder, batch_size=50,
                               claim_idle=0.3, retry_max=0.2)
        journal.start()
        try:
            await _until(recorder, 5)  # claimed from the dead consumer, after a failed write
            for start in range(5, 205, 10):  # a stream of rows while it drains
                await asyncio.to_thread(_add, client, stream, range(start, start + 10))
                await asyncio.sleep(0.01)
            await _until(recorder, 205)
            # written, then acknowledged and deleted: a stop between the two leaves the
            # last batch in the stream, to be written again (idempotent) by the next drainer
            deadline = time.monotonic() + 10
            while await asyncio.to_thread(client.xlen, stream):
                assert time.monotonic() < deadline, "written entries left in the stream"
                await asyncio.sleep(0.02)
        finally:
            await journal.stop()
        return recorder

    try:
        recorder = asyncio.run(run())
        assert sorted(recorder.written) == sorted(f"r{i}" for i in range(205))  # each once
        assert len(recorder.batches) <= 205 // 5  # not one write per row
        assert client.xlen(stream) == 0
    finally:
        client.delete(stream)
