"""What only the Redis backend does: heartbeats, reaping, the events stream, the inbox, restarts."""

import asyncio
import inspect
import json
import signal
import time
import uuid

import pytest
import redis

from demo_project.cluster import RedisServer
from freeim.backends.contract import Letter, run_blocking
from freeim.backends.redis import RedisBackend
from freeim.backends.redis import client as redis_client
from freeim.backends.redis import store as redis_store
from freeim.backends.redis import transport as redis_transport
from freeim.backends.redis.client import Connections
from freeim.backends.redis.steps import Cmd, Pipe
from freeim.exceptions import BadCursor, StoreUnavailable
from freeim.messaging import operations
from tests import partitions
from tests.blocking import blocking
from tests.health import report
from tests.waiting import eventually


@pytest.fixture
def own_redis():
    """A redis-server this test may stop and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def read_inbox(backend, received):
    """A task reading node ``a``'s inbox into ``received``, from its tail now on."""
    after = await backend.transport.inbox_tail("a")
    return asyncio.create_task(backend.transport.receive("a", lambda batch, _sent: received.append(batch), after))


def events_of(backend):
    found = partitions.events(backend.connections.blocking, backend.keys)
    return [(fields["kind"], fields["client"], fields["server"]) for fields in found]


def test_heartbeat_keeps_the_node_alive_and_notices_lost_registration(backend, sync):
    sync.nodes.register_node("a", "boot-1")
    assert sync.nodes.heartbeat("a", "boot-1") is True
    assert sync.nodes.heartbeat("a", "boot-2") is False  # another process took the name
    backend.connections.blocking.delete(backend.keys.node("a", "alive"))
    assert sync.nodes.heartbeat("a", "boot-1") is False


def test_reaper_takes_dead_nodes_once_and_emits_offline_events(backend, sync):
    sync.nodes.register_node("a", "boot-a")
    sync.nodes.register_node("b", "boot-b")
    for client in (1, 2):
        sync.store.add_connection("a", client, f"a{client}", "web")
    sync.store.add_connection("b", 2, "b2")
    sync.store.join(1, ["room"])
    time.sleep(1.2)  # a missed its heartbeats for 1.2 s > TTL 1 s...
    sync.nodes.register_node("b", "boot-b")  # ...while b is (again) registered just now
    assert sync.nodes.alive_nodes() == ["b"]
    assert sync.nodes.reap("b") == ["a"]
    assert sync.nodes.reap("b") == []
    assert sync.store.locate([1, 2]) == {2: {"b": 1}}
    assert sync.store.chan_list() == []
    by_client = sorted(events_of(backend), key=lambda event: event[1])  # each client's events in their order
    assert by_client == [("online", "1", "a"), ("offline", "1", "a"), ("online", "2", "a")]
    # The reaper's offline event carries the connection's meta, as the node's own would: a receiver that
    # announces only some terminals (the demo's, by meta) hears of a dead node's clients too.
    entries = partitions.events(backend.connections.blocking, backend.keys)
    assert [fields["meta"] for fields in entries if fields["kind"] == "offline"] == ["web"]


def test_reaper_leaves_a_node_that_came_back(sync):
    sync.nodes.register_node("a", "boot-1")
    sync.store.add_connection("a", 1, "a1")
    time.sleep(1.1)
    sync.nodes.register_node("a", "boot-2")  # restarted just before the reaper looked
    assert sync.nodes.drop_node("a", False) == []
    assert sync.store.locate([1]) == {1: {"a": 1}}


def test_alive_nodes_within_a_shorter_time_leaves_out_those_whose_heartbeat_is_late(sync):
    sync.nodes.register_node("a", "boot-a")
    time.sleep(0.3)
    sync.nodes.register_node("b", "boot-b")
    assert sync.nodes.alive_nodes() == ["a", "b"] and sync.nodes.alive_nodes(within=0.2) == ["b"]


def test_only_one_reaper_at_a_time(backend, sync):
    sync.nodes.register_node("a", "boot")
    time.sleep(1.1)
    sync.nodes.register_node("b", "boot-b")
    backend.connections.blocking.set(backend.keys.shared("reaper"), "other", px=5000)
    assert sync.nodes.reap("b") == []
    backend.connections.blocking.delete(backend.keys.shared("reaper"))
    assert sync.nodes.reap("b") == ["a"]


def test_events_reach_one_worker_and_those_of_a_worker_that_died_are_claimed(sync):
    sync.store.add_connection("a", 1, "a1", "web")
    sync.store.remove_connection("a", 1, "a1", "web")
    first = sync.events.read("g", "w1", 200, 100)
    assert [f["kind"] for _, f in first] == ["online", "offline"]
    assert sync.events.read("g", "w2", 200, 100) == []  # w1 holds every partition, and reads them
    time.sleep(0.3)  # w1 "died": it did not read for longer than its leases last
    claimed = sync.events.read("g", "w2", 200, 100)
    assert [entry_id for entry_id, _ in claimed] == [entry_id for entry_id, _ in first]
    sync.events.ack("g", [entry_id for entry_id, _ in claimed])
    assert sync.events.read("g", "w3", 200, 100) == []


def test_workers_share_the_partitions_and_a_worker_that_leaves_gives_its_share_up(sync):
    """Each partition's events are read by one worker at a time; a worker joining takes its share at the next reads,
    one leaving gives its share to the others at once."""

    def come_and_go(clients):
        for client in clients:
            sync.store.add_connection("a", client, f"a{client}")
            sync.store.remove_connection("a", client, f"a{client}")

    def read(worker):
        events = sync.events.read("g", worker, 60_000, 50)
        sync.events.ack("g", [entry_id for entry_id, _ in events])
        return {(int(entry_id.partition(":")[0]), fields["client"], fields["kind"]) for entry_id, fields in events}

    come_and_go(range(40))
    assert len(read("w1")) == 80  # alone: every partition
    come_and_go(range(40, 80))
    assert read("w2") == set()  # its share is w1's until w1 reads again
    first, second = read("w1"), read("w2")  # w1 gives the share up, w2 takes it
    parity = {part % 2 for part, _client, _kind in first}, {part % 2 for part, _client, _kind in second}
    assert sorted(parity, key=sorted) == [{0}, {1}]  # w1 and w2 in the order of their names: even, odd
    assert sorted((client, kind) for _part, client, kind in first | second) == sorted(
        (str(client), kind) for client in range(40, 80) for kind in ("online", "offline"))
    sync.events.leave("g", "w1")
    come_and_go(range(80, 100))
    assert len(read("w2")) == 40  # every partition again, w1's too


def test_a_worker_is_a_consumer_of_its_group_from_its_first_read(sync):
    """Redis 7.0 made a consumer only once it was given an event: freeim_status showed 0 consumers beside a
    running worker until the first event came."""
    assert sync.events.read("g", "w1", 60_000, 10) == []
    assert [(group.name, group.consumers) for group in sync.events.backlog().groups] == [("g", 1)]


async def test_inbox_delivers_batches_in_order(backend):
    received = []
    reader = await read_inbox(backend, received)
    for n in range(3):
        await backend.transport.publish({"a": [{"op": "broadcast", "frame": str(n)}], "b": [{"op": "x"}]})
    await eventually(lambda: len(received) == 3)
    reader.cancel()
    assert received == [[{"op": "broadcast", "frame": str(n)}] for n in range(3)]


async def test_redis_restart_fails_calls_loudly_then_recovers(own_redis):
    backend = RedisBackend(own_redis.url, "r", 1)
    sync = blocking(backend)
    received = []
    reader = await read_inbox(backend, received)
    await backend.store.add_connection("a", 1, "a1")
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await backend.store.locate([1])
    with pytest.raises(StoreUnavailable):
        sync.transport.publish({"a": [{"op": "x"}]})
    assert time.monotonic() - started < 10
    own_redis.start()
    assert await backend.nodes.heartbeat("a", "boot") is False  # state is gone: the node must register again
    assert await backend.store.add_connection("a", 1, "a1") is True  # scripts load again after the restart
    await backend.transport.publish({"a": [{"op": "after"}]})  # read once the reader has reconnected
    await eventually(lambda: received, timeout=10)
    reader.cancel()
    assert received == [[{"op": "after"}]]


class ScriptsRunTwice(Connections):
    """Every script (and every pipeline: they hold scripts) runs twice, as when redis-py retries one whose
    reply timed out after Redis ran it."""

    def issue(self, client, step):
        if isinstance(step, Cmd):
            return super().issue(client, step)
        first = super().issue(client, step)
        if not inspect.isawaitable(first):
            return super().issue(client, step)

        async def again():
            await first
            return await Connections.issue(self, client, step)

        return again()


def stream_of(backend, key):
    """A stream's entries' fields; an inbox's batches once each (a replayed append wrote one twice)."""
    entries = [fields for _id, fields in backend.connections.blocking.xrange(key)]
    if key.endswith(":inbox") and ":{n:" in key:  # a node's: its batches once each
        return list({fields["b"]: fields["p"] for fields in entries}.values())
    return entries


def state_of(backend):
    """Every key under the backend's prefix and what it holds, without the prefix; streams as their fields."""
    dump = {}
    redis = backend.connections.blocking
    for key in redis.scan_iter(backend.keys.everything()):
        kind = redis.type(key)
        value = {"string": redis.get, "hash": redis.hgetall, "set": redis.smembers,
                 "zset": lambda k: redis.zrange(k, 0, -1, withscores=True)}.get(kind)
        if kind == "stream":
            dump[key.removeprefix(backend.keys.prefix)] = stream_of(backend, key)
            continue
        if key.endswith(("inbox-sz", "inbox-ix")):
            continue  # they count the duplicates too
        if key.endswith("inbox-meta"):
            value = lambda k: {f: v for f, v in redis.hgetall(k).items() if f not in ("e", "f", "x")}  # noqa: E731 (epochs, times)
        if key == backend.keys.shared("nodes") or key.endswith((":ended", ":dirty")) or ":workers:" in key:
            value = lambda k: redis.zrange(k, 0, -1)  # noqa: E731 (scores are heartbeat times, versions)
        if key.endswith(":ver"):
            continue  # a client's version: Redis's time
        if key.endswith(":members"):  # a chan's records, without their versions
            value = lambda k: {c: json.loads(r).get("n") for c, r in redis.hgetall(k).items()}  # noqa: E731
        dump[key.removeprefix(backend.keys.prefix)] = value(key)
    return dump


def every_script(backend):
    """A life that runs every script: nodes, connections, chans, a publish, a leave, a clear, a drop, events."""
    sync = blocking(backend)
    sync.nodes.register_node("a", "boot-a")
    sync.nodes.register_node("b", "boot-b")
    assert sync.nodes.heartbeat("a", "boot-a", report())  # a pipeline: the beat's script and the report
    assert sync.nodes.alive_nodes() == ["a", "b"] and sync.nodes.reap("a") == []
    sync.store.add_connection("a", 1, "a1", "web")
    sync.store.add_connection("a", 2, "a2")
    sync.store.join(1, ["room", "lobby"])
    sync.store.join(2, ["room"])
    sync.store.add_connection("b", 1, "b1")  # a second device, on a node that must learn the chans
    sync.store.leave(2, ["room"])
    sync.store.join(2, ["room"])
    sync.transport.publish({"a": [{"op": "broadcast", "frame": "x"}]})
    sync.store.store_messages([Letter(1, "m1", '{"n":1}', 2), Letter(2, "m1", '{"n":1}'), Letter(1, "m2", '{"n":2}')],
                              [1])
    sync.store.remove_connection("a", 1, "a1")
    sync.store.clear_chan("lobby")
    sync.nodes.drop_node("b")
    sync.nodes.register_node("c", "boot-c")
    sync.store.add_connection("c", 3, "c3")
    sync.store.join(3, ["room"])
    time.sleep(1.1)  # c misses its heartbeats past the TTL (1 s); a beats again
    sync.nodes.register_node("a", "boot-a")
    assert sync.nodes.reap("a") == ["c"]  # the reaper's lock, and the reaping, run twice too
    sync.events.read("g", "w", 60_000, 10)
    inbox = [(kept.position.split(".")[1], kept.frame) for kept in sync.store.read_inbox(1, "*").messages]
    return [sync.store.locate([1, 2, 3]), sync.store.chan_list(), sync.store.online_clients(), inbox]


def test_every_script_is_safe_to_run_twice(redis_server):
    once, twice = (RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1, connections=kind)
                   for kind in (Connections, ScriptsRunTwice))
    try:
        (answers_twice, state_twice), (answers_once, state_once) = (
            (every_script(backend), state_of(backend)) for backend in (twice, once))
        inbox = [("1", '{"n":1}'), ("2", '{"n":2}')]
        assert answers_twice == answers_once == [{2: {"a": 1}}, [("room", 1)], [2], inbox]
        assert state_twice == state_once  # each read right after its run: the heartbeat keys expire
        by_client = sorted(events_of(once), key=lambda event: event[1])  # each client's in their order
        assert [(client, kind) for kind, client, _node in by_client] == [
            ("1", "online"), ("1", "offline"), ("2", "online"), ("3", "online"), ("3", "offline")]
    finally:
        once.flush()
        twice.flush()


async def test_a_batch_appended_twice_is_delivered_once(redis_server):
    backend = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1, connections=ScriptsRunTwice)
    received = []
    reader = await read_inbox(backend, received)
    try:
        for n in range(3):
            await backend.transport.publish({"a": [{"op": "broadcast", "frame": str(n)}]})
        await backend.transport.publish({"a": [{"op": "fence"}]})
        await eventually(lambda: received and received[-1] == [{"op": "fence"}])
        assert backend.connections.blocking.xlen(backend.keys.node("a", "inbox")) == 8
        assert received == [*([{"op": "broadcast", "frame": str(n)}] for n in range(3)), [{"op": "fence"}]]
    finally:
        reader.cancel()
        backend.flush()


def test_the_inbox_is_bounded_in_bytes(backend, sync, settings):
    settings.FREEIM = {"TRANSPORT_MAX_BYTES": 10_000}
    for n in range(100):
        sync.transport.publish({"a": [{"op": "broadcast", "frame": f"{n:04}" + "x" * 1000}]})
    inbox = backend.connections.blocking.xrange(backend.keys.node("a", "inbox"))
    held = sum(len(fields["p"]) for _id, fields in inbox)
    assert held <= 10_000 and int(backend.connections.blocking.get(backend.keys.node("a", "inbox-sz"))) == held
    assert json.loads(inbox[-1][1]["p"])[0]["frame"].startswith("0099")  # the oldest went first


def test_the_inbox_stays_within_its_bytes_when_big_batches_follow_many_small_ones(backend, sync, settings):
    """Each append trimmed at most 64 entries: behind thousands of receipts, big batches piled up
    far past TRANSPORT_MAX_BYTES (271 MiB against 64 MiB in the attack)."""
    settings.FREEIM = {"TRANSPORT_MAX_BYTES": 200_000}
    for n in range(1_000):
        sync.transport.publish({"a": [{"op": "send", "to": [1], "frame": f"{n}"}]})
    for _ in range(10):
        sync.transport.publish({"a": [{"op": "broadcast", "frame": "x" * 50_000}]})
    redis = backend.connections.blocking
    held = int(redis.get(backend.keys.node("a", "inbox-sz")))
    assert held <= 200_000
    assert held == sum(len(fields["p"]) for _id, fields in redis.xrange(backend.keys.node("a", "inbox")))


def test_a_node_trims_its_idle_inbox_by_age(backend, sync, monkeypatch):
    sync.transport.publish({"a": [{"op": "broadcast", "frame": "old"}]})
    monkeypatch.setattr(redis_transport, "INBOX_RETENTION_MS", 0)  # everything is old now...
    time.sleep(0.01)  # ...once a millisecond passed
    sync.transport.trim_inbox("a")
    assert backend.connections.blocking.xlen(backend.keys.node("a", "inbox")) == 0
    assert int(backend.connections.blocking.get(backend.keys.node("a", "inbox-sz"))) == 0


async def test_pooled_connections_that_died_with_redis_are_replaced_without_a_failed_call(own_redis):
    """The asyncio pools got redis-py's blocking Retry, which retries nothing there: after a Redis
    restart each dead pooled connection failed one call (a node refused handshakes with it)."""
    backend = RedisBackend(own_redis.url, "r", 1)
    sync = blocking(backend)
    await asyncio.gather(*(backend.store.locate([n]) for n in range(5)))  # several pooled connections
    sync.store.locate([1])
    own_redis.stop()
    own_redis.start()
    for n in range(5):
        assert await backend.store.locate([n]) == {}
    assert sync.store.locate([1]) == {}


class CountingSteps(Connections):
    """Counts the steps (round trips) each operation takes."""

    steps = 0

    def issue(self, client, step):
        CountingSteps.steps += 1
        return super().issue(client, step)


def test_a_heartbeat_carries_the_node_s_health_report_and_reads_every_master_s_replication_id(backend):
    counted = RedisBackend(backend.url, backend.keys.prefix, 1, connections=CountingSteps)
    sync = blocking(counted)
    sync.nodes.register_node("a", "boot-a")
    CountingSteps.steps = 0
    assert sync.nodes.heartbeat("a", "boot-a", report()) is True
    assert CountingSteps.steps == 2  # the beat, its mark and the report; then INFO of each master
    health = backend.keys.node("a", "health")
    assert json.loads(backend.connections.blocking.get(health)) == report()
    assert 0 < backend.connections.blocking.pttl(health) <= 1000  # the heartbeat's TTL
    backend.connections.blocking.delete(backend.keys.node("a", "alive"))
    assert sync.nodes.heartbeat("a", "boot-a", report(clients=1)) is False  # lost: the node registers again
    assert sync.nodes.node_health(["a"]) == {"a": report(clients=1)}


def test_a_presence_change_takes_one_round_trip_and_one_more_where_chans_learn_of_it(redis_server):
    """Each step touches one slot: the client's (and the node's record, pipelined), then its chans."""
    backend = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1, connections=CountingSteps)
    sync = blocking(backend)

    def round_trips(call, *args):
        CountingSteps.steps = 0
        call(*args)
        return CountingSteps.steps

    try:
        assert round_trips(sync.store.add_connection, "a", 1, "a1") == 1
        assert round_trips(sync.store.add_connection, "a", 2, "a2") == 1
        assert round_trips(sync.store.join, 1, ["room", "lobby"]) == 2
        assert round_trips(sync.store.add_connection, "b", 1, "b1") == 2  # a new node of a member: its chans learn it
        assert round_trips(sync.store.add_connection, "b", 1, "b2") == 1  # no new node
        assert round_trips(sync.store.remove_connection, "a", 2, "a2") == 1
        assert round_trips(sync.store.remove_connection, "b", 1, "b2") == 1
        assert round_trips(sync.store.remove_connection, "b", 1, "b1") == 2
        assert round_trips(sync.store.remove_connection, "a", 1, "a1") == 2
        assert sync.store.online_clients() == [] and sync.store.chan_list() == []
    finally:
        backend.flush()


def test_a_connect_is_one_round_trip_and_leaves_a_node_that_started_draining_out_at_once(backend, settings):
    """A connect read the live nodes, then issued its token: two round trips. It now issues the token on the node
    chosen among the nodes its process saw last while it reads them again; only a change that changes the choice
    costs a second round trip, and the token is then the right node's."""
    nodes = ["ws://a:1", "ws://b:1"]
    settings.FREEIM = {"SERVERS": nodes, "ROUTING": "modulo"}
    counted = RedisBackend(backend.url, backend.keys.prefix, 1, connections=CountingSteps)
    sync = blocking(counted)
    for node in nodes:
        sync.nodes.register_node(node, "boot")

    def connect(client):
        CountingSteps.steps = 0
        url, node = run_blocking(operations.connect_ticket(counted.blocking(), client))
        round_trips = CountingSteps.steps
        record = sync.store.redeem_token(url.partition("token=")[2])
        assert record["server"] == node and url.startswith(node)
        return node, round_trips

    assert connect(1) == ("ws://b:1", 2)  # the process's first: it reads the nodes first
    assert connect(3) == ("ws://b:1", 1)
    assert connect(2) == ("ws://a:1", 1)
    sync.nodes.set_draining("ws://b:1", True)
    assert connect(3) == ("ws://a:1", 2)  # the change changes its choice: issued again, on the node that takes it
    assert connect(5) == ("ws://a:1", 1)  # the process has seen the change
    sync.nodes.set_draining("ws://b:1", False)
    assert connect(2) == ("ws://a:1", 1)  # a change that does not change the choice costs nothing
    assert connect(1) == ("ws://b:1", 1)


async def test_a_send_is_one_round_trip_and_scripts_redis_forgot_are_loaded_again(backend, sync):
    """redis-py asked Redis whether it knew the scripts (SCRIPT EXISTS) before every pipeline that had one: a
    second round trip for every send."""
    redis_client = backend.connections.blocking
    letters = [Letter(1, "m1", "{}"), Letter(2, "m2", "{}")]
    sync.store.store_messages(letters, [1])
    before = redis_client.info("commandstats").get("cmdstat_script|exists", {}).get("calls", 0)
    sync.store.store_messages([Letter(1, "m3", "{}"), Letter(2, "m4", "{}")], [1])
    await backend.store.store_messages([Letter(1, "m5", "{}"), Letter(2, "m6", "{}")], [1])
    assert redis_client.info("commandstats").get("cmdstat_script|exists", {}).get("calls", 0) == before
    redis_client.script_flush()  # as a restart without persistence does
    stored, _ = sync.store.store_messages([Letter(1, "m7", "{}"), Letter(2, "m8", "{}")], [])
    assert [at.split(".")[1] for at, _ in stored] == ["4", "4"]
    redis_client.script_flush()
    stored, _ = await backend.store.store_messages([Letter(1, "m9", "{}"), Letter(2, "m10", "{}")], [])
    assert [at.split(".")[1] for at, _ in stored] == ["5", "5"]


def test_a_resume_reads_only_what_came_after_its_position(backend, sync):
    """Every connect with a position read the whole inbox (up to INBOX_MAX_MESSAGES entries) to keep what came
    after it: a reload of an up-to-date page brought its client's last thousand messages out of Redis."""
    stored, _ = sync.store.store_messages([Letter(1, f"m{n}", "{}") for n in range(50)], [])
    redis_client = backend.connections.blocking

    def entries_read(since):
        before = redis_client.info("commandstats").get("cmdstat_xrevrange", {}).get("calls", 0)
        read = sync.store.read_inbox(1, since)
        calls = redis_client.info("commandstats").get("cmdstat_xrevrange", {}).get("calls", 0) - before
        return [kept.position for kept in read.messages], calls

    assert entries_read(stored[-1][0]) == ([], 0)  # up to date: nothing read
    assert entries_read(stored[-3][0]) == ([at for at, _ in stored[-2:]], 1)
    assert len(entries_read("*")[0]) == 50


def test_an_inbox_s_keys_live_at_least_their_life_after_the_last_append(backend, sync, settings):
    """An append sets the keys' lives again only now and then (an eighth of the way into them): a key that an
    append made anew (the ids hash, emptied by trimming and written again) must get its life all the same."""
    settings.FREEIM = {"INBOX_MAX_AGE": 100, "INBOX_MAX_MESSAGES": 1}
    db = backend.connections.blocking
    inbox, meta, message_ids = backend.keys.client_keys(1, "inbox", "inbox-meta", "inbox-ids")
    for number in range(3):  # each append trims the one before: the ids hash is emptied and made again
        sync.store.store_messages([Letter(1, f"m{number}", "{}")], [])
        lives = [db.pttl(key) for key in (inbox, message_ids, meta)]
        assert all(99_000 < life <= 112_500 for life in lives[:2]) and lives[2] >= 99_000, lives
    assert db.hkeys(message_ids) == ["m2"]


def test_node_loads_read_a_big_node_a_chunk_at_a_time(backend, sync, monkeypatch):
    """Past ``hash-max-listpack-entries`` fields (128 by default, 512 in Debian's config) a hash is a real hash
    table, and HSCAN brings about COUNT fields a call: several rounds."""
    monkeypatch.setattr(redis_store, "SCAN_CHUNK", 100)
    for number in range(1200):
        sync.store.add_connection("a", number // 3, f"a{number}")  # 3 sockets of each of 400 clients
    sync.store.add_connection("b", "x", "b1")
    CountingSteps.steps = 0
    counted = RedisBackend(backend.url, backend.keys.prefix, 1, connections=CountingSteps)
    assert blocking(counted).store.node_loads(["a", "b"]) == {"a": (1200, 400), "b": (1, 1)}
    assert CountingSteps.steps > 5  # the lengths, then a round per chunk of node a


def test_a_node_that_beats_no_more_ages_until_it_is_reaped(backend, sync):
    sync.nodes.register_node("a", "boot-a")
    sync.nodes.register_node("b", "boot-b")
    time.sleep(0.3)
    sync.nodes.heartbeat("b", "boot-b")
    beats = sync.nodes.heartbeats()
    assert beats["a"] >= 0.3 > beats["b"]
    time.sleep(0.8)  # past the TTL of 1 s
    assert sync.nodes.reap("b") == ["a"]
    assert list(sync.nodes.heartbeats()) == ["b"]


def test_the_events_backlog_counts_what_each_group_took_and_has_yet_to_take(sync):
    assert sync.events.backlog() == (0, [])  # no stream yet
    sync.store.add_connection("a", 1, "a1")
    sync.store.remove_connection("a", 1, "a1")
    assert sync.events.backlog() == (2, [])  # no worker ever read it
    taken = sync.events.read("g", "w1", 60_000, 100)
    sync.events.ack("g", [taken[0][0]])
    sync.store.add_connection("a", 2, "a2")
    assert sync.events.backlog() == (3, [("g", 1, 1, 1)])  # one consumer; one taken, not acked; one not taken


async def test_a_redis_that_refuses_commands_is_store_unavailable_too(own_redis):
    """Out of memory (or a replica that refuses writes): Redis answers with an error, not a lost connection. It went
    through as a redis-py ResponseError: a 500 HTML page from the REST API, a traceback from the commands."""
    backend = RedisBackend(own_redis.url, "oom", 1)
    sync = blocking(backend)
    client = backend.connections.blocking
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", client.info("memory")["used_memory"])  # nothing more fits
    try:
        with pytest.raises(StoreUnavailable, match="maxmemory"):
            await backend.store.add_connection("a", 1, "a1")
        with pytest.raises(StoreUnavailable, match="maxmemory"):
            sync.transport.publish({"a": [{"op": "x"}]})
    finally:
        client.config_set("maxmemory", 0)
    assert await backend.store.add_connection("a", 1, "a1") is True


async def test_an_awaited_step_fails_within_its_deadline_and_its_connection_is_not_reused(own_redis, monkeypatch):
    """Awaited steps have one deadline each (``STEP_TIMEOUT``), not one per reply: a Redis that stops answering
    fails the step with StoreUnavailable in time, and the connection it was cut short on is dropped, so the
    next step on a Redis that answers again reads its own reply, never the late one of the step before."""
    monkeypatch.setattr(redis_client, "STEP_TIMEOUT", 0.5)
    backend = RedisBackend(own_redis.url, f"t{uuid.uuid4().hex[:8]}", 1)
    await backend.store.issue_token("before", {"client_id": 1, "meta": "", "server": "a"}, 30)
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await backend.store.redeem_token("before")
        assert time.monotonic() - began < 5
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    await backend.store.issue_token("after", {"client_id": 2, "meta": "", "server": "b"}, 30)
    assert (await backend.store.redeem_token("after"))["client_id"] == 2


async def test_commands_are_packed_as_redis_reads_them(backend):
    """The asyncio client packs commands in C (hiredis): a command of two words, numbers and text beyond ASCII
    reach Redis as redis-py would have sent them."""
    client = backend.connections.for_loop(False)
    assert await client.execute_command("CONFIG GET", "maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    key = f"{backend.keys.prefix}:packed"
    assert await client.execute_command("SET", key, "é ü 🙂") is True
    assert await client.execute_command("INCRBYFLOAT", f"{key}:n", 1.5) == 1.5
    assert await client.get(key) == "é ü 🙂"


@pytest.mark.parametrize("awaited", [False, True])
async def test_an_error_reply_inside_a_pipeline_is_raised_and_the_connection_stays_in_step(backend, awaited):
    """The exchange reads every reply of a pipeline, an error's too, before raising the first error: the replies
    after it would otherwise be read by the next step on that connection, as its own."""
    connections = backend.connections
    client = connections.for_loop(False) if awaited else connections.blocking
    text, number = f"{backend.keys.prefix}:text", f"{backend.keys.prefix}:number"

    async def issued(step):
        reply = connections.issue(client, step)
        return await reply if inspect.isawaitable(reply) else reply

    await issued(Cmd("set", (text, "x")))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        await issued(Pipe((Cmd("set", (number, "1")), Cmd("hvals", (text,)), Cmd("get", (number,)))))
    assert await issued(Cmd("get", (text,))) == "x"


async def test_a_page_cursor_the_list_did_not_give_is_a_bad_cursor(backend):
    for read in (operations.get_client_page_by_online, operations.get_chan_page):
        with pytest.raises(BadCursor):
            await read(backend, "9.x", 10)
