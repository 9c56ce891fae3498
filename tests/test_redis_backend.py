"""What only the Redis backend does: heartbeats, reaping, the events stream, the inbox, restarts."""

import asyncio
import inspect
import json
import time
import uuid

import pytest

from demo_project.cluster import RedisServer
from freeim.backends import redis as redis_backend
from freeim.backends.redis import Lua, RedisBackend
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
    return [(f["kind"], f["client"], f["server"]) for _, f in backend._sync.xrange(backend.keys.shared("events"))]


def test_heartbeat_keeps_the_node_alive_and_notices_lost_registration(backend):
    backend.call("register_node", "a", "boot-1")
    assert backend.call("heartbeat", "a", "boot-1") is True
    assert backend.call("heartbeat", "a", "boot-2") is False  # another process took the name
    backend._sync.delete(backend.keys.node("a", "alive"))
    assert backend.call("heartbeat", "a", "boot-1") is False


def test_reaper_takes_dead_nodes_once_and_emits_offline_events(backend):
    backend.call("register_node", "a", "boot-a")
    backend.call("register_node", "b", "boot-b")
    for client in (1, 2):
        backend.call("add_connection", "a", client, f"a{client}", "web")
    backend.call("add_connection", "b", 2, "b2")
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
    backend.call("add_connection", "a", 1, "a1")
    time.sleep(1.1)
    backend.call("register_node", "a", "boot-2")  # restarted just before the reaper looked
    assert backend.call("drop_node", "a", False) == []
    assert backend.call("locate", [1]) == {1: {"a": 1}}


def test_only_one_reaper_at_a_time(backend):
    backend.call("register_node", "a", "boot")
    time.sleep(1.1)
    backend.call("register_node", "b", "boot-b")
    backend._sync.set(backend.keys.shared("reaper"), "other", px=5000)
    assert backend.call("reap", "b") == []
    backend._sync.delete(backend.keys.shared("reaper"))
    assert backend.call("reap", "b") == ["a"]


def test_events_reach_one_consumer_and_unacked_ones_are_claimed(backend):
    backend.call("add_connection", "a", 1, "a1", "web")
    backend.call("remove_connection", "a", 1, "a1", "web")
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
    reader = asyncio.create_task(backend.receive("a", received.append, await backend.acall("inbox_tail", "a")))
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
    reader = asyncio.create_task(backend.receive("a", received.append, await backend.acall("inbox_tail", "a")))
    await backend.acall("add_connection", "a", 1, "a1")
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await backend.acall("locate", [1])
    with pytest.raises(StoreUnavailable):
        backend.call("publish", {"a": [{"op": "x"}]})
    assert time.monotonic() - started < 10
    own_redis.start()
    assert await backend.acall("heartbeat", "a", "boot") is False  # state is gone: the node must register again
    assert await backend.acall("add_connection", "a", 1, "a1") is True  # scripts load again after the restart
    await asyncio.sleep(1)  # the reader reconnects
    await backend.acall("publish", {"a": [{"op": "after"}]})
    for _ in range(60):
        if received:
            break
        await asyncio.sleep(0.1)
    reader.cancel()
    assert received == [[{"op": "after"}]]


class ScriptsRunTwice(RedisBackend):
    """Every script runs twice, as when redis-py retries one whose reply timed out after Redis ran it."""

    def _issue(self, client, scripts, step):
        if not isinstance(step, Lua):
            return super()._issue(client, scripts, step)
        first = super()._issue(client, scripts, step)
        if not inspect.isawaitable(first):
            return super()._issue(client, scripts, step)

        async def again():
            await first
            return await RedisBackend._issue(self, client, scripts, step)

        return again()


def stream_of(backend, key):
    """A stream's entries' fields; an inbox's batches once each (a replayed append wrote one twice)."""
    entries = [fields for _id, fields in backend._sync.xrange(key)]
    if key.endswith(":inbox"):
        return list({fields["b"]: fields["p"] for fields in entries}.values())
    return entries


def state_of(backend):
    """Every key under the backend's prefix and what it holds, without the prefix; streams as their fields."""
    dump = {}
    for key in backend._sync.scan_iter(backend.keys.everything()):
        kind = backend._sync.type(key)
        value = {"string": backend._sync.get, "hash": backend._sync.hgetall, "set": backend._sync.smembers,
                 "zset": lambda k: backend._sync.zrange(k, 0, -1, withscores=True)}.get(kind)
        if kind == "stream":
            dump[key.removeprefix(backend.prefix)] = stream_of(backend, key)
            continue
        if key.endswith(("inbox-sz", "inbox-ix")):
            continue  # they count the duplicates too
        if key == backend.keys.shared("nodes"):
            value = lambda k: backend._sync.zrange(k, 0, -1)  # noqa: E731 (scores are heartbeat times)
        dump[key.removeprefix(backend.prefix)] = value(key)
    return dump


def every_script(backend):
    """A life that runs every script: nodes, connections, chans, a publish, a leave, a clear, a drop, events."""
    backend.call("register_node", "a", "boot-a")
    backend.call("register_node", "b", "boot-b")
    assert backend.call("heartbeat", "a", "boot-a")
    assert backend.call("alive_nodes") == ["a", "b"] and backend.call("reap", "a") == []
    backend.call("add_connection", "a", 1, "a1", "web")
    backend.call("add_connection", "a", 2, "a2")
    backend.call("join", 1, ["room", "lobby"])
    backend.call("join", 2, ["room"])
    backend.call("add_connection", "b", 1, "b1")  # a second device, on a node that must learn the chans
    backend.call("leave", 2, ["room"])
    backend.call("join", 2, ["room"])
    backend.call("publish", {"a": [{"op": "broadcast", "frame": "x"}]})
    backend.call("remove_connection", "a", 1, "a1")
    backend.call("clear_chan", "lobby")
    backend.call("drop_node", "b")
    backend.call("register_node", "c", "boot-c")
    backend.call("add_connection", "c", 3, "c3")
    backend.call("join", 3, ["room"])
    time.sleep(1.1)  # c misses its heartbeats past the TTL (1 s); a beats again
    backend.call("register_node", "a", "boot-a")
    assert backend.call("reap", "a") == ["c"]  # the reaper's lock, and the reaping, run twice too
    backend.call("read_events", "g", "w", 60_000, 10)
    return [backend.call("locate", [1, 2, 3]), backend.call("chan_list"), backend.call("online_clients")]


def test_every_script_is_safe_to_run_twice(redis_server):
    once, twice = (kind(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1) for kind in (RedisBackend, ScriptsRunTwice))
    try:
        (answers_twice, state_twice), (answers_once, state_once) = (
            (every_script(backend), state_of(backend)) for backend in (twice, once))
        assert answers_twice == answers_once == [{2: {"a": 1}}, [("room", 1)], [2]]
        assert state_twice == state_once  # each read right after its run: the heartbeat keys expire
        assert [kind for kind, _client, _node in events_of(once)] == ["online", "online", "offline", "online",
                                                                       "offline"]
    finally:
        once.flush()
        twice.flush()


async def test_a_batch_appended_twice_is_delivered_once(redis_server):
    backend = ScriptsRunTwice(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1)
    received = []
    reader = asyncio.create_task(backend.receive("a", received.append, await backend.acall("inbox_tail", "a")))
    try:
        for n in range(3):
            await backend.acall("publish", {"a": [{"op": "broadcast", "frame": str(n)}]})
        await backend.acall("publish", {"a": [{"op": "fence"}]})
        for _ in range(100):
            if received and received[-1] == [{"op": "fence"}]:
                break
            await asyncio.sleep(0.05)
        assert backend._sync.xlen(backend.keys.node("a", "inbox")) == 8
        assert received == [*([{"op": "broadcast", "frame": str(n)}] for n in range(3)), [{"op": "fence"}]]
    finally:
        reader.cancel()
        backend.flush()


def test_the_inbox_is_bounded_in_bytes(backend, settings):
    settings.FREEIM = {"TRANSPORT_MAX_BYTES": 10_000}
    for n in range(100):
        backend.call("publish", {"a": [{"op": "broadcast", "frame": f"{n:04}" + "x" * 1000}]})
    inbox = backend._sync.xrange(backend.keys.node("a", "inbox"))
    held = sum(len(fields["p"]) for _id, fields in inbox)
    assert held <= 10_000 and int(backend._sync.get(backend.keys.node("a", "inbox-sz"))) == held
    assert json.loads(inbox[-1][1]["p"])[0]["frame"].startswith("0099")  # the oldest went first


def test_the_inbox_stays_within_its_bytes_when_big_batches_follow_many_small_ones(backend, settings):
    """Each append trimmed at most 64 entries: behind thousands of receipts, big batches piled up
    far past TRANSPORT_MAX_BYTES (271 MiB against 64 MiB in the attack)."""
    settings.FREEIM = {"TRANSPORT_MAX_BYTES": 200_000}
    for n in range(1_000):
        backend.call("publish", {"a": [{"op": "send", "to": [1], "frame": f"{n}"}]})
    for _ in range(10):
        backend.call("publish", {"a": [{"op": "broadcast", "frame": "x" * 50_000}]})
    held = int(backend._sync.get(backend.keys.node("a", "inbox-sz")))
    assert held <= 200_000
    assert held == sum(len(fields["p"]) for _id, fields in backend._sync.xrange(backend.keys.node("a", "inbox")))


def test_a_node_trims_its_idle_inbox_by_age(backend, monkeypatch):
    backend.call("publish", {"a": [{"op": "broadcast", "frame": "old"}]})
    monkeypatch.setattr(redis_backend, "INBOX_RETENTION_MS", 0)  # everything is old now...
    time.sleep(0.01)  # ...once a millisecond passed
    backend.call("trim_inbox", "a")
    assert backend._sync.xlen(backend.keys.node("a", "inbox")) == 0
    assert int(backend._sync.get(backend.keys.node("a", "inbox-sz"))) == 0


async def test_pooled_connections_that_died_with_redis_are_replaced_without_a_failed_call(own_redis):
    """The asyncio pools got redis-py's blocking Retry, which retries nothing there: after a Redis
    restart each dead pooled connection failed one call (a node refused handshakes with it)."""
    backend = RedisBackend(own_redis.url, "r", 1)
    await asyncio.gather(*(backend.acall("locate", [n]) for n in range(5)))  # several pooled connections
    backend.call("locate", [1])
    own_redis.stop()
    own_redis.start()
    for n in range(5):
        assert await backend.acall("locate", [n]) == {}
    assert backend.call("locate", [1]) == {}


class CountingSteps(RedisBackend):
    """Counts the steps (round trips) each operation takes."""

    steps = 0

    def _perform(self, step):
        self.steps += 1
        return super()._perform(step)


def test_a_disconnect_with_the_right_chans_hint_takes_one_round_trip(redis_server):
    backend = CountingSteps(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1)
    try:
        for client in (1, 2):
            backend.call("add_connection", "a", client, f"a{client}")
            backend.call("join", client, ["room", "lobby"])
        for client, hint in ((1, ()), (2, ("lobby", "room"))):
            backend.steps = 0
            assert backend.call("remove_connection", "a", client, f"a{client}", "", hint) is True
            assert backend.steps == (2 if not hint else 1)  # no hint: Redis names the chans, then again
        assert backend.call("online_clients") == [] and backend.call("chan_list") == []
    finally:
        backend.flush()
