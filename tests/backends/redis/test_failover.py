"""The Redis backend through a failover: pools that follow Sentinel, writes that wait for replicas, nodes that
notice a Redis that lost their writes, and the rebuild that keeps a node's live connections."""

import asyncio
import signal
import time
import uuid

import pytest
import redis

from demo_project.cluster import RedisSentinel, RedisServer
from freeim.backends.contract import Letter
from freeim.backends.redis import RedisBackend, pools
from freeim.backends.redis import nodes as redis_nodes
from freeim.backends.redis.client import Connections
from freeim.exceptions import StoreUnavailable
from tests.blocking import blocking
from tests.waiting import eventually


@pytest.fixture(scope="module")
def sentinel():
    topology = RedisSentinel(replicas=1)
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture
def primary_and_replica():
    """A Redis server and a replica of it."""
    primary = RedisServer(options=["--repl-diskless-sync-delay", "0"])
    replica = RedisServer(options=["--replicaof", "127.0.0.1", str(primary.port)])
    primary.start()
    replica.start()
    client = redis.Redis(port=primary.port, decode_responses=True)
    deadline = time.monotonic() + 10
    while client.info("replication").get("slave0", {}).get("state") != "online":
        assert time.monotonic() < deadline, "the replica did not come in sync"
        time.sleep(0.05)
    client.close()
    yield primary, replica
    replica.remove()
    primary.remove()


def test_a_pool_follows_a_sentinel_failover_before_the_old_master_steps_down(sentinel):
    """redis-py asks the sentinels where the master is only when it opens a connection: after a SENTINEL FAILOVER
    a pool whose connections stayed open wrote to the old master until the sentinels demoted it, about 10 s later,
    and all of it was lost then."""
    client = pools.connect(sentinel.url)
    old = sentinel.master()
    client.set("where", "before")
    sentinel.failover()
    new = sentinel.wait_new_master(old)
    switched = time.monotonic()
    while time.monotonic() - switched < pools.MASTER_CHECK + 0.5:
        client.set("where", "after")
        time.sleep(0.05)
    on_new = redis.Redis(port=new.port, decode_responses=True)
    on_old = redis.Redis(port=old.port, decode_responses=True)
    try:
        assert on_old.execute_command("ROLE")[0] == "master"  # not demoted yet: it would take the writes
        assert on_new.get("where") == "after"
        on_old.set("where", "on the old master")  # what freeim's pool would still write there
        client.set("where", "last")
        assert on_new.get("where") == "last"
    finally:
        on_new.close()
        on_old.close()
        client.close()


async def test_an_asyncio_pool_follows_a_sentinel_failover_too(sentinel):
    client = pools.connect(sentinel.url, asynchronous=True)
    old = sentinel.master()
    await client.set("where", "before")
    sentinel.failover()
    new = await asyncio.to_thread(sentinel.wait_new_master, old)
    await asyncio.sleep(pools.MASTER_CHECK)
    await client.set("where", "after")
    on_new = redis.Redis(port=new.port, decode_responses=True)
    try:
        assert on_new.get("where") == "after"
    finally:
        on_new.close()
        await client.aclose()


@pytest.fixture
def own_redis():
    server = RedisServer(options=["--enable-debug-command", "local"])
    server.start()
    yield server
    server.remove()


def test_a_heartbeat_notices_a_redis_that_is_another_data_set(own_redis):
    """After a failover the new master may lack the node's last connects and disconnects (replication is
    asynchronous) while the node's registration survived: the heartbeat, which looked at the registration only,
    never asked the node to write its presence again."""
    backend = RedisBackend(own_redis.url, "lineage", 10)
    backend.blocking().nodes.lineage.settle = 0.2  # (the blocking form has parts of its own)
    sync = blocking(backend)
    sync.nodes.register_node("a", "boot-a")
    assert sync.nodes.heartbeat("a", "boot-a") is True
    backend.connections.blocking.execute_command("DEBUG", "CHANGE-REPL-ID")  # what a promoted replica does
    assert sync.nodes.heartbeat("a", "boot-a") is True  # the process's other pools may still be on the old master
    time.sleep(0.25)
    assert sync.nodes.heartbeat("a", "boot-a") is False  # now the node writes its presence again...
    assert sync.nodes.heartbeat("a", "boot-a") is True  # ...once


def test_a_rebuild_keeps_the_live_connections_of_a_big_node(redis_server, monkeypatch):
    monkeypatch.setattr(redis_nodes, "DROP_CHUNK", 100)
    backend = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 10)
    sync = blocking(backend)
    try:
        sync.nodes.register_node("a", "boot-a")
        for number in range(600):
            sync.store.add_connection("a", number, f"a{number}")
        live = {f"a{number}" for number in range(0, 600, 2)}
        assert sorted(sync.nodes.drop_node("a", True, keep=live)) == list(range(1, 600, 2))
        assert sorted(sync.store.online_clients()) == list(range(0, 600, 2))
    finally:
        backend.flush()


def test_a_send_waits_for_the_replicas_asked_for(primary_and_replica, settings):
    """Replication is asynchronous: a send that Redis acknowledged and a failover lost was gone without a word
    (the promoted replica never had it). With REDIS_WAIT_REPLICAS the send's last round trip waits for them."""
    primary, replica = primary_and_replica
    backend = RedisBackend(primary.url, "wait", 10)
    sync = blocking(backend)
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 1}
    sync.transport.publish({"a": [{"op": "x"}]})
    sync.store.store_messages([Letter(1, "m1", "{}")], [])
    sync.store.store_chan_message("room", "m2", "{}")
    replica.stop()
    for write in (lambda: sync.transport.publish({"a": [{"op": "y"}]}),
                  lambda: sync.store.store_messages([Letter(1, "m3", "{}")], []),
                  lambda: sync.store.store_chan_message("room", "m4", "{}")):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="0 of the 1 replicas"):
            write()
        assert time.monotonic() - started < 2
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 0}
    sync.transport.publish({"a": [{"op": "z"}]})  # without replicas to wait for, as before


def test_sends_wait_for_one_replica_by_default_with_sentinel_only(sentinel, redis_server, settings):
    assert Connections(sentinel.url).wait_replicas() == 1
    assert Connections(redis_server.url).wait_replicas() == 0
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 0}
    assert Connections(sentinel.url).wait_replicas() == 0


async def test_an_inbox_reader_leaves_a_master_that_went_silent(sentinel, settings):
    """A master whose host stops answering (frozen here) keeps its TCP connections open: the node's reader, which
    had no socket timeout for its 5 s blocking reads, waited on it forever while the sentinels put another master
    in its place, and the node delivered nothing again. (Last in the module: the old master stays a master.)"""
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 0}  # the new master's one replica is the frozen one
    backend = RedisBackend(sentinel.url, f"t{uuid.uuid4().hex[:8]}", 10)
    received = []
    reader = asyncio.create_task(backend.transport.receive("a", lambda batch, _sent_at: received.append(batch),
                                                           await backend.transport.inbox_tail("a")))
    await backend.transport.publish({"a": [{"op": "before"}]})
    await eventually(lambda: received, timeout=5)
    old = sentinel.master()
    old.process.send_signal(signal.SIGSTOP)
    try:
        await asyncio.to_thread(sentinel.wait_new_master, old)
        await backend.transport.publish({"a": [{"op": "after"}]})
        await eventually(lambda: len(received) == 2, timeout=15)
    finally:
        old.process.send_signal(signal.SIGCONT)
        reader.cancel()
    assert received == [[{"op": "before"}], [{"op": "after"}]]
