"""Shared fixtures. Every test starts on a fresh embedded backend and node, auto-join off without database
access: freeim's own pytest plugin (freeim.testing), which projects get from the package's entry point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo_project.cluster import RedisServer

pytest_plugins = ["freeim.testing.pytest_plugin"]  # the checkout is not installed: no entry point


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole run (a missing binary fails the run, never skips)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
