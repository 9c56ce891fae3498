"""The connection layer on Redis Cluster (freeim/backends/redis/cluster.py): steps routed to the masters of their
keys, pipelines split per master and put back in order, redirections and failovers followed. Single-slot scripts
only: the presence scripts still span slots (the layout is being split), so the contract suite does not run here."""

import asyncio
import uuid

import pytest
import redis

from freeim.backends.contract import Letter
from freeim.backends.redis import RedisBackend
from freeim.backends.redis.client import Awaiting, Blocking
from freeim.backends.redis.steps import Lua, Pipe, one
from freeim.exceptions import StoreUnavailable


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
def test_scripts_a_master_forgot_are_loaded_again(redis_cluster, three_masters, awaited):
    store = three_masters.store if awaited else three_masters.blocking().store
    asyncio.run(store.store_messages([Letter(client, "m", "{}") for client in range(6)], []))
    for master in redis_cluster.masters:
        redis_cluster.ask(master, "SCRIPT", "FLUSH")
    stored, _ = asyncio.run(store.store_messages([Letter(client, "m2", "{}") for client in range(6)], []))
    assert [at.split(".")[1] for at, _nodes in stored] == ["2"] * 6
