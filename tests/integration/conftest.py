"""Fixtures of the integration tests: the worker cluster (see ``worker_harness``)."""

from tests.integration.worker_harness import cluster  # noqa: F401
