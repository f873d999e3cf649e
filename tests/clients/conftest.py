"""The third-party client matrix: real clients nobody here wrote, pointed at the real
proxy on ``config/offline.yaml`` with a tenant key, changing nothing but the base URL
and the key (see README "Use any client").

Each test gets a fresh tenant (:class:`Tenant`) and checks, besides the answer, that
its calls landed as spend rows for that tenant with tokens and the cost the offline
prices give (:meth:`Tenant.spend`).

The clients' own network look-ups are switched off here (tracing exporters,
telemetry); the root conftest fails any connection to a host other than loopback.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from llm_pool.runtime import ProxyProcess
from llm_pool.settings import REPO_ROOT
from tests.conftest import SPEND_FLUSH_INTERVAL
from tests.gateway.support import new_tenant, spend_rows

OFFLINE_ENV = {
    "OPENAI_AGENTS_DISABLE_TRACING": "1",  # openai-agents: no trace export to OpenAI
    "OPENAI_AGENTS_DONT_LOG_MODEL_DATA": "1",
    "LANGSMITH_TRACING": "false",  # langchain: no LangSmith
    "LANGCHAIN_TRACING_V2": "false",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm as a client: no price-map download
    "LITELLM_TELEMETRY": "False",
    "LOGFIRE_IGNORE_NO_CONFIG": "1",  # pydantic-ai: no logfire
}
os.environ.update(OFFLINE_ENV)

SPEND_WAIT = 20.0  # seconds for the batched writer (flushes every SPEND_FLUSH_INTERVAL)


def offline_prices() -> dict[str, tuple[float, float]]:
    """deployment id -> (input, output) price per token, from config/offline.yaml."""
    config = yaml.safe_load((REPO_ROOT / "config" / "offline.yaml").read_text())
    return {m["model_info"]["id"]: (m["model_info"]["input_cost_per_token"],
                                    m["model_info"]["output_cost_per_token"])
            for m in config["model_list"]}


PRICES = offline_prices()


@dataclass
class Tenant:
    name: str
    key: str
    proxy_url: str
    pg_url: str

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (``.../v1``)."""
        return f"{self.proxy_url}/v1"

    def spend(self, count: int, *aliases: str) -> list[dict[str, Any]]:
        """Wait for exactly ``count`` spend rows of this tenant, all ``ok`` on one of
        ``aliases`` (default ``fast``) with tokens and the cost its deployment's prices
        give; return them."""
        deadline = time.monotonic() + SPEND_WAIT
        rows = self._rows()
        while len(rows) < count and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = self._rows()
        time.sleep(2 * SPEND_FLUSH_INTERVAL + 0.1)  # a duplicate would land within a flush
        rows = self._rows()
        assert len(rows) == count, [(r["call_type"], r["model_alias"], r["status"]) for r in rows]
        for row in rows:
            check_row(row, self.name, set(aliases or ["fast"]))
        return rows

    def _rows(self) -> list[dict[str, Any]]:
        return spend_rows(self.pg_url, "t.name = %s", (self.name,))


def check_row(row: dict[str, Any], tenant: str, aliases: set[str]) -> None:
    assert row["tenant"] == tenant and row["status"] == "ok", row
    assert row["model_alias"] in aliases and row["deployment"] in PRICES, row
    assert row["prompt_tokens"] > 0, row
    if row["call_type"] != "aembedding":
        assert row["completion_tokens"] > 0, row
    per_in, per_out = PRICES[row["deployment"]]
    expected = row["prompt_tokens"] * per_in + row["completion_tokens"] * per_out
    assert float(row["cost_usd"]) == pytest.approx(expected, rel=1e-6), row


@pytest.fixture(autouse=True)
def _no_lookups_swallowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The root conftest makes a non-loopback lookup raise; a client could swallow
    that (a telemetry thread, a price update): record every attempt and fail on any."""
    guarded = socket.getaddrinfo
    tried: list[str] = []

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("localhost", "::1") and not name.startswith("127."):
            tried.append(name)
        return guarded(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    yield
    assert not tried, f"a client tried to reach {sorted(set(tried))}"


@pytest.fixture
def tenant(offline_proxy: ProxyProcess, pg_url: str, scripted: Any) -> Iterator[Tenant]:
    """A fresh tenant (its own spend rows) with one key, on the offline proxy."""
    name, key = new_tenant(pg_url, "client")
    yield Tenant(name=name, key=key, proxy_url=offline_proxy.url, pg_url=pg_url)
