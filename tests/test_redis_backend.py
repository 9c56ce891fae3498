"""What only the Redis backend does: heartbeats, reaping, the events stream, the inbox, restarts."""

import asyncio
import time
import uuid

import pytest

from demo_project.cluster import RedisServer
from freeim.backends.redis import RedisBackend
from freeim.exceptions import StoreUnavailable


@pytest.fixture
def backend(redis_server):
    store = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1)
    yield store
    store.flush()


@pytest.fixture
def own_redis():
    """A redis-server this test may stop and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def events_of(backend):
    return [(f["kind"], f["client"], f["server"]) for _, f in backend._sync.xrange(backend.key("events"))]


def test_heartbeat_keeps_the_node_alive_and_notices_lost_registration(backend):
    backend.call("register_node", "a", "boot-1")
    assert backend.call("heartbeat", "a", "boot-1") is True
    assert backend.call("heartbeat", "a", "boot-2") is False  # another process took the name
    backend._sync.delete(backend.key("node", "a", "alive"))
    assert backend.call("heartbeat", "a", "boot-1") is False


def test_reaper_takes_dead_nodes_once_and_emits_offline_events(backend):
    backend.call("register_node", "a", "boot-a")
    backend.call("register_node", "b", "boot-b")
    for client in (1, 2):
        backend.call("add_connection", "a", client, "web")
    backend.call("add_connection", "b", 2)
    backend.call("join", 1, ["room"])
    time.sleep(1.2)  # a missed its heartbeats for 1.2 s > TTL 1 s...
    backend.call("register_node", "b", "boot-b")  # ...while b is (again) registered just now
    assert backend.call("alive_nodes") == ["b"]
    assert backend.call("reap", "b") == ["a"]
    assert backend.call("reap", "b") == []
    assert backend.call("locate", [1, 2]) == {2: {"b": 1}}
    assert backend.call("chan_list") == []
    assert events_of(backend) == [("online", "1", "a"), ("online", "2", "a"), ("offline", "1", "a")]


def test_reaper_leaves_a_node_that_came_back(backend):
    backend.call("register_node", "a", "boot-1")
    backend.call("add_connection", "a", 1)
    time.sleep(1.1)
    backend.call("register_node", "a", "boot-2")  # restarted just before the reaper looked
    assert backend.call("drop_node", "a", False) == []
    assert backend.call("locate", [1]) == {1: {"a": 1}}


def test_only_one_reaper_at_a_time(backend):
    backend.call("register_node", "a", "boot")
    time.sleep(1.1)
    assert backend._sync_scripts["reaper_lock"](args=(backend.prefix, "other", 5000, "take"))
    assert backend.call("reap", "b") == []
    backend._sync_scripts["reaper_lock"](args=(backend.prefix, "other", 0, "give"))
    assert backend.call("reap", "b") == ["a"]


def test_events_reach_one_consumer_and_unacked_ones_are_claimed(backend):
    backend.call("add_connection", "a", 1, "web")
    backend.call("remove_connection", "a", 1, "web")
    first = backend.call("read_events", "g", "w1", 60_000, 100)
    assert [f["kind"] for _, f in first] == ["online", "offline"]
    assert backend.call("read_events", "g", "w2", 60_000, 100) == []  # w1 holds them
    time.sleep(0.2)
    claimed = backend.call("read_events", "g", "w2", 100, 100)  # w1 "died": claimed after 100 ms idle
    assert [entry_id for entry_id, _ in claimed] == [entry_id for entry_id, _ in first]
    backend.call("ack_events", "g", [entry_id for entry_id, _ in claimed])
    time.sleep(0.2)
    assert backend.call("read_events", "g", "w3", 100, 100) == []


async def test_inbox_delivers_batches_in_order(backend):
    received = []
    reader = asyncio.create_task(backend.receive("a", received.append))
    await asyncio.sleep(0.2)
    for n in range(3):
        await backend.acall("publish", {"a": [{"op": "broadcast", "frame": str(n)}], "b": [{"op": "x"}]})
    for _ in range(50):
        if len(received) == 3:
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    assert received == [[{"op": "broadcast", "frame": str(n)}] for n in range(3)]


async def test_redis_restart_fails_calls_loudly_then_recovers(own_redis):
    backend = RedisBackend(own_redis.url, "r", 1)
    received = []
    reader = asyncio.create_task(backend.receive("a", received.append))
    await backend.acall("add_connection", "a", 1)
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await backend.acall("locate", [1])
    with pytest.raises(StoreUnavailable):
        backend.call("publish", {"a": [{"op": "x"}]})
    assert time.monotonic() - started < 10
    own_redis.start()
    assert await backend.acall("heartbeat", "a", "boot") is False  # state is gone: the node must register again
    assert await backend.acall("add_connection", "a", 1) is True  # scripts load again after the restart
    await asyncio.sleep(1)  # the reader reconnects
    await backend.acall("publish", {"a": [{"op": "after"}]})
    for _ in range(60):
        if received:
            break
        await asyncio.sleep(0.1)
    reader.cancel()
    assert received == [[{"op": "after"}]]
