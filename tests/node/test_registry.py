"""freeim.node.registry: a node's local index of connections and chan members."""

from types import SimpleNamespace

from freeim.node.registry import Registry


def connection(client_id):
    return SimpleNamespace(client_id=client_id)  # what the index reads of a connection


def test_a_client_leaves_its_chans_with_its_last_connection_here():
    registry, web, phone = Registry(), connection(1), connection(1)
    registry.add(web)
    registry.add(phone)
    registry.join(1, ["room", "lobby"])
    assert registry.remove(web) is False and registry.chan_members("room") == {1}
    assert registry.remove(phone) is True
    assert registry.chan_members("room") == set() and registry.chans_by_client() == [] and 1 not in registry.clients
    assert registry.remove(phone) is False  # twice: nothing more


def test_only_clients_connected_here_join():
    registry = Registry()
    registry.join(7, ["room"])
    assert registry.chan_members("room") == set()


def test_leave_and_clear_say_who_was_in():
    registry = Registry()
    for client in (1, 2):
        registry.add(connection(client))
        registry.join(client, ["room", "lobby"])
    assert registry.leave(1, ["room", "elsewhere"]) == ["room"]
    assert sorted(registry.clear("lobby")) == [1, 2]
    assert registry.chans_of(1) == set() and registry.chans_of(2) == {"room"}
    assert registry.chans_by_client() == [(2, ["room"])]


def test_it_counts_the_connections_it_holds():
    registry, web, phone = Registry(), SimpleNamespace(client_id=1, on="web"), SimpleNamespace(client_id=1, on="ios")
    registry.add(web)
    registry.add(phone)
    registry.add(connection(2))
    assert registry.connection_count == 3
    registry.remove(web)
    registry.remove(web)  # not held any more: not counted twice
    assert registry.connection_count == 2


def test_forget_all_empties_the_index():
    registry = Registry()
    registry.add(connection(1))
    registry.join(1, ["room"])
    registry.forget_all()
    assert registry.connection_count == 0
    assert registry.clients == {} and registry.chan_members("room") == set() and list(registry.connections()) == []
