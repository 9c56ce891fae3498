"""Redis Sentinel end to end: a master, a replica and three sentinels; real daphne nodes; real terminals.

The Redis URL is ``redis+sentinel://``, so every process waits for the replica to have a send (the default
of ``REDIS_WAIT_REPLICAS`` with Sentinel). During steady traffic from this process (the business side), the master is
failed over, by ``SENTINEL FAILOVER`` or ``kill -9``; the sockets must stay open, presence must be right
again within a bound (also when the new master lost the last connects and disconnects), and every send
must either reach its socket or raise ``StoreUnavailable`` to its caller: none is lost in silence.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from websockets.asyncio.client import ClientConnection

from demo_project.cluster import RedisSentinel
from freeim import im
from freeim.backends import get_backend
from freeim.exceptions import StoreUnavailable
from tests import partitions
from tests.e2e.cluster import Cluster, Ids, Terminals, eventually, next_frame, report

pytest_plugins = ["tests.e2e.cluster"]  # the processes' log tails in the report of a failing test

#: freeim's default. It must be longer than a failover takes (here the sentinels' 1 s to call the master down, an
#: election, and what the new master lacks): nodes must not reap one another while no heartbeat reaches Redis.
HEARTBEAT_TTL = 10
#: Seconds between two sends (each its own task: a send waiting for the replica holds up no other).
SEND_EVERY = 0.02
#: What the nodes log as they write their presence again.
REBUILD = "lost its registration (or the store lost writes)"


@pytest.fixture(scope="module")
def sentinel() -> RedisSentinel:
    return RedisSentinel(replicas=1)


@pytest.fixture(scope="module")
def cluster(sentinel: RedisSentinel) -> Iterator[Cluster]:
    running = Cluster(size=2, redis=sentinel, heartbeat_ttl=HEARTBEAT_TTL)
    try:
        running.boot()
        yield running
    finally:
        running.stop_all()


@pytest.fixture(autouse=True)
def business(cluster: Cluster, sentinel: RedisSentinel) -> Iterator[None]:
    sentinel.wait_settled()  # after a failover, the old master follows the new one some seconds later
    with cluster.serving():
        yield


class Traffic:
    """Sends from this process, one every :data:`SEND_EVERY` seconds round robin over ``sockets``, and what became
    of each: ``ok`` (with its message id) or ``refused`` (``StoreUnavailable``), whether it reached its socket,
    and whether it is in its receiver's inbox, for a terminal that reconnects. Any other error fails the test."""

    def __init__(self, sockets: dict[str, ClientConnection]) -> None:
        self.sockets = sockets
        self.outcomes: dict[int, tuple[str, str, float, float]] = {}  # n -> client, outcome, started, ended
        self.message_ids: dict[int, str] = {}
        self.received: dict[str, set[int]] = {client: set() for client in sockets}
        self.fences: dict[str, asyncio.Future[None]] = {}
        self.stopping = asyncio.Event()
        #: The longest a socket went without a frame while sends went through.
        self.longest_pause = 0.0

    async def run(self) -> None:
        readers = [asyncio.create_task(self._read(client, ws)) for client, ws in self.sockets.items()]
        sends: list[asyncio.Task[None]] = []
        clients = list(self.sockets)
        while not self.stopping.is_set():
            sends.append(asyncio.create_task(self._send(len(sends), clients[len(sends) % len(clients)])))
            await asyncio.sleep(SEND_EVERY)
        await asyncio.gather(*sends)
        await self._fence()
        for reader in readers:
            reader.cancel()

    async def _send(self, n: int, client: str) -> None:
        started = time.monotonic()
        try:
            self.message_ids[n] = await im.asend_message("boss", [client], {"n": n})
            outcome = "ok"
        except StoreUnavailable:
            outcome = "refused"
        self.outcomes[n] = (client, outcome, started, time.monotonic())

    async def _read(self, client: str, ws: ClientConnection) -> None:
        last = time.monotonic()
        async for raw in ws:  # a socket that closes ends this early: the fence then never comes
            data = json.loads(raw).get("data")
            if isinstance(data, dict) and "n" in data:
                self.received[client].add(data["n"])
                self.longest_pause, last = max(self.longest_pause, time.monotonic() - last), time.monotonic()
            elif isinstance(data, dict) and data.get("fence") in self.fences:
                self.fences[data["fence"]].set_result(None)

    async def _fence(self) -> None:
        """A last message to each socket, sent after every send returned: the node hands a socket its frames in
        order, so what has not come before it never will."""
        for client in self.sockets:
            fence = uuid.uuid4().hex
            self.fences[fence] = asyncio.get_running_loop().create_future()
            await im.asend_message("boss", [client], {"fence": fence})
        await asyncio.wait_for(asyncio.gather(*self.fences.values()), 10)

    async def figures(self) -> dict[str, int]:
        """How many sends there were, ``ok`` and ``refused``; of the ok ones, how many never reached their socket
        (``lost``) or are not in their receiver's inbox (``not_kept``)."""
        ok = [n for n, (_c, outcome, *_) in self.outcomes.items() if outcome == "ok"]
        kept = set()
        for client in self.sockets:
            kept |= {message.id for message in (await get_backend().store.read_inbox(client, "*")).messages}
        return {"sent": len(self.outcomes), "ok": len(ok), "refused": len(self.outcomes) - len(ok),
                "lost": sum(n not in self.received[self.outcomes[n][0]] for n in ok),
                "not_kept": sum(self.message_ids[n] not in kept for n in ok)}

    async def going_through(self) -> bool:
        """Whether every send started in the last half second went through (and there were some)."""
        latest = [outcome for _c, outcome, started, _e in self.outcomes.values() if started > time.monotonic() - 0.5]
        return bool(latest) and all(outcome == "ok" for outcome in latest)

    async def ended(self, running: asyncio.Task[None], what: str, **seconds: float) -> dict[str, int]:
        """Stop the traffic (``running`` is :meth:`run`) a second after it goes through again, print its
        :meth:`figures` with ``seconds`` (how long each step of the failover took), and return them."""
        await asyncio.sleep(1)
        self.stopping.set()
        await running
        figures = await self.figures()
        print(f"\nfreeim sentinel: {what}: sends {figures['sent']}, ok {figures['ok']}, refused (StoreUnavailable) "
              f"{figures['refused']}, lost {figures['lost']}, ok but not in the receiver's inbox {figures['not_kept']}")
        for name, value in {"longest_pause_of_a_socket": self.longest_pause, **seconds, **self.refused_for()}.items():
            report(f"{what}: {name.replace('_', ' ')}", value)
        return figures

    def refused_for(self) -> dict[str, float]:
        """From the first refused send's start to the last one's end, if any was refused."""
        spans = [(started, ended) for _c, outcome, started, ended in self.outcomes.values() if outcome == "refused"]
        return {"sends_refused_for": max(e for _, e in spans) - min(s for s, _ in spans)} if spans else {}


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
    figures = await traffic.ended(running, "SENTINEL FAILOVER", sentinels_switched_after=switched,
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
    figures = await traffic.ended(running, "kill -9 of the master", sentinels_switched_after=switched,
                                  presence_right_again_after=rebuilt, sends_go_through_again_after=recovered)
    assert figures["lost"] == figures["not_kept"] == 0 and figures["ok"] > 0
    message = await im.asend_message("boss", [joining], "welcome")
    assert (await next_frame(joined))["id"] == message
    assert not set(offline_events(cluster)) & set(traffic.sockets)  # nobody flapped offline
