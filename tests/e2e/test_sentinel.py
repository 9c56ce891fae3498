"""Redis Sentinel end to end: a master, a replica and three sentinels; real daphne nodes; real terminals.

The Redis URL is ``redis+sentinel://``, so every process waits for the replica to have a send (the default
of ``REDIS_WAIT_REPLICAS`` with Sentinel). During steady traffic from this process (the business side), the master is
failed over, by ``SENTINEL FAILOVER`` or ``kill -9``; the sockets must stay open, presence must be right
again within a bound (also when the new master lost the last connects and disconnects), and every send
must either reach its socket or raise ``StoreUnavailable`` to its caller: none is lost in silence.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from websockets.asyncio.client import ClientConnection

from demo_project.cluster import RedisSentinel
from freeim import im
from freeim.exceptions import StoreUnavailable
from tests import partitions
from tests.e2e.cluster import Cluster, Ids, Terminals, eventually, next_frame
from tests.e2e.traffic import Traffic

pytest_plugins = ["tests.e2e.cluster"]  # the processes' log tails in the report of a failing test

#: freeim's default. It must be longer than a failover takes (here the sentinels' 1 s to call the master down, an
#: election, and what the new master lacks): nodes must not reap one another while no heartbeat reaches Redis.
HEARTBEAT_TTL = 10
#: What the nodes log as they write their presence again.
REBUILD = "lost its registration (or the store lost writes)"


@pytest.fixture(scope="module")
def sentinel() -> RedisSentinel:
    return RedisSentinel(replicas=1)


@pytest.fixture(scope="module")
def cluster(sentinel: RedisSentinel) -> Iterator[Cluster]:
    with Cluster(size=2, redis=sentinel, heartbeat_ttl=HEARTBEAT_TTL) as running:
        yield running


@pytest.fixture(autouse=True)
def business(cluster: Cluster, sentinel: RedisSentinel) -> Iterator[None]:
    sentinel.wait_settled()  # after a failover, the old master follows the new one some seconds later
    with cluster.serving():
        yield


async def open_steady(terminals: Terminals, ids: Ids) -> tuple[dict[str, ClientConnection], set[str]]:
    """Two terminals on each node, and the members of chan ``room``: the first of each."""
    sockets, room = {}, set()
    for node in (0, 1):
        first, second = ids.on(node, 2)
        sockets[first], sockets[second] = await terminals.open(first), await terminals.open(second)
        await im.ajoin_chan(first, "room")
        room.add(first)
    return sockets, room


def rebuilds(cluster: Cluster) -> list[int]:
    """How many times each node wrote its presence again, from its log."""
    return [node.log.read_text(errors="replace").count(REBUILD) for node in cluster.nodes]


def offline_events(cluster: Cluster) -> list[str]:
    return [fields["client"] for fields in partitions.events(cluster.store, cluster.keys)
            if fields["kind"] == "offline"]


async def presence_is(online: dict[str, bool], room: set[str]) -> None:
    """Until ``has_online`` and chan ``room``'s members are as given (read on the current master)."""

    async def right() -> bool:
        try:
            return await im.ahas_online(list(online)) == online and set(await im.aget_chan_client_list("room")) == room
        except StoreUnavailable:
            return False

    await eventually(right, HEARTBEAT_TTL * 4, step=0.1)


async def test_a_sentinel_failover_during_traffic_keeps_sockets_and_loses_no_send(cluster, sentinel, ids, terminals):
    sockets, room = await open_steady(terminals, ids)
    rebuilt_before = rebuilds(cluster)
    traffic = Traffic(sockets)
    running = asyncio.create_task(traffic.run())
    await asyncio.sleep(1)
    old = sentinel.master()
    failover_at = time.monotonic()
    await asyncio.to_thread(sentinel.failover)
    await asyncio.to_thread(sentinel.wait_new_master, old)
    switched = time.monotonic() - failover_at

    async def every_node_rebuilt() -> bool:
        return all(now > before for now, before in zip(rebuilds(cluster), rebuilt_before, strict=True))

    await eventually(every_node_rebuilt, HEARTBEAT_TTL * 2)
    rebuilt = time.monotonic() - failover_at
    await presence_is(dict.fromkeys(sockets, True), room)
    await eventually(traffic.going_through, 60, step=0.1)
    recovered = time.monotonic() - failover_at
    figures = await traffic.ended(running, "sentinel: SENTINEL FAILOVER", sentinels_switched_after=switched,
                                  nodes_wrote_presence_again_after=rebuilt, sends_go_through_again_after=recovered)
    assert figures["lost"] == figures["not_kept"] == 0 and figures["ok"] > 0
    assert not set(offline_events(cluster)) & set(sockets)  # nobody flapped offline


async def test_a_master_killed_with_unreplicated_writes_is_replaced_and_presence_rebuilt(cluster, sentinel, ids,
                                                                                         terminals):
    sockets, room = await open_steady(terminals, ids)
    leaving = next(client for client in sockets if client not in room)
    traffic = Traffic({client: ws for client, ws in sockets.items() if client != leaving})
    running = asyncio.create_task(traffic.run())
    await asyncio.sleep(1)
    old = sentinel.master()
    [replica] = sentinel.replicas()
    # The replica stops reading (but answers the sentinels again in time), and 64 MB written to the master fill
    # the sockets to it: what follows stays in the master's memory, and dies with it.
    replica.process.send_signal(signal.SIGSTOP)
    try:
        master = redis.Redis(port=old.port)
        master.set("freeim-test-ballast", b"x" * (64 << 20))
        master.close()
        [joining] = ids.on(0)
        joined = await terminals.open(joining)  # its connect reaches the master only...
        await sockets[leaving].close()  # ...and so does this disconnect
        await presence_is({joining: True, leaving: False}, room)
        killed_at = time.monotonic()
        old.kill()
    finally:
        replica.process.send_signal(signal.SIGCONT)
    new = await asyncio.to_thread(sentinel.wait_new_master, old)
    switched = time.monotonic() - killed_at
    assert not cluster.store.exists("freeim-test-ballast")  # so the promoted replica lacks what came after it too
    # The promoted replica lacks the connect and the disconnect; the nodes notice and write their presence again.
    await presence_is({**dict.fromkeys(traffic.sockets, True), joining: True, leaving: False}, room)
    rebuilt = time.monotonic() - killed_at
    # What an operator does: the dead master comes back as a replica, and sends can be replicated again.
    old.options += ["--replicaof", "127.0.0.1", str(new.port)]
    old.start()
    await eventually(traffic.going_through, 30, step=0.1)
    recovered = time.monotonic() - killed_at
    figures = await traffic.ended(running, "sentinel: kill -9 of the master", sentinels_switched_after=switched,
                                  presence_right_again_after=rebuilt, sends_go_through_again_after=recovered)
    assert figures["lost"] == figures["not_kept"] == 0 and figures["ok"] > 0
    message = await im.asend_message("boss", [joining], "welcome")
    assert (await next_frame(joined))["id"] == message
    assert not set(offline_events(cluster)) & set(traffic.sockets)  # nobody flapped offline
