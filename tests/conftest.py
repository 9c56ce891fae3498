"""Shared fixtures. Every test starts on a fresh embedded backend and node, auto-join off without database
access: freeim's own pytest plugin (freeim.testing), which projects get from the package's entry point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo_project.cluster import RedisCluster, RedisServer

pytest_plugins = ["freeim.testing.pytest_plugin"]  # the checkout is not installed: no entry point


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole run (a missing binary fails the run, never skips)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_one() -> Iterator[RedisCluster]:
    """A Redis Cluster of one master owning every slot: a step whose keys span slots fails there as on many."""
    cluster = RedisCluster(masters=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of three masters, each with a replica to fail over to (a test that kills a master restarts
    it, and waits for it to follow, before it ends)."""
    cluster = RedisCluster(masters=3, replicas=1)
    cluster.start()
    yield cluster
    cluster.stop()
