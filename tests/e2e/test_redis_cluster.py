"""freeim on a real Redis Cluster end to end: three masters, each with a replica, started by the test; three daphne
nodes, an events worker and this process (the business side) on a ``redis+cluster://`` URL; real terminals.

Messages cross nodes, presence and chans follow connects and disconnects, a node killed with SIGKILL is reaped;
then, during steady traffic, a master is killed (its replica takes over) and a slot moves to another master. Every
send must reach its socket or be refused to its caller, and presence must be right afterwards: no ghost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection

from demo_project.cluster import RedisCluster
from freeim import im
from freeim.backends.redis.keys import partition, partition_tag
from freeim.exceptions import StoreUnavailable
from tests.e2e.cluster import Cluster, Ids, Terminals, eventually, next_frame, report
from tests.e2e.traffic import Traffic

pytest_plugins = ["tests.e2e.cluster"]  # the processes' log tails in the report of a failing test

#: Longer than a master's failover takes (a second to be called down, an election), so that nodes do not reap one
#: another while their heartbeats cannot land.
HEARTBEAT_TTL = 6


@pytest.fixture(scope="module")
def redis_shards() -> RedisCluster:
    return RedisCluster(masters=3, replicas=1)


@pytest.fixture(scope="module")
def cluster(redis_shards: RedisCluster) -> Iterator[Cluster]:
    with Cluster(size=3, redis=redis_shards, heartbeat_ttl=HEARTBEAT_TTL) as running:
        yield running


@pytest.fixture(autouse=True)
def business(cluster: Cluster, redis_shards: RedisCluster) -> Iterator[None]:
    redis_shards.wait_settled()  # a killed master came back as a replica of the one that took over
    with cluster.serving():
        yield


async def presence_is(online: dict[str, bool], chans: dict[str, set[str]], within: float) -> float:
    """Until ``has_online`` and each chan's members are as given; how long it took."""

    async def right() -> bool:
        try:
            found = {chan: set(await im.aget_chan_client_list(chan)) for chan in chans}
            return await im.ahas_online(list(online)) == online and found == chans
        except StoreUnavailable:
            return False

    return await eventually(right, within, step=0.1)


async def test_messages_presence_and_chans_across_nodes_and_shards_and_a_killed_node(cluster, ids, terminals):
    clients = [client for node in range(3) for client in ids.on(node, 2)]  # two on each node
    sockets = {client: await terminals.open(client) for client in clients}
    for client in clients[::2]:  # the first of each node
        await im.ajoin_chan(client, "room")
    room = set(clients[::2])
    assert len({partition(client) for client in clients}) > 1  # their keys on more than one shard, most likely
    for sender, receiver in zip(clients, clients[1:] + clients[:1], strict=True):
        message = await im.asend_message(sender, [receiver], {"from": sender})
        assert (await next_frame(sockets[receiver]))["id"] == message
    chan_message = await im.asend_chan_message(clients[0], "room", "hello room")
    for member in room:
        assert (await next_frame(sockets[member]))["id"] == chan_message
    assert await im.aget_chan_online("room") == 3 and await im.aget_online_count() == 6
    assert dict(await im.aget_chan_list()) == {"room": 3}

    await asyncio.to_thread(cluster.kill, 2)  # its two clients: offline once a peer reaps the node
    gone = set(clients[4:])
    took = await presence_is({client: client not in gone for client in clients}, {"room": room - gone},
                             HEARTBEAT_TTL * 4)
    report("redis cluster: a killed node's clients offline after", took)
    assert await im.aget_online_count() == 4 and dict(await im.aget_chan_list()) == {"room": 2}
    await sockets[clients[0]].close()
    await presence_is({clients[0]: False}, {"room": {clients[2]}}, 5)


async def open_steady(terminals: Terminals, ids: Ids) -> dict[str, ClientConnection]:
    """Four terminals on each of the first two nodes."""
    return {client: await terminals.open(client) for node in (0, 1) for client in ids.on(node, 4)}


async def test_a_master_killed_during_traffic_is_replaced_and_no_send_is_lost(cluster, redis_shards, ids, terminals,
                                                                             settings):
    settings.FREEIM = {**settings.FREEIM, "REDIS_WAIT_REPLICAS": 1}  # a send that returned is on the replica too
    sockets = await open_steady(terminals, ids)
    traffic = Traffic(sockets)
    running = asyncio.create_task(traffic.run())
    await asyncio.sleep(1)
    victim = redis_shards.master_of(cluster.keys.client(next(iter(sockets)), "conns"))  # a receiver's shard
    killed_at = time.monotonic()
    victim.kill()

    async def promoted() -> bool:
        return len(await asyncio.to_thread(redis_shards.running_masters)) == 3

    await eventually(promoted, 30, step=0.2)
    switched = time.monotonic() - killed_at
    # What an operator does: the dead master comes back, its cluster configuration kept, as a replica of the one
    # that took its slots; until then that shard has no replica to wait for, and its sends are refused.
    victim.start()
    await asyncio.to_thread(redis_shards.wait_settled)
    await eventually(traffic.going_through, 30, step=0.1)
    recovered = time.monotonic() - killed_at
    figures = await traffic.ended(running, "redis cluster: kill -9 of a master", replica_promoted_after=switched,
                                  sends_go_through_again_after=recovered)
    assert figures["lost"] == figures["not_kept"] == 0 and figures["ok"] > 0
    await presence_is(dict.fromkeys(sockets, True), {}, HEARTBEAT_TTL * 2)


async def test_a_slot_moved_during_traffic_loses_no_send_and_no_presence(cluster, redis_shards, ids, terminals):
    sockets = await open_steady(terminals, ids)
    traffic = Traffic(sockets)
    running = asyncio.create_task(traffic.run())
    await asyncio.sleep(1)
    receiver = next(iter(sockets))
    tag = partition_tag("c", partition(receiver))  # every key of the receiver, its partition's online set...
    started = time.monotonic()
    moved = await asyncio.to_thread(redis_shards.move_slot, f"{{{tag}}}")
    took = time.monotonic() - started
    await asyncio.sleep(1)
    print(f"\nfreeim redis cluster: moved a client partition's slot, {moved} keys, during traffic")
    figures = await traffic.ended(running, "redis cluster: a slot moved", move_took=took)
    assert figures["lost"] == figures["not_kept"] == 0 and figures["ok"] > 0
    await presence_is(dict.fromkeys(sockets, True), {}, 5)
    await sockets[receiver].close()
    await presence_is({receiver: False}, {}, 5)  # its presence, now on the other master, changes there
