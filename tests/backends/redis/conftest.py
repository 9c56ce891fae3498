"""Fixtures of the Redis backend's tests: a backend under a prefix of its own on the run's redis-server."""

import uuid

import pytest

from freeim.backends.redis import RedisBackend
from tests.blocking import blocking


@pytest.fixture
def backend(redis_server):
    store = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1)
    yield store
    store.flush()


@pytest.fixture
def sync(backend):
    return blocking(backend)
