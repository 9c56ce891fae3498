"""The embedded store's semantics (the Redis store must match them)."""

import time

from freeim.backends.memory import MemoryBackend


def test_token_is_one_time_and_expires(monkeypatch):
    store = MemoryBackend()
    store.issue_token("t1", {"client_id": 1}, ttl=10)
    assert store.redeem_token("t1") == {"client_id": 1}
    assert store.redeem_token("t1") is None
    store.issue_token("t2", {"client_id": 1}, ttl=10)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert store.redeem_token("t2") is None
    assert store.redeem_token("unknown") is None


def test_presence_counts_connections_per_node():
    store = MemoryBackend()
    assert store.add_connection("a", 1) is True
    assert store.add_connection("b", 1) is False
    assert store.locate([1, 2]) == {1: {"a": 1, "b": 1}}
    assert store.remove_connection("a", 1) is False
    assert store.remove_connection("a", 1) is False  # not there any more: no double count
    assert store.remove_connection("b", 1) is True
    assert store.online_clients() == []


def test_chans_need_online_members_and_are_left_on_last_disconnect():
    store = MemoryBackend()
    assert store.join(1, ["room"]) is False
    store.add_connection("a", 1)
    store.add_connection("a", 2)
    assert store.join(1, ["room", "lobby"]) and store.join(2, ["room"])
    assert store.chan_list() == [("lobby", 1), ("room", 2)]
    assert store.client_chans(1) == ["lobby", "room"]
    assert store.chan_nodes("room") == ["a"]
    store.remove_connection("a", 1)
    assert store.chan_members("room") == [2] and store.chan_online("lobby") == 0
    store.leave(2, ["room"])
    assert store.chan_list() == []


def test_clear_chan_returns_members():
    store = MemoryBackend()
    for client in (1, 2):
        store.add_connection("a", client)
        store.join(client, ["room"])
    assert sorted(store.clear_chan("room")) == [1, 2]
    assert store.client_chans(1) == [] and store.chan_members("room") == []


def test_drop_node_returns_clients_only_there():
    store = MemoryBackend()
    store.register_node("a")
    store.add_connection("a", 1)
    store.add_connection("a", 2)
    store.add_connection("b", 2)
    store.join(1, ["room"])
    assert store.drop_node("a") == [1]
    assert store.locate([1, 2]) == {2: {"b": 1}}
    assert store.chan_list() == [] and store.alive_nodes() == []
