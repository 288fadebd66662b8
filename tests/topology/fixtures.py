"""Fixtures for tests that run the production process set (imported by the tests that use them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.topology.stack import PrivateRedis


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis server of the test's own on an ephemeral port: restarting it touches nobody else."""
    redis = PrivateRedis().start()
    yield redis
    redis.stop()
