"""Rolling deploys on a real cluster: a node told to stop (SIGTERM) drains.

It closes its sockets with 4007; the terminals reconnect at once to other nodes (connect/ no longer names the
draining node) and resume from their inbox positions, so nothing sent meanwhile is lost; and their clients'
presence never changes: no offline and no online signal, as the ``freeim_events`` worker records them. A terminal
that does not come back within ``DRAIN_GRACE`` goes offline when the node exits. The rolling restart of every node
under 1,000 clients receiving 500 messages a second prints its figures (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from freeim import im
from freeim.exceptions import StoreUnavailable
from freeim.protocol import CloseCode
from freeim.testing import eventually
from tests import partitions
from tests.e2e.cluster import Cluster
from tests.e2e.recorder.receivers import RECORD_KEY

pytest_plugins = ["tests.e2e.cluster"]

#: The nodes' grace: long enough that every test terminal is back well within it.
GRACE = 10
CLIENTS = 1000
RATE = 500
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(drain_grace=GRACE) as running:
        yield running


@pytest.fixture(autouse=True)
def business(cluster: Cluster) -> Iterator[str]:
    """A clean cluster, this process as its business side, and a worker recording every presence signal in the
    Redis list whose name it yields."""
    with cluster.serving():
        records = f"freeim-test-records:{uuid.uuid4().hex}"
        cluster.start_worker(**{RECORD_KEY: records})
        yield records


def signals(cluster: Cluster, records: str) -> list[tuple[str, str]]:
    """``(kind, client id)`` of every presence signal the worker handled so far."""
    return [(entry["kind"], entry["client_id"]) for entry in map(json.loads, cluster.store.lrange(records, 0, -1))]


async def handled_every_event(cluster: Cluster) -> bool:
    """Whether the worker handled every event in the stream (none waiting for it, none unacked)."""
    return all(group["pending"] == 0 and group["lag"] == 0 for group in partitions.groups(cluster.store, cluster.keys))


def readiness(cluster: Cluster, index: int) -> tuple[int, dict[str, Any]]:
    try:
        with NO_PROXY.open(f"http://{cluster.servers[index]}/freeim/health/ready", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


class Roaming:
    """A terminal as freeim.js is: every connect asks for a fresh token and resumes from the position up to which
    it saw every message; a close with 4007 sends it at once to another node, any other loss after a pause."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.seen: set[str] = set()
        self.duplicates = 0
        self.node: str | None = None  # where its socket is open now, if it is
        self.closes: list[int | None] = []
        self.receipts: dict[str, str] = {}  # message id -> the last receipt status it got
        self._epoch: str | None = None
        self._mark = 0
        self._above: set[int] = set()

    @property
    def position(self) -> str:
        return f"{self._epoch}.{self._mark}" if self._epoch is not None else "*"

    def take(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "receipt":
            self.receipts[frame["id"]] = frame["status"]
        elif frame.get("type") == "message":
            if frame["id"] in self.seen:
                self.duplicates += 1
            self.seen.add(frame["id"])
        if "pos" not in frame:
            return
        epoch, offset = frame["pos"].split(".")
        if epoch != self._epoch:
            self._epoch, self._mark, self._above = epoch, int(offset) - 1, set()
        self._above.add(int(offset))
        while self._mark + 1 in self._above:
            self._mark += 1
            self._above.discard(self._mark)

    async def run(self) -> None:
        """Stay connected until cancelled."""
        avoid = None
        while True:
            node = None
            try:
                url, node = await im.aconnect_ticket(self.client_id, since=self.position, avoid=avoid)
                async with connect(url, proxy=None, open_timeout=5, close_timeout=1) as ws:
                    self.node, avoid = node, None
                    await self._read(ws)
            except ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd else None)
                avoid = node
                if closed.rcvd is None or closed.rcvd.code != CloseCode.NODE_DRAINING:
                    await asyncio.sleep(0.5)
            except (OSError, TimeoutError, InvalidStatus, StoreUnavailable):
                avoid = node
                await asyncio.sleep(0.5)
            finally:
                self.node = None

    async def _read(self, ws: ClientConnection) -> None:
        async for text in ws:
            self.take(json.loads(text))
        raise ConnectionClosed(ws.close_rcvd, ws.close_sent)


@contextlib.asynccontextmanager
async def roaming(client_ids: list[str]) -> Any:
    """Terminals of ``client_ids``, each roaming until the block ends; entered once every one is connected."""
    terminals = [Roaming(client) for client in client_ids]
    tasks = [asyncio.create_task(terminal.run()) for terminal in terminals]
    try:
        await eventually(lambda: all(terminal.node for terminal in terminals), timeout=60)
        yield terminals
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def on(cluster: Cluster, index: int, count: int) -> list[str]:
    """``count`` fresh client ids that the router gives node ``index`` while every node is up."""
    from freeim.messaging.router import rendezvous

    found: list[str] = []
    while len(found) < count:
        candidate = f"d{uuid.uuid4().hex[:10]}"
        if rendezvous(candidate, cluster.servers) == cluster.servers[index]:
            found.append(candidate)
    return found


async def test_a_stopped_nodes_terminals_move_to_other_nodes_without_a_presence_signal(cluster, business):
    moving = on(cluster, 2, 3)
    async with roaming(moving) as terminals:
        await im.ajoin_chan(moving[0], "room")
        onlines = sorted(("online", client) for client in moving)
        await eventually(lambda: sorted(signals(cluster, business)) == onlines, timeout=20)
        began = time.monotonic()
        await asyncio.to_thread(cluster.terminate, 2)  # returns once the process exited
        stopped = time.monotonic() - began
        assert all(terminal.closes == [CloseCode.NODE_DRAINING] for terminal in terminals)
        await eventually(lambda: all(terminal.node for terminal in terminals), timeout=10)
        assert {terminal.node for terminal in terminals} <= set(cluster.servers[:2])
        assert stopped < GRACE / 2, "the node waited as if its terminals had not come back"
        assert await im.ahas_online(moving) == dict.fromkeys(moving, True)
        assert await im.aget_chan_client_list("room") == [moving[0]]
        sent = await im.asend_message("sender", [moving[0]], "after the move")
        await eventually(lambda: sent in terminals[0].seen, timeout=5)
        await eventually(lambda: handled_every_event(cluster), timeout=20)
        assert sorted(signals(cluster, business)) == onlines  # nothing flapped
    print(f"\nfreeim drain: SIGTERM -> node exited, its 3 terminals back elsewhere: {stopped:.2f} s")


async def test_a_terminal_that_does_not_come_back_goes_offline_after_the_grace(cluster, business):
    [gone] = on(cluster, 1, 1)
    url = await im.aprev_connect_server(gone)
    [late] = on(cluster, 1, 1)
    late_url = await im.aprev_connect_server(late)  # issued before the drain began, used after
    async with connect(url, proxy=None) as ws:
        await eventually(lambda: signals(cluster, business) == [("online", gone)], timeout=20)
        began = time.monotonic()
        stopping = asyncio.create_task(asyncio.to_thread(cluster.terminate, 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == CloseCode.NODE_DRAINING
    status, answer = readiness(cluster, 1)
    assert status == 503 and "the node is draining" in answer["reasons"] and answer["draining"]
    with pytest.raises(InvalidStatus):  # the node takes no one any more
        async with connect(late_url, proxy=None):
            pass
    for _ in range(20):  # connect/ names the other nodes only
        assert (await im.aconnect_ticket(f"someone-{uuid.uuid4().hex}"))[1] != cluster.servers[1]
    assert await im.ahas_online([gone]) == {gone: True}  # within the grace: as it was
    await stopping
    waited = time.monotonic() - began
    assert GRACE - 1 < waited < GRACE + 5
    assert await im.ahas_online([gone]) == {gone: False}
    await eventually(lambda: signals(cluster, business) == [("online", gone), ("offline", gone)], timeout=20)
    print(f"\nfreeim drain: a terminal that never came back went offline after {waited:.2f} s (grace {GRACE} s)")


async def test_a_client_forced_offline_while_it_moves_goes_offline_at_once(cluster, business):
    """Its socket was closed by the drain (4007) and it is not back yet: the force takes it offline now, once, and
    the drain's end does not send a second offline."""
    [client] = on(cluster, 1, 1)
    async with connect(await im.aprev_connect_server(client), proxy=None) as ws:
        await eventually(lambda: signals(cluster, business) == [("online", client)], timeout=20)
        stopping = asyncio.create_task(asyncio.to_thread(cluster.terminate, 1))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert await im.ahas_online([client]) == {client: True}  # parked: its terminal may be on its way
    await im.aforce_offline(client)

    async def offline() -> bool:
        return await im.ahas_online([client]) == {client: False}

    await eventually(offline, timeout=2)
    await stopping
    await eventually(lambda: handled_every_event(cluster), timeout=20)
    assert signals(cluster, business) == [("online", client), ("offline", client)]


async def test_a_sender_gets_the_receipt_of_each_message_to_a_moving_client_right(cluster, business):
    """The draining node reports no receipt for a client on its way elsewhere (it said "offline", and that could
    come after the new node's "delivered"); the new node's catch-up reports each one delivered."""
    [sender], [receiver] = on(cluster, 0, 1), on(cluster, 2, 1)
    async with roaming([sender, receiver]) as (sending, receiving):
        stopping = asyncio.create_task(asyncio.to_thread(cluster.terminate, 2))
        sent = []
        for n in range(100):
            sent.append(await im.asend_message(sender, [receiver], n, receipt=True))
            await asyncio.sleep(0.005)
        await stopping
        await eventually(lambda: set(sent) <= receiving.seen, timeout=10)
        await eventually(lambda: all(sending.receipts.get(id_) == "delivered" for id_ in sent), timeout=10,
                         failure="not every message's last receipt is delivered")
        assert receiving.duplicates == 0


async def test_a_full_shutdown_does_not_wait_for_terminals_that_have_nowhere_to_go(cluster, business):
    """Every node told to stop at once: none waits out its grace for terminals no other node would take."""
    clients = [on(cluster, index, 1)[0] for index in range(len(cluster.nodes))]
    async with roaming(clients):
        await eventually(lambda: len(signals(cluster, business)) == len(clients), timeout=20)
        began = time.monotonic()
        await asyncio.gather(*(asyncio.to_thread(cluster.terminate, index) for index in range(len(cluster.nodes))))
        stopped = time.monotonic() - began
    assert stopped < GRACE / 2, "the nodes waited out their grace with nowhere to send their terminals"
    assert await im.ahas_online(clients) == dict.fromkeys(clients, False)
    print(f"\nfreeim drain: all 3 nodes told to stop at once exited within {stopped:.2f} s")


async def test_a_rolling_restart_of_every_node_loses_no_message_and_flaps_no_presence(cluster, business):
    clients = [f"r{uuid.uuid4().hex[:6]}-{n}" for n in range(CLIENTS)]
    expected: dict[str, set[str]] = {client: set() for client in clients}
    refused = 0
    async with roaming(clients) as terminals:
        await eventually(lambda: len(signals(cluster, business)) == CLIENTS, timeout=60, step=0.2)
        before = len(signals(cluster, business))
        sending = True

        async def send_at_rate() -> None:
            """Every 10 ms, as many sends as keep the count at ``RATE`` a second since the start (a late tick sends
            more), each to a client at random, side by side."""
            nonlocal refused
            began, count = time.monotonic(), 0
            while sending:
                started = time.monotonic()
                due = int((started - began) * RATE) - count
                count += due
                receivers = random.choices(clients, k=due)
                results = await asyncio.gather(*(im.asend_message("sender", [client], {"t": started})
                                                 for client in receivers), return_exceptions=True)
                for client, result in zip(receivers, results, strict=True):
                    if isinstance(result, StoreUnavailable):
                        refused += 1
                    elif isinstance(result, BaseException):
                        raise result
                    else:
                        expected[client].add(result)
                await asyncio.sleep(max(0.0, 0.01 - (time.monotonic() - started)))

        sender, sending_since = asyncio.create_task(send_at_rate()), time.monotonic()
        await asyncio.sleep(2)
        figures = []
        for index in range(len(cluster.nodes)):
            began = time.monotonic()
            await asyncio.to_thread(cluster.terminate, index)
            drained = time.monotonic() - began
            await eventually(lambda: all(terminal.node for terminal in terminals), timeout=GRACE)
            back = time.monotonic() - began
            await asyncio.to_thread(cluster.start, index)
            figures.append((cluster.servers[index], drained, back))
        await asyncio.sleep(2)
        sending = False
        await sender
        sent = sum(len(ids) for ids in expected.values())
        rate = sent / (time.monotonic() - sending_since)

        def missing() -> int:
            return sum(len(expected[t.client_id] - t.seen) for t in terminals)

        await eventually(lambda: missing() == 0, timeout=30, step=0.2)
        await eventually(lambda: handled_every_event(cluster), timeout=20)
        flapped = signals(cluster, business)[before:]
        duplicates = sum(terminal.duplicates for terminal in terminals)
    for node, drained, back in figures:
        print(f"\nfreeim rolling restart: {node}: SIGTERM -> exited {drained:.2f} s; every terminal connected again "
              f"{back:.2f} s")
    print(f"freeim rolling restart: {CLIENTS} clients, {sent} messages at {rate:.0f}/s: lost {missing()}, "
          f"refused {refused}, duplicates {duplicates}, presence signals during the restarts {len(flapped)}")
    assert (refused, duplicates, flapped) == (0, 0, [])
