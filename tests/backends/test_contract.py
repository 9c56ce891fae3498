"""The store's semantics, identical for the embedded (memory) and the Redis backend, on one server and on Redis
Clusters of one master and of three (where a script whose keys span slots fails, and a pipeline's steps go to several
masters)."""

import asyncio
import time
import uuid

import pytest

from freeim.backends.contract import Letter
from freeim.backends.memory import MemoryBackend
from freeim.backends.redis import RedisBackend
from freeim.exceptions import TooManyChans, TooManyConnections
from tests.blocking import blocking
from tests.health import report
from tests.waiting import eventually

#: The Redis each backend but the embedded one runs on: one server, a cluster of one master (a script whose keys span
#: two slots fails there as on any cluster), and a cluster of three masters with replicas (pipelines split by master).
REDIS = {"redis": "redis_server", "redis-cluster-1": "redis_cluster_one", "redis-cluster-3": "redis_cluster"}


@pytest.fixture(params=["memory", *REDIS])
def backend(request):
    if request.param == "memory":
        yield MemoryBackend()
        return
    redis = request.getfixturevalue(REDIS[request.param])
    backend = RedisBackend(redis.url, f"t{uuid.uuid4().hex[:8]}", 1)
    yield backend
    backend.flush()


@pytest.fixture
def sync(backend):
    return blocking(backend)


def test_token_is_one_time(sync):
    sync.store.issue_token("t1", {"client_id": 1, "meta": "m", "server": "a"}, 10)
    assert sync.store.redeem_token("t1") == {"client_id": 1, "meta": "m", "server": "a"}
    assert sync.store.redeem_token("t1") is None
    assert sync.store.redeem_token("unknown") is None


def test_token_expires(sync, backend, monkeypatch):
    sync.store.issue_token("t2", {"client_id": 1}, 1)
    if isinstance(backend, MemoryBackend):
        now = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: now + 2)
    else:
        time.sleep(1.1)
    assert sync.store.redeem_token("t2") is None


def test_presence_counts_connections_per_node(sync):
    assert sync.store.add_connection("a", 1, "a1", "web") is True
    assert sync.store.add_connection("b", 1, "b1", "ios") is False
    assert sync.store.add_connection("a", 1, "a2") is False
    assert sync.store.add_connection("a", "bob", "a3") is True
    assert sync.store.locate([1, 2, "bob"]) == {1: {"a": 2, "b": 1}, "bob": {"a": 1}}
    assert sync.store.remove_connection("a", 1, "a1") is False
    assert sync.store.remove_connection("a", 1, "a1") is False  # not there any more: no double count
    assert sync.store.remove_connection("b", 1, "a2") is False  # not a connection of node b
    assert sync.store.remove_connection("a", 1, "a2") is False
    assert sync.store.remove_connection("b", 1, "b1") is True
    assert sync.store.online_clients() == ["bob"]


def test_adding_a_connection_twice_adds_it_once(sync):
    """redis-py sends a command again when its reply timed out, after Redis may have run it."""
    assert sync.store.add_connection("a", 1, "a1") is True
    assert sync.store.add_connection("a", 1, "a1") is True  # the replay answers as the first run did
    assert sync.store.locate([1]) == {1: {"a": 1}}
    assert sync.store.remove_connection("a", 1, "a1") is True
    assert sync.store.online_clients() == []


def test_a_client_holds_at_most_max_connections(sync, settings):
    settings.FREEIM = {"MAX_CONNECTIONS_PER_CLIENT": 2}
    sync.store.add_connection("a", 1, "a1")
    sync.store.add_connection("b", 1, "b1")
    with pytest.raises(TooManyConnections):
        sync.store.add_connection("a", 1, "a2")
    assert sync.store.locate([1]) == {1: {"a": 1, "b": 1}}
    sync.store.remove_connection("b", 1, "b1")
    assert sync.store.add_connection("a", 1, "a2") is False


def test_a_client_is_in_at_most_max_chans(sync, settings):
    settings.FREEIM = {"MAX_CHANS_PER_CLIENT": 2}
    sync.store.add_connection("a", 1, "a1")
    sync.store.join(1, ["one", "two"])
    sync.store.join(1, ["one", "two"])  # already in: joins nothing more
    with pytest.raises(TooManyChans):
        sync.store.join(1, ["two", "three"])
    assert sync.store.client_chans(1) == ["one", "two"] and sync.store.chan_members("three") == []
    sync.store.leave(1, ["one"])
    sync.store.join(1, ["three"])
    assert sync.store.client_chans(1) == ["three", "two"]


def test_chans_need_online_members_and_are_left_on_last_disconnect(sync):
    assert sync.store.join(1, ["room"]) is False
    sync.store.add_connection("a", 1, "a-1")
    sync.store.add_connection("b", 2, "b-2")
    assert sync.store.join(1, ["room", "lobby"]) and sync.store.join(2, ["room"])
    assert sync.store.chan_list() == [("lobby", 1), ("room", 2)]
    assert sync.store.client_chans(1) == ["lobby", "room"]
    assert sync.store.chan_nodes("room") == ["a", "b"]
    sync.store.remove_connection("a", 1, "a-1")
    assert sync.store.chan_members("room") == [2] and sync.store.chan_online("lobby") == 0
    assert sync.store.chan_nodes("room") == ["b"]
    sync.store.leave(2, ["room"])
    assert sync.store.chan_list() == [] and sync.store.chan_nodes("room") == []


def test_chan_nodes_follow_connections_of_members(sync):
    sync.store.add_connection("a", 1, "a-1")
    sync.store.join(1, ["room"])
    sync.store.add_connection("b", 1, "b-1")  # a second device on another node
    assert sync.store.chan_nodes("room") == ["a", "b"]
    sync.store.remove_connection("a", 1, "a-1")
    assert sync.store.chan_nodes("room") == ["b"] and sync.store.chan_members("room") == [1]


def test_clear_chan_returns_members(sync):
    for client in (1, 2):
        sync.store.add_connection("a", client, f"a-{client}")
        sync.store.join(client, ["room"])
    assert sorted(sync.store.clear_chan("room")) == [1, 2]
    assert sync.store.client_chans(1) == [] and sync.store.chan_members("room") == []
    assert sync.store.chan_nodes("room") == []


def test_drop_node_returns_clients_only_there(sync):
    sync.nodes.register_node("a", "boot-1")
    sync.store.add_connection("a", 1, "a-1")
    sync.store.add_connection("a", 2, "a-2")
    sync.store.add_connection("b", 2, "b-2")
    sync.store.join(1, ["room"])
    assert sync.nodes.alive_nodes() == ["a"]
    assert sync.nodes.drop_node("a") == [1]
    assert sync.store.locate([1, 2]) == {2: {"b": 1}}
    assert sync.store.chan_list() == [] and sync.nodes.alive_nodes() == []


def test_a_draining_node_is_alive_but_takes_no_new_terminals(sync):
    for node in ("a", "b"):
        sync.nodes.register_node(node, f"boot-{node}")
    sync.nodes.set_draining("a", True)
    assert sync.nodes.alive_nodes() == ["a", "b"]  # still delivered to: its terminals are moving
    assert sync.nodes.alive_nodes(accepting=True) == ["b"]
    assert sync.nodes.draining_nodes() == ["a"]
    sync.nodes.set_draining("a", False)
    assert sync.nodes.alive_nodes(accepting=True) == ["a", "b"]
    assert sync.nodes.draining_nodes() == []


def test_a_token_is_issued_while_the_nodes_that_take_terminals_are_read(sync):
    for node in ("b", "a"):
        sync.nodes.register_node(node, f"boot-{node}")
    sync.nodes.set_draining("b", True)
    record = {"client_id": 1, "meta": "", "server": "a"}
    assert sync.store.issue_token_seeing_nodes("t1", record, 60, 10.0) == ["a"]
    assert sync.store.redeem_token("t1") == record


def test_a_node_publishes_its_health_with_its_heartbeat_and_the_report_goes_with_the_node(sync, backend):
    """Status reports read each node's own readiness, loop lag and drain state, which live in its process."""
    sync.nodes.register_node("a", "boot-a")
    assert sync.nodes.node_health(["a", "b"]) == {} and sync.nodes.node_health([]) == {}
    assert sync.nodes.heartbeat("a", "boot-a", report()) is True
    assert sync.nodes.node_health(["a", "b"]) == {"a": report()}
    draining = report(ready=False, reasons=["the node is draining"], draining=True)
    sync.nodes.publish_health("a", draining)  # at once as it starts draining, not at its next beat
    assert sync.nodes.node_health(["a"]) == {"a": draining}
    if isinstance(backend, MemoryBackend):
        sync.nodes.drop_node("a")  # one process: the node forgets its report as it stops
    else:
        time.sleep(1.1)  # past the heartbeat TTL (1 s): a dead node's report is gone before it is reaped
    assert sync.nodes.node_health(["a"]) == {}


def test_a_node_dropped_while_draining_is_not_draining_when_it_comes_back(sync):
    """Killed mid-drain, then reaped (or cleaned by its restart): its next process takes terminals again."""
    sync.nodes.register_node("a", "boot-1")
    sync.nodes.set_draining("a", True)
    sync.nodes.drop_node("a")
    sync.nodes.register_node("a", "boot-2")
    assert sync.nodes.alive_nodes(accepting=True) == ["a"]


def test_release_moved_takes_off_only_clients_back_on_another_node(sync):
    """A drained node's connections stay in presence until their clients are back elsewhere: no offline, no
    online for them; those not back yet stay, and the node's final drop takes them offline."""
    sync.nodes.register_node("a", "boot-a")
    sync.store.add_connection("a", 1, "a-1")
    sync.store.add_connection("a", 1, "a-1b")
    sync.store.add_connection("a", 2, "a-2")
    sync.store.add_connection("a", 3, "a-3")
    sync.store.join(1, ["room"])
    assert sync.nodes.release_moved("a") == 4  # nobody back yet: nothing changes
    assert sync.store.add_connection("b", 1, "b-1") is False  # still online: no online event
    assert sync.store.add_connection("b", 3, "b-3") is False
    assert sync.nodes.release_moved("a") == 1
    assert sync.store.locate([1, 2, 3]) == {1: {"b": 1}, 2: {"a": 1}, 3: {"b": 1}}
    assert sync.store.client_chans(1) == ["room"] and sync.store.chan_nodes("room") == ["b"]
    assert sync.nodes.drop_node("a") == [2]
    assert sorted(sync.store.online_clients()) == [1, 3]


def test_drop_node_keeps_the_connections_it_is_told_to(sync):
    """What a node that rebuilds its presence does: its live connections stay (no offline event, no flap), the
    ones the store wrongly holds go."""
    sync.nodes.register_node("a", "boot-1")
    for client, conn in ((1, "a-1"), (2, "a-2"), (2, "a-3"), (3, "a-4")):
        sync.store.add_connection("a", client, conn)
    sync.store.join(1, ["room"])
    sync.store.join(3, ["room"])
    assert sync.nodes.drop_node("a", True, keep={"a-2", "a-4"}) == [1]
    assert sync.store.locate([1, 2, 3]) == {2: {"a": 1}, 3: {"a": 1}}
    assert sync.store.chan_members("room") == [3] and sync.nodes.alive_nodes() == ["a"]


def test_clients_chans_reads_many_at_once(sync):
    sync.store.add_connection("a", 1, "a-1")
    sync.store.join(1, ["room", "lobby"])
    assert sync.store.clients_chans([1, 2]) == {1: ["lobby", "room"], 2: []}


async def test_what_is_published_after_the_inbox_tail_is_read_reaches_the_reader(backend):
    """A node takes its inbox's tail, registers, then reads from that tail: a batch published between
    its registration and its first read was lost when the reader started from the newest entry."""
    after = await backend.transport.inbox_tail("a")
    await backend.transport.publish({"a": [{"op": "early"}]})
    received = []
    reader = asyncio.create_task(backend.transport.receive("a", lambda batch, _sent: received.append(batch), after))
    try:
        await backend.transport.publish({"a": [{"op": "late"}]})
        await eventually(lambda: len(received) == 2)
        assert received == [[{"op": "early"}], [{"op": "late"}]]
    finally:
        reader.cancel()


def read(sync, client, since):
    """An inbox read as ``(gap, [(position, frame)...])``."""
    answer = sync.store.read_inbox(client, since)
    return answer.gap, [(kept.position, kept.frame) for kept in answer.messages]


def store(sync, *letters):
    """Store letters; their positions."""
    return [at for at, _nodes in sync.store.store_messages(list(letters), [])[0]]


def test_an_inbox_numbers_its_messages_and_reads_after_a_position(sync):
    sync.store.add_connection("a", 1, "a1")
    letters = [Letter(1, "m1", '{"n":1}'), Letter(2, "m2", '{"n":2}'), Letter(1, "m3", '{"n":3}')]
    stored, located = sync.store.store_messages(letters, [1, 3])
    (first, at_1), (_, at_2), (third, _) = stored
    assert at_1 == {"a": 1} and at_2 == {} and located == {1: {"a": 1}}  # 2 is offline: its message waits
    epoch = first.split(".")[0]
    assert (first, third) == (f"{epoch}.1", f"{epoch}.2")
    assert read(sync, 1, "*") == (False, [(first, '{"n":1}'), (third, '{"n":3}')])
    assert read(sync, 1, first) == (False, [(third, '{"n":3}')])
    assert read(sync, 1, third) == (False, [])
    assert read(sync, 2, "*")[1][0][1] == '{"n":2}'


def test_a_message_stored_twice_is_kept_once(sync):
    [once] = store(sync, Letter(1, "m1", "{}"))
    [again] = store(sync, Letter(1, "m1", "{}"))  # a retried call
    assert once == again and len(read(sync, 1, "*")[1]) == 1


def test_an_inbox_remembers_who_wants_a_receipt(sync):
    store(sync, Letter(1, "m1", "{}", "bob"), Letter(1, "m2", "{}"))
    assert [(kept.id, kept.receipt_to) for kept in sync.store.read_inbox(1, "*").messages] == [("m1", "bob"),
                                                                                            ("m2", None)]


def test_reading_from_before_what_the_inbox_still_keeps_is_a_gap(sync, settings):
    settings.FREEIM = {"INBOX_MAX_MESSAGES": 3}
    positions = [store(sync, Letter(1, f"m{n}", f'{{"n":{n}}}'))[0] for n in range(5)]
    gap, kept = read(sync, 1, positions[0])  # 1 was trimmed: the inbox keeps 2, 3, 4
    assert gap and [frame for _, frame in kept] == ['{"n":2}', '{"n":3}', '{"n":4}']
    assert read(sync, 1, positions[1]) == (False, [(at, f'{{"n":{n}}}') for n, at in enumerate(positions) if n > 1])


def test_a_position_of_another_epoch_or_of_an_inbox_gone_is_a_gap(sync):
    [kept] = store(sync, Letter(1, "m1", "{}"))
    assert read(sync, 1, "0123abcd.7") == (True, [(kept, "{}")])  # the inbox was made again
    assert read(sync, 2, "0123abcd.7") == (True, [])  # nothing kept for 2 any more
    assert read(sync, 2, "*") == (False, [])


def test_a_position_past_the_newest_of_the_inbox_is_a_gap(sync):
    """It read as up to date: a Redis restored from an older snapshot (same epoch, a lower newest offset) gave
    the offsets a terminal held to new messages, which it then never got, and no gap said so."""
    first, second = store(sync, Letter(1, "m1", "{}"), Letter(1, "m2", "{}"))
    epoch = first.split(".")[0]
    assert read(sync, 1, f"{epoch}.999999999999999999") == (True, [(first, "{}"), (second, "{}")])
    assert read(sync, 1, second) == (False, [])  # the newest itself: up to date


def test_a_chan_stream_numbers_its_messages_and_names_the_nodes_of_its_members(sync):
    sync.store.add_connection("a", 1, "a1")
    sync.store.join(1, ["room"])
    first, nodes = sync.store.store_chan_message("room", "m1", '{"n":1}')
    second, _ = sync.store.store_chan_message("room", "m2", '{"n":2}')
    assert nodes == ["a"] and first.endswith(".1") and second.endswith(".2")
    assert [(kept.position, kept.frame) for kept in sync.store.read_chans({"room": first})["room"].messages] == [
        (second, '{"n":2}')]
    assert sync.store.read_chans({"room": "0123abcd.1"})["room"].gap
    assert sync.store.store_chan_message("empty", "m3", "{}")[1] == []


def test_a_dropped_chan_stream_keeps_nothing_and_starts_a_new_epoch(sync):
    first, _ = sync.store.store_chan_message("room", "m1", "{}")
    sync.store.store_chan_message("other", "m2", "{}")
    sync.store.drop_chan_stream("room")
    assert sync.store.read_chans({"room": "*"})["room"].messages == []
    assert sync.store.read_chans({"room": first})["room"].gap  # what came after it is not known any more
    again, _ = sync.store.store_chan_message("room", "m1", "{}")  # the id is forgotten too
    assert again.split(".")[0] != first.split(".")[0]
    assert len(sync.store.read_chans({"other": "*"})["other"].messages) == 1


def test_messages_older_than_the_age_limit_go_with_the_next_append(sync, settings):
    settings.FREEIM = {"INBOX_MAX_AGE": 1}
    [old] = store(sync, Letter(1, "m1", '{"n":1}'))
    time.sleep(1.1)  # the limit is in seconds: let one pass
    [new] = store(sync, Letter(1, "m2", '{"n":2}'))
    assert read(sync, 1, "*") == (False, [(new, '{"n":2}')])
    assert read(sync, 1, old) == (False, [(new, '{"n":2}')])  # nothing lost after old: no gap


def test_an_idle_inbox_gives_its_messages_up_after_the_age_limit_and_keeps_its_place(sync, settings):
    """An inbox nobody writes to any more gives its messages up (Redis expires the stream, the memory backend
    drops them as it goes), but a terminal that comes back later learns nothing was lost after its position."""
    settings.FREEIM = {"INBOX_MAX_AGE": 1}
    [last] = store(sync, Letter(1, "m1", "{}"))
    time.sleep(1.2)
    store(sync, Letter(2, "m2", "{}"))  # another inbox is written meanwhile
    assert read(sync, 1, "*") == (False, [])
    assert read(sync, 1, last) == (False, [])


def test_status_reads_count_what_each_node_holds(sync, backend):
    sync.nodes.register_node("a", "boot-a")
    sync.nodes.register_node("b", "boot-b")
    for node, client, conn in (("a", 1, "a1"), ("a", 1, "a2"), ("a", "bob", "a3"), ("b", 1, "b1"), ("b", 2, "b2")):
        sync.store.add_connection(node, client, conn)
    sync.store.join(1, ["room", "lobby"])
    sync.store.join(2, ["room"])
    assert sync.store.node_loads(["a", "b", "gone"]) == {"a": (3, 2), "b": (2, 2), "gone": (0, 0)}
    assert sync.store.node_loads([]) == {}
    assert sync.store.online_count() == 3
    assert sync.store.chan_count() == 2
    beats = sync.nodes.heartbeats()
    assert list(beats) == ["a", "b"]
    if isinstance(backend, MemoryBackend):
        assert set(beats.values()) == {None}  # one process beats no heartbeat
    else:
        assert all(0 <= age < 1 for age in beats.values())
    sync.store.remove_connection("b", 2, "b2")
    sync.store.leave(1, ["lobby"])
    assert sync.store.online_count() == 2 and sync.store.chan_count() == 1


def every_page(read, count):
    pages, cursor = [], ""
    while True:
        items, cursor = read(cursor, count)
        pages.append(items)
        if not cursor:
            return pages


def test_online_clients_and_chans_are_read_a_page_at_a_time(sync, backend):
    for n in range(40):
        sync.store.add_connection("a", n, f"a{n}")
        sync.store.join(n, [f"room{n % 12}"])
    pages = every_page(sync.store.online_page, 5)
    assert len(pages) >= 4 and sorted(client for page in pages for client in page) == list(range(40))
    chans = every_page(sync.store.chan_page, 3)
    assert len(chans) >= 2 and sorted(chan for page in chans for chan in page) == sync.store.chan_list()
    everyone, after = sync.store.online_page("", 1000)
    assert sorted(everyone) == sorted(sync.store.online_clients()) and after == ""


def test_a_redis_page_cursor_that_it_did_not_give_is_refused(sync, backend):
    if isinstance(backend, MemoryBackend):
        pytest.skip("any name is a cursor of the embedded backend")
    for cursor in ("x", "128.0", "-1.0", "3", "3.x", "3.\u0663", f"3.{2 ** 64}"):  # SCAN's cursors: unsigned 64-bit
        with pytest.raises(ValueError):
            sync.store.online_page(cursor, 10)
