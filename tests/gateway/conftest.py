"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.tcp_forwarder import TcpForwarder, forwarded_postgres


@pytest.fixture(scope="module")
def pg_forwarder(pg_url: str) -> Iterator[TcpForwarder]:
    """The test PostgreSQL behind a :class:`TcpForwarder` the module's tests may cut."""
    with forwarded_postgres(pg_url) as running:
        yield running
