"""The store's semantics, identical for the embedded (memory) and the Redis backend."""

import asyncio
import time
import uuid

import pytest

from freeim.backends.memory import MemoryBackend
from freeim.backends.redis import RedisBackend
from freeim.exceptions import TooManyChans, TooManyConnections


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryBackend()
        return
    backend = RedisBackend(request.getfixturevalue("redis_server").url, f"t{uuid.uuid4().hex[:8]}", 1)
    yield backend
    backend.flush()


def test_token_is_one_time(store):
    store.call("issue_token", "t1", {"client_id": 1, "meta": "m", "server": "a"}, 10)
    assert store.call("redeem_token", "t1") == {"client_id": 1, "meta": "m", "server": "a"}
    assert store.call("redeem_token", "t1") is None
    assert store.call("redeem_token", "unknown") is None


def test_token_expires(store, monkeypatch):
    store.call("issue_token", "t2", {"client_id": 1}, 1)
    if isinstance(store, MemoryBackend):
        now = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: now + 2)
    else:
        time.sleep(1.1)
    assert store.call("redeem_token", "t2") is None


def test_presence_counts_connections_per_node(store):
    assert store.call("add_connection", "a", 1, "a1", "web") is True
    assert store.call("add_connection", "b", 1, "b1", "ios") is False
    assert store.call("add_connection", "a", 1, "a2") is False
    assert store.call("add_connection", "a", "bob", "a3") is True
    assert store.call("locate", [1, 2, "bob"]) == {1: {"a": 2, "b": 1}, "bob": {"a": 1}}
    assert store.call("remove_connection", "a", 1, "a1") is False
    assert store.call("remove_connection", "a", 1, "a1") is False  # not there any more: no double count
    assert store.call("remove_connection", "b", 1, "a2") is False  # not a connection of node b
    assert store.call("remove_connection", "a", 1, "a2") is False
    assert store.call("remove_connection", "b", 1, "b1") is True
    assert store.call("online_clients") == ["bob"]


def test_adding_a_connection_twice_adds_it_once(store):
    """redis-py sends a command again when its reply timed out, after Redis may have run it."""
    assert store.call("add_connection", "a", 1, "a1") is True
    assert store.call("add_connection", "a", 1, "a1") is True  # the replay answers as the first run did
    assert store.call("locate", [1]) == {1: {"a": 1}}
    assert store.call("remove_connection", "a", 1, "a1") is True
    assert store.call("online_clients") == []


def test_a_client_holds_at_most_max_connections(store, settings):
    settings.FREEIM = {"MAX_CONNECTIONS_PER_CLIENT": 2}
    store.call("add_connection", "a", 1, "a1")
    store.call("add_connection", "b", 1, "b1")
    with pytest.raises(TooManyConnections):
        store.call("add_connection", "a", 1, "a2")
    assert store.call("locate", [1]) == {1: {"a": 1, "b": 1}}
    store.call("remove_connection", "b", 1, "b1")
    assert store.call("add_connection", "a", 1, "a2") is False


def test_a_client_is_in_at_most_max_chans(store, settings):
    settings.FREEIM = {"MAX_CHANS_PER_CLIENT": 2}
    store.call("add_connection", "a", 1, "a1")
    store.call("join", 1, ["one", "two"])
    store.call("join", 1, ["one", "two"])  # already in: joins nothing more
    with pytest.raises(TooManyChans):
        store.call("join", 1, ["two", "three"])
    assert store.call("client_chans", 1) == ["one", "two"] and store.call("chan_members", "three") == []
    store.call("leave", 1, ["one"])
    store.call("join", 1, ["three"])
    assert store.call("client_chans", 1) == ["three", "two"]


def test_chans_need_online_members_and_are_left_on_last_disconnect(store):
    assert store.call("join", 1, ["room"]) is False
    store.call("add_connection", "a", 1, "a-1")
    store.call("add_connection", "b", 2, "b-2")
    assert store.call("join", 1, ["room", "lobby"]) and store.call("join", 2, ["room"])
    assert store.call("chan_list") == [("lobby", 1), ("room", 2)]
    assert store.call("client_chans", 1) == ["lobby", "room"]
    assert store.call("chan_nodes", "room") == ["a", "b"]
    store.call("remove_connection", "a", 1, "a-1")
    assert store.call("chan_members", "room") == [2] and store.call("chan_online", "lobby") == 0
    assert store.call("chan_nodes", "room") == ["b"]
    store.call("leave", 2, ["room"])
    assert store.call("chan_list") == [] and store.call("chan_nodes", "room") == []


def test_chan_nodes_follow_connections_of_members(store):
    store.call("add_connection", "a", 1, "a-1")
    store.call("join", 1, ["room"])
    store.call("add_connection", "b", 1, "b-1")  # a second device on another node
    assert store.call("chan_nodes", "room") == ["a", "b"]
    store.call("remove_connection", "a", 1, "a-1")
    assert store.call("chan_nodes", "room") == ["b"] and store.call("chan_members", "room") == [1]


def test_clear_chan_returns_members(store):
    for client in (1, 2):
        store.call("add_connection", "a", client, f"a-{client}")
        store.call("join", client, ["room"])
    assert sorted(store.call("clear_chan", "room")) == [1, 2]
    assert store.call("client_chans", 1) == [] and store.call("chan_members", "room") == []
    assert store.call("chan_nodes", "room") == []


def test_drop_node_returns_clients_only_there(store):
    store.call("register_node", "a", "boot-1")
    store.call("add_connection", "a", 1, "a-1")
    store.call("add_connection", "a", 2, "a-2")
    store.call("add_connection", "b", 2, "b-2")
    store.call("join", 1, ["room"])
    assert store.call("alive_nodes") == ["a"]
    assert store.call("drop_node", "a") == [1]
    assert store.call("locate", [1, 2]) == {2: {"b": 1}}
    assert store.call("chan_list") == [] and store.call("alive_nodes") == []


def test_clients_chans_reads_many_at_once(store):
    store.call("add_connection", "a", 1, "a-1")
    store.call("join", 1, ["room", "lobby"])
    assert store.call("clients_chans", [1, 2]) == {1: ["lobby", "room"], 2: []}


async def test_what_is_published_after_the_inbox_tail_is_read_reaches_the_reader(store):
    """A node takes its inbox's tail, registers, then reads from that tail: a batch published between
    its registration and its first read was lost when the reader started from the newest entry."""
    after = await store.acall("inbox_tail", "a")
    await store.acall("publish", {"a": [{"op": "early"}]})
    received = []
    reader = asyncio.create_task(store.receive("a", received.append, after))
    try:
        await store.acall("publish", {"a": [{"op": "late"}]})
        for _ in range(100):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert received == [[{"op": "early"}], [{"op": "late"}]]
    finally:
        reader.cancel()
