"""The gateway's own metrics, from a stand-in gateway: deltas become counters, the write
lag counts only while rows wait, key checks are hits or misses; readiness probes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY

from proxy.plugin import health, metrics
from proxy.spend.rows import WriterStats


def _value(name: str) -> float:
    found = REGISTRY.get_sample_value(name)
    return 0.0 if found is None else found


@dataclass
class _Writer:
    stats: WriterStats = field(default_factory=WriterStats)
    buffered: int = 0


class _Keys:
    def __init__(self) -> None:
        self.cache: set[str] = set()

    async def _lookup(self, key_hash: str) -> Any:
        if key_hash == "broken":
            raise OSError("store down")
        return key_hash

    async def resolve(self, key_hash: str) -> Any:
        if key_hash in self.cache:
            return key_hash
        found = await asyncio.get_running_loop().create_task(self._lookup(key_hash))
        self.cache.add(key_hash)
        return found


@dataclass
class _Gateway:
    writer: _Writer = field(default_factory=_Writer)
    keys: _Keys = field(default_factory=_Keys)


def test_poll_turns_writer_state_into_metrics() -> None:
    now = [100.0]
    gateway = _Gateway()
    state = metrics.Instrumented(gateway, clock=lambda: now[0])
    written, dropped = (_value("pool_spend_rows_written_total"),
                        _value("pool_spend_rows_dropped_total"))
    gateway.writer.stats.written, gateway.writer.stats.dropped = 5, 2
    state.poll()
    assert _value("pool_spend_rows_written_total") - written == 5
    assert _value("pool_spend_rows_dropped_total") - dropped == 2
    gateway.writer.stats.written, gateway.writer.buffered = 8, 0
    state.poll()
    assert _value("pool_spend_rows_written_total") - written == 8


def test_write_lag_measures_how_long_rows_wait() -> None:
    """The lag runs from the later of "rows started waiting" and "last write": each
    step below tells those two apart from a lag that ignores either of them."""
    now = [100.0]
    gateway = _Gateway()
    state = metrics.Instrumented(gateway, clock=lambda: now[0])
    gateway.writer.stats.written = 5
    state.poll()  # a write at 100, nothing waits
    assert _value("pool_spend_seconds_since_last_write") == 0
    now[0] = 110.0
    gateway.writer.buffered = 3
    state.poll()  # rows start waiting at 110 (10 s after the last write)
    now[0] = 117.5
    state.poll()
    assert _value("pool_spend_seconds_since_last_write") == 7.5  # not 17.5
    now[0] = 140.0
    state.poll()  # PostgreSQL away: the wait grows
    assert _value("pool_spend_buffer_rows") == 3
    assert _value("pool_spend_seconds_since_last_write") == 30
    gateway.writer.stats.written, gateway.writer.buffered = 6, 4
    state.poll()  # one row written at 140, more wait
    now[0] = 152.0
    state.poll()
    assert _value("pool_spend_seconds_since_last_write") == 12  # since that write, not 42
    gateway.writer.stats.written, gateway.writer.buffered = 10, 0
    now[0] = 160.0
    state.poll()
    assert _value("pool_spend_seconds_since_last_write") == 0


@dataclass
class _Shared:
    degraded: bool = False


def test_shared_state_degraded_follows_redis() -> None:
    now = [0.0]
    plain = _Gateway()  # no POOL_REDIS_URL: never degraded
    metrics.Instrumented(plain, clock=lambda: now[0]).poll()
    assert _value("pool_shared_state_degraded") == 0
    gateway, shared = _Gateway(), _Shared()
    gateway.shared = shared  # type: ignore[attr-defined]
    state = metrics.Instrumented(gateway, clock=lambda: now[0])
    seen = []
    for degraded in (False, True, True, False):
        shared.degraded = degraded
        state.poll()
        seen.append(_value("pool_shared_state_degraded"))
    assert seen == [0, 1, 1, 0]


def test_key_checks_are_hits_or_misses_and_store_errors_count() -> None:
    gateway = _Gateway()
    metrics.instrument(gateway, poll=False)
    before = [_value(f"pool_key_cache_{n}_total") for n in ("hits", "misses")]
    errors = _value("pool_key_store_errors_total")

    async def run() -> None:
        for key in ("a", "a", "a", "b"):
            await gateway.keys.resolve(key)
        with pytest.raises(OSError):
            await gateway.keys.resolve("broken")

    asyncio.run(run())
    after = [_value(f"pool_key_cache_{n}_total") for n in ("hits", "misses")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 3]
    assert _value("pool_key_store_errors_total") - errors == 1


def test_readiness_names_an_unreachable_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_pool.runtime import free_port

    monkeypatch.setenv("POOL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert asyncio.run(health._redis()).startswith("unreachable: ")
    monkeypatch.delenv("POOL_REDIS_URL")
    assert asyncio.run(health._redis()) == "not configured"


def test_metrics_mounted_as_litellm_mounts_it_once_the_logger_is_loaded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up mounts LiteLLM's ``/metrics`` app (its series and the gateway's) only
    when LiteLLM loaded the YAML's ``proxy.plugin.metrics.prometheus`` as a callback (as
    LiteLLM does for the ``"prometheus"`` string), once."""
    import httpx
    import litellm
    from litellm.integrations.prometheus import PrometheusLogger
    from starlette.routing import Mount

    from proxy.plugin import internals

    app = internals.proxy_app()
    monkeypatch.setattr(app.router, "routes", list(app.router.routes))  # restored after
    monkeypatch.setattr(litellm, "callbacks", [])
    assert not internals.mount_metrics()
    loaded = metrics.prometheus
    assert isinstance(loaded, PrometheusLogger) and loaded is metrics.prometheus
    monkeypatch.setattr(litellm, "callbacks", [loaded])
    assert internals.mount_metrics() and internals.mount_metrics()
    mounts = [r for r in app.router.routes if isinstance(r, Mount) and r.path == "/metrics"]
    assert len(mounts) == 1

    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=mounts[0].app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            return await http.get("/")

    scraped = asyncio.run(scrape())
    assert scraped.status_code == 200
    assert "litellm_requests_metric" in scraped.text and "pool_spend_buffer_rows" in scraped.text
    assert "litellm_remaining_api_key_budget_metric" in scraped.text  # declared, left empty


def test_prometheus_settings_are_set_before_litellm_makes_the_logger(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """LiteLLM applies ``litellm_settings`` in the YAML's order and makes the gateway's
    logger (its collectors' label names fixed) at ``callbacks``: the start-up sets the
    ``prometheus`` settings first, wherever the YAML has them."""
    import litellm

    from proxy.plugin import internals

    config = tmp_path / "proxy.yaml"
    config.write_text("litellm_settings:\n"
                      "  callbacks: [proxy.plugin.metrics.prometheus]\n"
                      "  drop_params: true\n"
                      "  prometheus_exclude_labels: [end_user, user_agent]\n"
                      "  custom_prometheus_tags: [team-a]\n")
    for name in ("prometheus_exclude_labels", "custom_prometheus_tags", "drop_params"):
        monkeypatch.setattr(litellm, name, getattr(litellm, name))  # restored after
    litellm.drop_params = False
    internals.prometheus_settings_first(config)
    assert litellm.prometheus_exclude_labels == ["end_user", "user_agent"]
    assert litellm.custom_prometheus_tags == ["team-a"]
    assert litellm.drop_params is False  # only the prometheus settings: LiteLLM sets the rest
