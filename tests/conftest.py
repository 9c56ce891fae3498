"""Shared fixtures: every test starts on a fresh embedded backend and node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo_project.cluster import RedisServer
from freeim.backends import reset_backend


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole run (a missing binary fails the run, never skips)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_backend() -> Iterator[None]:
    reset_backend()
    yield
    reset_backend()
