"""The connection layer on Redis Cluster (freeim/backends/redis/cluster.py): steps routed to the masters of their
keys, pipelines split per master and put back in order, redirections and failovers followed. The store's contract
runs on a cluster too (tests/backends/test_contract.py)."""

import asyncio
import time
import uuid

import pytest
import redis

from demo_project.cluster import RedisCluster
from freeim.backends.contract import Letter
from freeim.backends.redis import RedisBackend, pools
from freeim.backends.redis.client import Awaiting, Blocking
from freeim.backends.redis.keys import PARTITIONS
from freeim.backends.redis.steps import Lua, Pipe, one
from freeim.exceptions import StoreUnavailable
from tests import partitions
from tests.blocking import blocking
from tests.waiting import eventually


def backend_on(cluster):
    return RedisBackend(cluster.url, f"t{uuid.uuid4().hex[:8]}", 1)


@pytest.fixture
def one_master(redis_cluster_one):
    backend = backend_on(redis_cluster_one)
    yield backend
    backend.flush()


@pytest.fixture
def three_masters(redis_cluster):
    backend = backend_on(redis_cluster)
    yield backend
    backend.flush()


def run(backend, step, awaited=False):
    """``step``'s reply, sent blocking or awaited (on a loop of its own)."""
    def steps():
        return (yield step)

    if awaited:
        return asyncio.run(Awaiting(backend.connections).run(steps()))
    return asyncio.run(Blocking(backend.connections).run(steps()))


def keys_on_every_master(cluster, backend, count=12):
    """``count`` keys of distinct clients, which the cluster's masters all own some of."""
    keys = [backend.keys.client(client, "chans") for client in range(count)]
    assert {cluster.master_of(key).port for key in keys} == {master.port for master in cluster.masters}
    return keys


def test_a_cluster_url_makes_cluster_clients(one_master):
    assert isinstance(one_master.connections.blocking, redis.cluster.RedisCluster)
    assert not one_master.connections.sentinel


@pytest.mark.parametrize("awaited", [False, True])
def test_inbox_scripts_and_commands_run_on_the_master_of_their_keys(three_masters, awaited):
    store = three_masters.store if awaited else three_masters.blocking().store
    letters = [Letter(client, f"m{client}", f'{{"n": {client}}}') for client in range(6)]
    stored, located = asyncio.run(store.store_messages(letters, [0, 1]))
    assert [at.split(".")[1] for at, _nodes in stored] == ["1"] * 6 and located == {}
    for client in range(6):
        read = asyncio.run(store.read_inbox(client, "*"))
        assert [kept.frame for kept in read.messages] == [f'{{"n": {client}}}']


@pytest.mark.parametrize("awaited", [False, True])
def test_a_pipeline_over_three_masters_gets_its_replies_in_order(redis_cluster, three_masters, awaited):
    keys = keys_on_every_master(redis_cluster, three_masters)
    run(three_masters, Pipe(tuple(one("sadd", key, f"v{n}") for n, key in enumerate(keys))), awaited)
    replies = run(three_masters, Pipe((one("time"), *(one("smembers", key) for key in keys), one("info", "server"))),
                  awaited)
    assert replies[1:-1] == [{f"v{n}"} for n in range(len(keys))]
    assert len(replies[0]) == 2 and "redis_version" in replies[-1]  # keyless commands too


@pytest.mark.parametrize("awaited", [False, True])
def test_a_durable_pipeline_waits_on_every_master(redis_cluster, three_masters, awaited, settings):
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 1}
    keys = keys_on_every_master(redis_cluster, three_masters)
    step = Pipe(tuple(one("sadd", key, "v") for key in keys), durable=True)
    assert run(three_masters, step, awaited) == [1] * len(keys)
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 2}  # each master has one replica
    with pytest.raises(StoreUnavailable, match="0 of the 2 replicas|1 of the 2 replicas"):
        run(three_masters, step, awaited)


@pytest.mark.parametrize("awaited", [False, True])
def test_a_script_whose_keys_span_slots_fails_even_on_one_master(one_master, awaited):
    keys = one_master.keys
    across = Lua("read_inbox", (keys.client(1, "inbox"), keys.client(2, "inbox-meta")), ("", 0))
    with pytest.raises(StoreUnavailable, match="hash to the same slot") as failed:
        run(one_master, Pipe((one("time"), across)), awaited)
    assert isinstance(failed.value.__cause__, redis.exceptions.ClusterCrossSlotError)


@pytest.mark.parametrize("awaited", [False, True])
def test_a_refused_step_among_masters_leaves_every_connection_clean(redis_cluster, three_masters, awaited):
    """The replies after a refused one are read too: the next steps on those connections read their own."""
    keys = keys_on_every_master(redis_cluster, three_masters)
    across = Lua("read_inbox", (three_masters.keys.client(1, "inbox"), three_masters.keys.client(2, "inbox-meta")),
                 ("", 0))

    async def steps():
        performer = Awaiting(three_masters.connections) if awaited else Blocking(three_masters.connections)
        with pytest.raises(StoreUnavailable, match="hash to the same slot"):
            await performer.run(single(Pipe((*(one("sadd", key, "v") for key in keys), across, one("time")))))
        return await performer.run(single(Pipe(tuple(one("smembers", key) for key in keys))))

    assert asyncio.run(steps()) == [{"v"}] * len(keys)


@pytest.mark.parametrize("awaited", [False, True])
def test_scripts_a_master_forgot_are_loaded_again(redis_cluster, three_masters, awaited):
    store = three_masters.store if awaited else three_masters.blocking().store
    asyncio.run(store.store_messages([Letter(client, "m", "{}") for client in range(6)], []))
    for master in redis_cluster.masters:
        redis_cluster.ask(master, "SCRIPT", "FLUSH")
    stored, _ = asyncio.run(store.store_messages([Letter(client, "m2", "{}") for client in range(6)], []))
    assert [at.split(".")[1] for at, _nodes in stored] == ["2"] * 6


async def test_awaited_steps_wait_for_a_free_connection(redis_cluster_one, one_master):
    """The asyncio cluster client's nodes refuse a connection past their pool's size (redis-py's MaxConnectionsError),
    which the steps took for a failing master: each paused and asked the cluster for its slots again."""
    upkeep = Awaiting(one_master.connections, upkeep=True)  # two connections per node
    key = one_master.keys.client(1, "chans")
    await upkeep.run(single(one("sadd", key, "first")))
    asked = stat_calls(redis_cluster_one, "cmdstat_cluster|slots")
    replies = await asyncio.gather(*(upkeep.run(single(one("sadd", key, n))) for n in range(30)))
    assert replies == [1] * 30
    assert stat_calls(redis_cluster_one, "cmdstat_cluster|slots") == asked


def test_each_event_loop_s_client_reads_no_command_table_of_its_own(redis_cluster_one, one_master):
    """Each asyncio cluster client read redis-py's table of where commands keep their keys (``COMMAND``: ~20 ms of
    CPU), and each event loop has its own client."""
    run(one_master, one("time"), awaited=True)
    asked = stat_calls(redis_cluster_one, "cmdstat_command")
    for _loop in range(3):
        run(one_master, one("time"), awaited=True)  # a loop of its own each time
    assert stat_calls(redis_cluster_one, "cmdstat_command") == asked


def stat_calls(cluster, stat):
    """How many times the cluster's masters have run a command (``INFO commandstats``)."""
    return sum(RedisCluster.ask(master, "INFO", "commandstats").get(stat, {}).get("calls", 0)
               for master in cluster.running_masters())


def errors_answered(server, code):
    """How many ``code`` errors (MOVED, ASK) ``server`` has answered."""
    stat = RedisCluster.ask(server, "INFO", "errorstats").get(f"errorstat_{code}", {})
    return int(stat.get("count", 0))


def migration_followed(cluster, key):
    """Steps on ``key`` while its slot moves to another master, and once it has: ``ASK`` (``key`` already moved,
    its slot not yet) and then ``MOVED`` are followed. Returns the redirections its old master answered."""
    source = cluster.master_of(key)
    target = next(master for master in cluster.running_masters() if master is not source)
    slot = RedisCluster.ask(source, "CLUSTER", "KEYSLOT", key)
    asks, moves = errors_answered(source, "ASK"), errors_answered(source, "MOVED")
    assert (yield one("sadd", key, "a")) == 1
    RedisCluster.ask(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.node_id(source))
    RedisCluster.ask(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.node_id(target))
    RedisCluster.ask(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", key)
    assert (yield Pipe((one("sadd", key, "b"), one("time"))))[0] == 1
    assert (yield one("smembers", key)) == {"a", "b"}
    for master in cluster.running_masters():
        RedisCluster.ask(master, "CLUSTER", "SETSLOT", slot, "NODE", cluster.node_id(target))
    assert (yield one("smembers", key)) == {"a", "b"}
    return errors_answered(source, "ASK") - asks, errors_answered(source, "MOVED") - moves


def test_moved_and_ask_are_followed_while_a_slot_migrates(redis_cluster, three_masters):
    migration = migration_followed(redis_cluster, three_masters.keys.client(uuid.uuid4().hex, "chans"))
    asks, moves = asyncio.run(Blocking(three_masters.connections).run(migration))
    assert asks >= 2 and moves >= 1


async def test_moved_and_ask_are_followed_while_a_slot_migrates_awaited(redis_cluster, three_masters):
    migration = migration_followed(redis_cluster, three_masters.keys.client(uuid.uuid4().hex, "chans"))
    asks, moves = await Awaiting(three_masters.connections).run(migration)
    assert asks >= 2 and moves >= 1


def test_a_killed_master_is_replaced_by_its_replica_within_seconds(redis_cluster, three_masters, settings):
    """Both the blocking client and an asyncio one that knew the old master (its loop kept) find the new one."""
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 1}  # the replica has every write before the kill
    keys = keys_on_every_master(redis_cluster, three_masters)
    loop = asyncio.new_event_loop()
    writes = Pipe(tuple(one("sadd", key, "before") for key in keys), durable=True)
    reads = Pipe(tuple(one("smembers", key) for key in keys))
    run(three_masters, writes)
    loop.run_until_complete(Awaiting(three_masters.connections).run(single(reads)))
    victim = redis_cluster.master_of(keys[0])
    victim.kill()
    try:
        killed = time.monotonic()
        assert retried(lambda: run(three_masters, reads)) == [{"before"}] * len(keys)
        assert retried(lambda: loop.run_until_complete(Awaiting(three_masters.connections).run(single(reads)))) \
            == [{"before"}] * len(keys)
        back = time.monotonic() - killed
        assert redis_cluster.master_of(keys[0]) is not victim
        assert run(three_masters, Pipe(tuple(one("sadd", key, "after") for key in keys))) == [1] * len(keys)
        print(f"steps answered again {back:.1f} s after the master was killed")
        assert back < 8
    finally:
        loop.close()
        victim.start()  # it comes back as its replica's replica: the cluster is whole for the next test
        redis_cluster.wait_settled()


def single(step):
    return (yield step)


def retried(call, within=15):
    """``call()``'s result once it stops failing with ``StoreUnavailable`` (a step gives up after STEP_TIMEOUT)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise


async def test_the_inbox_reader_receives_appended_batches(redis_cluster, three_masters):
    """Each read on redis-py's cluster client asked the cluster twice where the stream was first."""
    transport = three_masters.transport
    received = []
    after = await transport.inbox_tail("a")
    asked = stat_calls(redis_cluster, "cmdstat_command|getkeys")
    reader = asyncio.create_task(transport.receive("a", lambda batch, _sent: received.append(batch), after))
    await transport.publish({"a": [{"op": 1}], "b": [{"op": 2}], "c": [{"op": 3}]})
    await transport.publish({"a": [{"op": 4}, {"op": 5}]})
    await eventually(lambda: len(received) == 2)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert received == [[{"op": 1}], [{"op": 4}, {"op": 5}]]
    assert stat_calls(redis_cluster, "cmdstat_command|getkeys") == asked


async def test_the_inbox_reader_follows_its_master_to_the_replica(redis_cluster, three_masters):
    transport = three_masters.transport
    received = []
    reader = asyncio.create_task(transport.receive("a", lambda batch, _sent: received.append(batch),
                                                   await transport.inbox_tail("a")))
    await transport.publish({"a": [{"op": "before"}]})
    await eventually(lambda: received)
    victim = redis_cluster.master_of(three_masters.keys.node("a", "inbox"))
    victim.kill()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                await transport.publish({"a": [{"op": "after"}]})
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
        await eventually(lambda: len(received) == 2, timeout=10)
        assert received == [[{"op": "before"}], [{"op": "after"}]]
    finally:
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        victim.start()
        redis_cluster.wait_settled()


def test_the_events_worker_reads_the_streams_one_by_one_and_waits_without_blocking_them(one_master):
    """An ``XREADGROUP`` over streams in many slots is refused: on a cluster the worker reads each stream of its share
    (in one pipeline), and waits on its group's wake-up list when they hold nothing."""
    sync = blocking(one_master)
    assert sync.events.read("workers", "w1", 60_000, 10) == []
    assert len(partitions.groups(one_master.connections.blocking, one_master.keys)) == PARTITIONS
    sync.store.add_connection("a", 1, "a1")
    sync.store.remove_connection("a", 1, "a1")
    found = sync.events.read("workers", "w1", 60_000, 10)
    assert [fields["kind"] for _id, fields in found] == ["online", "offline"]
    sync.events.ack("workers", [entry_id for entry_id, _ in found])
    assert sum(group["pending"] for group in partitions.groups(one_master.connections.blocking, one_master.keys)) == 0


@pytest.mark.parametrize(("args", "keys"), [
    (("EVALSHA", "sha", 2, "k1", "k2", "a"), ["k1", "k2"]),
    (("EVALSHA", "sha", 0, "a"), None),
    (("XREADGROUP", "GROUP", "g", "c", "COUNT", 5, b"STREAMS", "s1", "s2", ">", ">"), ["s1", "s2"]),
    (("XREAD", "COUNT", 5, "BLOCK", 1000, "STREAMS", "s1", "0-0"), ["s1"]),
    (("WAIT", 1, 1000), None),
    (("SMEMBERS", "k"), False),  # redis-py's parser finds those
])
def test_keys_redis_py_would_ask_the_server_for_are_found_here(args, keys):
    assert pools.found_keys(args) == keys


def test_a_tls_cluster_url_makes_tls_connections():
    client = pools.connect("rediss+cluster://:pw@127.0.0.1:1", asynchronous=True)
    assert issubclass(client.connection_kwargs["connection_class"], redis.asyncio.SSLConnection)
    assert client.connection_kwargs["password"] == "pw"


def test_a_node_notices_a_replica_promoted_on_any_master_and_writes_its_presence_again(redis_cluster, three_masters,
                                                                                      settings):
    """Its presence is on every master: the heartbeat reads each one's replication id (the node's own keys' master
    alone saw no failover of the others, and a presence written there before it and lost stayed lost)."""
    backend = RedisBackend(redis_cluster.url, three_masters.keys.prefix, 60)  # its registration outlives the failover
    nodes = blocking(backend).nodes
    nodes.register_node("a", "boot-a")
    assert nodes.heartbeat("a", "boot-a") is True
    victim = next(master for master in redis_cluster.running_masters()
                  if master is not redis_cluster.master_of(three_masters.keys.node("a", "alive")))
    victim.kill()
    try:
        deadline = time.monotonic() + 30
        while len(redis_cluster.running_masters()) < 3:  # its replica promoted
            assert time.monotonic() < deadline
            time.sleep(0.2)
        answers = []
        while False not in answers:  # a new id: the node writes its presence again, once (after the settle)
            assert time.monotonic() < deadline
            answers.append(nodes.heartbeat("a", "boot-a"))
            time.sleep(0.3)
        assert nodes.heartbeat("a", "boot-a") is True
    finally:
        victim.start()
        redis_cluster.wait_settled()
