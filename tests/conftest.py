"""Shared fixtures: every test starts on a fresh embedded backend and node."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from demo_project.cluster import RedisServer
from freeim import autojoin
from freeim.backends import reset_backend
from freeim.groups.models import active_group_chans, group_chans_among


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole run (a missing binary fails the run, never skips)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def groups_auto_join_needs_the_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """freeim.groups' auto-join provider and managed-chan test read the database, so only sync tests with
    database access keep them.

    Without access, each connect would log the provider failing on pytest-django's blocker. In an
    async test it would run in asgiref's shared worker thread, whose database connection outlives
    the test and breaks a later test without access (see tests/demo/test_chat.py); the groups tests run
    their sockets under ``async_to_sync`` from sync tests instead.
    """
    has_database = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
        request.fixturenames)
    if has_database and not inspect.iscoroutinefunction(request.function):
        yield
        return
    autojoin.unregister(active_group_chans)
    autojoin.unmanage_many(group_chans_among)
    yield
    autojoin.register(active_group_chans)
    autojoin.manage_many(group_chans_among)


@pytest.fixture(autouse=True)
def fresh_backend() -> Iterator[None]:
    reset_backend()
    yield
    reset_backend()
