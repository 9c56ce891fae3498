"""The cluster end to end: real daphne nodes, a real Redis, real sockets, real ``freeim_events`` workers.

One cluster (tests/e2e/cluster.py) serves the module; between tests its freeim keys are
flushed and every node is up and registered again. This pytest process is the business
side: it calls ``freeim.im`` with the cluster's settings. Each test uses client ids of its
own (a fresh prefix), so a late event or frame of another test cannot be mistaken for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest.mock import ANY
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import freeim
from demo_project.cluster import ROOT
from freeim import im
from freeim.backends import get_backend
from freeim.conf import server_base
from freeim.exceptions import FanoutTooLarge, StoreUnavailable
from freeim.messaging.router import rendezvous
from tests import partitions
from tests.e2e.cluster import FRAME_TIMEOUT, HEARTBEAT_TTL, Cluster, Terminals, eventually, next_frame, report
from tests.e2e.recorder.receivers import CRASH_CLIENT, CRASH_MARKER, RECORD_KEY
from tests.frames import unpositioned, without_position
from tests.groups.helpers import MAKE_GROUP

pytest_plugins = ["tests.e2e.cluster"]  # the processes' log tails in the report of a failing test

#: Long enough for a worker to start (Django setup) and handle an event.
EVENT_TIMEOUT = 20.0


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


@pytest.fixture(autouse=True)
def business(cluster: Cluster) -> Iterator[None]:
    """A clean cluster, and this process as its business side, for each test."""
    with cluster.serving():
        yield


# --- helpers ----------------------------------------------------------------------------------------------------


async def frames_until_fence(sockets: dict[str, ClientConnection]) -> dict[str, list[dict[str, Any]]]:
    """What each socket received before a fence message sent after it.

    A node writes its inbox in order, so everything sent to a socket before the fence
    arrives before it: "exactly these frames, nothing more" without waiting for silence.
    """
    fence = {"fence": uuid.uuid4().hex}
    fence_id = await im.asend_message("fence", list(sockets), fence)

    async def before_fence(ws: ClientConnection) -> list[dict[str, Any]]:
        received = []
        while (frame := await next_frame(ws)).get("id") != fence_id:
            received.append(without_position(frame))
        return received

    results = await asyncio.gather(*(before_fence(ws) for ws in sockets.values()))
    return dict(zip(sockets, results, strict=True))


async def online(client_ids: list[str]) -> dict[str, bool]:
    return await im.ahas_online(client_ids)


async def members(chan: str) -> set[str]:
    return set(await im.aget_chan_client_list(chan))


async def open_in_room(terminals: Terminals, client_ids: list[str]) -> None:
    """Connect each client and join it to chan ``room``."""
    for client in client_ids:
        await terminals.open(client)
        await im.ajoin_chan(client, "room")


# --- messages ---------------------------------------------------------------------------------------------------


async def test_private_message_crosses_nodes_and_reaches_every_device(ids, terminals):
    [alice], [bob] = ids.on(0), ids.on(1)
    alice_ws = await terminals.open(alice)
    phone, laptop = await terminals.open(bob), await terminals.open(bob)  # two devices, both on bob's node
    to_bob = await im.asend_message(alice, [bob], {"text": "hi bob"})
    to_alice = await im.asend_message(bob, [alice], {"text": "hi alice"})
    expected_by_bob = {"type": "message", "id": to_bob, "from": alice, "data": {"text": "hi bob"}}
    assert unpositioned(await next_frame(phone)) == expected_by_bob
    assert unpositioned(await next_frame(laptop)) == expected_by_bob
    got = unpositioned(await next_frame(alice_ws))
    assert got == {"type": "message", "id": to_alice, "from": bob, "data": {"text": "hi alice"}}


async def test_a_batch_of_messages_reaches_clients_on_every_node_in_order(ids, terminals):
    receivers = [ids.on(node)[0] for node in range(3)]
    sockets = {c: await terminals.open(c) for c in receivers}
    await im.asend_messages([("boss", receivers, {"n": 1}), ("boss", receivers[1:], {"n": 2}),
                             ("boss", [receivers[0]], {"n": 3})])
    data = {c: [frame["data"]["n"] for frame in frames] for c, frames in (await frames_until_fence(sockets)).items()}
    assert data == {receivers[0]: [1, 3], receivers[1]: [1, 2], receivers[2]: [1, 2]}


async def test_receipts_report_delivered_and_offline_across_nodes(ids, terminals):
    [sender], [present], [absent] = ids.on(0), ids.on(1), ids.on(2)
    sender_ws, present_ws = await terminals.open(sender), await terminals.open(present)
    sent = await im.asend_message(sender, [present, absent], {"n": 1}, receipt=True)
    got = unpositioned(await next_frame(present_ws))
    assert got == {"type": "message", "id": sent, "from": sender, "data": {"n": 1}}
    receipts = [unpositioned(await next_frame(sender_ws)) for _ in range(2)]  # from two places: any order
    assert sorted(receipts, key=lambda frame: frame["status"]) == [
        {"type": "receipt", "id": sent, "to": present, "status": "delivered"},
        {"type": "receipt", "id": sent, "to": absent, "status": "offline"},
    ]
    assert (await frames_until_fence({sender: sender_ws}))[sender] == []  # one receipt per receiver


async def test_chan_message_reaches_each_member_once_on_every_node(ids, terminals):
    member_ids = [ids.on(node)[0] for node in range(3)]
    outsider_ids = [ids.on(node)[0] for node in (0, 2)]
    sockets = {c: await terminals.open(c) for c in [*member_ids, *outsider_ids]}
    for member in member_ids:
        await im.ajoin_chan(member, "room")
    assert await members("room") == set(member_ids)
    await im.asend_chan_message(member_ids[0], "room", {"text": "to the room"})
    chan_frame = {"type": "chan", "id": ANY, "chan": "room", "from": member_ids[0], "data": {"text": "to the room"}}
    received = await frames_until_fence(sockets)
    assert received == {**{m: [chan_frame] for m in member_ids}, **{o: [] for o in outsider_ids}}


async def test_a_device_on_another_node_gets_the_chans_its_client_joined(cluster, ids, terminals):
    [alice] = ids.on(0)
    phone = await terminals.open(alice)
    await im.ajoin_chan(alice, "team")
    laptop = await terminals.open_on(cluster.servers[1], alice)
    await im.asend_chan_message("boss", "team", "to both devices")
    expected = {"type": "chan", "id": ANY, "chan": "team", "from": "boss", "data": "to both devices"}
    assert unpositioned(await next_frame(phone)) == expected
    assert unpositioned(await next_frame(laptop)) == expected


async def make_group(cluster: Cluster, slug: str, member_ids: list[str]) -> None:
    """Create group ``slug`` in another business process (a shell on the cluster's database and Redis)."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "manage.py", "shell", "-c", MAKE_GROUP], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env=cluster.env(GROUP=slug, MEMBERS=",".join(member_ids)))
    assert done.returncode == 0, done.stderr


async def test_group_members_on_every_node_get_its_messages_without_joining(cluster, ids, terminals):
    member_ids = [ids.on(node)[0] for node in range(3)]
    [outsider] = ids.on(1)
    await make_group(cluster, ids.prefix, member_ids)
    sockets = {c: await terminals.open(c) for c in [*member_ids, outsider]}  # each node asks the database
    await im.asend_chan_message("boss", ids.prefix, {"text": "to the group"})
    chan_frame = {"type": "chan", "id": ANY, "chan": ids.prefix, "from": "boss", "data": {"text": "to the group"}}
    assert await frames_until_fence(sockets) == {**{m: [chan_frame] for m in member_ids}, outsider: []}


async def test_a_squatter_on_another_node_is_evicted_when_the_group_is_created(cluster, ids, terminals):
    [member], [squatter] = ids.on(0), ids.on(1)
    sockets = {squatter: await terminals.open(squatter)}
    await im.ajoin_chan(squatter, ids.prefix)  # by name, before the group exists
    await make_group(cluster, ids.prefix, [member])
    assert await members(ids.prefix) == set()
    sockets[member] = await terminals.open(member)
    await im.asend_chan_message("boss", ids.prefix, "members only")
    chan_frame = {"type": "chan", "id": ANY, "chan": ids.prefix, "from": "boss", "data": "members only"}
    left = {"type": "left", "chan": ids.prefix}  # the squatter is told, across nodes
    assert await frames_until_fence(sockets) == {member: [chan_frame], squatter: [left]}


async def test_chan_message_goes_only_to_nodes_hosting_a_member(cluster, ids, terminals):
    member_ids = [ids.on(0)[0], ids.on(1)[0]]
    [outsider] = ids.on(2)
    sockets = {c: await terminals.open(c) for c in [*member_ids, outsider]}
    for member in member_ids:
        await im.ajoin_chan(member, "pair")
    before = [cluster.inbox_length(node) for node in range(3)]
    await im.asend_chan_message(member_ids[0], "pair", "psst")
    assert [cluster.inbox_length(node) - before[node] for node in range(3)] == [1, 1, 0]
    chan_frame = {"type": "chan", "id": ANY, "chan": "pair", "from": member_ids[0], "data": "psst"}
    assert await frames_until_fence(sockets) == {member_ids[0]: [chan_frame], member_ids[1]: [chan_frame],
                                                 outsider: []}


async def test_broadcast_reaches_sockets_on_every_node(ids, terminals):
    sockets = {c: await terminals.open(c) for c in [ids.on(node)[0] for node in range(3)]}
    await im.asend_broadcast_message({"notice": "maintenance"})
    for ws in sockets.values():
        assert await next_frame(ws) == {"type": "broadcast", "data": {"notice": "maintenance"}}


class StalledTerminal:
    """A raw WebSocket whose reader stops after the handshake, with a tiny receive window."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((parts.hostname, parts.port))
        self.sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        self.unread = b""
        while b"\r\n\r\n" not in self.unread:
            self.unread += self.sock.recv(4096)
        assert self.unread.startswith(b"HTTP/1.1 101"), self.unread[:100]
        self.unread = self.unread.split(b"\r\n\r\n", 1)[1]

    def close_code(self) -> int | str | None:
        """Read on at last: the code of the close frame after whatever frames were still on the way,
        or "reset" if the node gave up waiting for the close handshake first (the frames are lost then)."""
        self.sock.settimeout(10)
        data = self.unread
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        except ConnectionResetError:
            return "reset"
        finally:
            self.sock.close()
        while data:  # server frames are unmasked; lengths of 7, 16 or 64 bits
            opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(data[2:10], "big"), 10
            if opcode == 0x8:
                return int.from_bytes(data[start:start + 2], "big")
            data = data[start + length:]
        return None


async def test_a_terminal_that_stops_reading_is_closed_with_4002_and_delays_no_one(cluster, ids, terminals):
    """200 healthy terminals and one that reads nothing, on one node: broadcasts of 60 KB until the
    stalled one passes MAX_BACKLOG_BYTES and goes offline. Every healthy one gets every broadcast."""
    stalled_id, *healthy_ids = ids.on(0, 201)
    stalled = await asyncio.to_thread(StalledTerminal, await im.aprev_connect_server(stalled_id))
    sockets = {c: await terminals.open(c) for c in healthy_ids}
    payload = "x" * 60_000
    sent = 0
    while (await online([stalled_id]))[stalled_id]:
        assert sent < 100, "the stalled terminal was never closed"
        await im.asend_broadcast_message({"n": sent, "pad": payload})
        sent += 1
        received = await frames_until_fence(sockets)  # each broadcast reached every healthy terminal
        assert all([f["data"]["n"] for f in frames] == [sent - 1] for frames in received.values())
    assert await asyncio.to_thread(stalled.close_code) in (4002, "reset")
    print(f"\nfreeim cluster: a stalled terminal went offline after {sent} broadcasts of 60 KB")


async def test_force_offline_closes_every_socket_of_the_client_with_4000(ids, terminals):
    target, bystander = ids.on(1, 2)
    devices = [await terminals.open(target), await terminals.open(target)]
    bystander_ws = await terminals.open(bystander)
    await im.aforce_offline(target)
    for ws in devices:
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000

    async def target_offline() -> bool:
        return await online([target, bystander]) == {target: False, bystander: True}

    await eventually(target_offline, FRAME_TIMEOUT)
    sent = await im.asend_message(target, [bystander], "still here?")
    got = unpositioned(await next_frame(bystander_ws))
    assert got == {"type": "message", "id": sent, "from": target, "data": "still here?"}


# --- node failures ----------------------------------------------------------------------------------------------


async def test_killed_node_is_routed_around_and_reaped(cluster, ids, terminals):
    doomed = ids.on(2, 2)
    [survivor] = ids.on(0)
    await open_in_room(terminals, [*doomed, survivor])
    candidates = ids.any(50)
    assert any(rendezvous(c, cluster.servers) == cluster.servers[2] for c in candidates)
    cluster.kill(2)

    async def routed_around() -> bool:
        urls = [await im.aprev_connect_server(c) for c in candidates]
        return all(cluster.index_of_url(url) != 2 for url in urls)

    async def doomed_offline() -> bool:
        return not any((await online(doomed)).values())

    # Both measured from the kill, side by side.
    routed, detected = await asyncio.gather(eventually(routed_around, HEARTBEAT_TTL * 1.5 + 0.5),
                                            eventually(doomed_offline, HEARTBEAT_TTL * 3))
    report("kill -9 -> connect routing avoids the node", routed)
    report("kill -9 -> its clients offline (reaper)", detected)

    async def room_has_the_survivor_alone() -> bool:  # the chan learns of the reaped a round trip after presence
        return await members("room") == {survivor}

    await eventually(room_has_the_survivor_alone, FRAME_TIMEOUT)
    assert await online([survivor]) == {survivor: True}


class Resuming:
    """A terminal as freeim.js is: it keeps the position of the last message it got and resumes from it on
    every (re)connect, asking for another node than the one it lost."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.received: list[dict[str, Any]] = []
        self.in_chans: dict[str, list[dict[str, Any]]] = {}
        self.avoid: str | None = None
        self.connected_at: list[float] = []  # when each connection got its first frame

    def done(self, last: Any) -> bool:
        return all(frames and frames[-1]["data"] == last for frames in (self.received, *self.in_chans.values()))

    async def read_until(self, last: Any) -> bool:
        """Connect once and read until the message ``last``, private and in each chan; False if the socket was
        lost or refused first."""
        since = self.received[-1]["pos"] if self.received else "*"
        chans_since = {chan: frames[-1]["pos"] if frames else "*" for chan, frames in self.in_chans.items()}
        node, opened = None, time.monotonic()
        try:
            url, node = await im.aconnect_ticket(self.client_id, since=since, avoid=self.avoid,
                                                 chans_since=chans_since)
            async with connect(url, proxy=None, close_timeout=1, open_timeout=2) as ws:
                self.avoid = None
                async for text in ws:
                    if not self.connected_at or self.connected_at[-1] < opened:
                        self.connected_at.append(time.monotonic())
                    frame = json.loads(text)
                    assert frame["type"] in ("message", "chan"), frame  # never a gap: nothing trimmed or lost
                    (self.in_chans[frame["chan"]] if frame["type"] == "chan" else self.received).append(frame)
                    if self.done(last):
                        return True
        except (OSError, TimeoutError, InvalidStatus, ConnectionClosed):
            self.avoid = node  # a node that died under it, or one still routed to while dead
        return False

    async def read_through(self, last: Any) -> None:
        """Read until ``last``, reconnecting (with a short pause) as often as it takes."""
        while not await self.read_until(last):
            await asyncio.sleep(0.1)


#: How the terminal is away mid-stream: its node killed, its page reloaded, or its client offline for 30 s.
AWAY = ("node killed", "page reloaded", "offline for 30 s")


@pytest.mark.parametrize("away", AWAY)
async def test_a_terminal_away_mid_stream_resumes_with_every_message_once_in_order(cluster, ids, terminals, away):
    """1,000 private and 1,000 chan messages at 200/s each; the terminal goes away after about 150 (as ``away``
    says) and resumes as freeim.js does: every one of them, once, in order, and never a gap."""
    [client] = ids.on(2)
    [sender] = ids.on(0)
    await terminals.open_on(cluster.servers[0], client)  # a second device: the client stays in its chan
    await im.ajoin_chan(client, "room")
    total = 1000
    terminal = Resuming(client)
    terminal.in_chans["room"] = []

    async def send_at_200_a_second() -> None:
        for n in range(total):
            await im.asend_message(sender, [client], n)
            await im.asend_chan_message(sender, "room", n)
            await asyncio.sleep(1 / 200)

    reading = asyncio.create_task(terminal.read_through(total - 1))
    sending = asyncio.create_task(send_at_200_a_second())
    await eventually(lambda: asyncio.sleep(0, len(terminal.received) >= 150), 10)
    if away == "node killed":
        cluster.kill(2)
    else:  # the socket closed by the terminal: a reload keeps its positions (freeim.js: sessionStorage)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        if away == "offline for 30 s":
            await asyncio.sleep(30)
        reading = asyncio.create_task(terminal.read_through(total - 1))
    gone = time.monotonic()
    await asyncio.wait_for(reading, 40)
    await sending
    assert [frame["data"] for frame in terminal.received] == list(range(total))  # each once, in order
    assert [frame["data"] for frame in terminal.in_chans["room"]] == list(range(total))
    [resumed_at] = [at for at in terminal.connected_at if at > gone][:1]
    report(f"{away} mid-stream -> the terminal gets messages again", resumed_at - gone)


async def test_node_restarted_under_its_name_cleans_its_old_state(cluster, ids, terminals):
    stale = ids.on(1, 2)
    [survivor] = ids.on(0)
    await open_in_room(terminals, [*stale, survivor])
    # Hold the reaper's lock: no peer cleans up, so whatever is cleaned, the new process cleaned.
    cluster.store.set(cluster.keys.shared("reaper"), "test", px=60_000)
    try:
        cluster.kill(1)
        await asyncio.to_thread(cluster.start, 1)
        assert await online(stale) == {client: False for client in stale}
        assert await members("room") == {survivor}
    finally:
        cluster.store.delete(cluster.keys.shared("reaper"))
    again = await terminals.open(stale[0])
    sent = await im.asend_message(survivor, [stale[0]], "welcome back")
    got = unpositioned(await next_frame(again))
    assert got == {"type": "message", "id": sent, "from": survivor, "data": "welcome back"}


async def test_sigterm_removes_the_nodes_presence_in_bulk(cluster, ids, terminals):
    leaving = ids.on(2, 3)
    [staying] = ids.on(0)
    for client in [*leaving, staying]:
        await terminals.open(client)
    for client in (leaving[0], staying):
        await im.ajoin_chan(client, "room")
    await asyncio.to_thread(cluster.terminate, 2)  # returns once the process exited
    assert await online([*leaving, staying]) == {**{client: False for client in leaving}, staying: True}
    assert await members("room") == {staying}
    events = partitions.events(cluster.store, cluster.keys)
    offline = {fields["client"] for fields in events if fields["kind"] == "offline"
               and fields["server"] == cluster.servers[2]}
    assert offline == set(leaving)


async def test_redis_restart_keeps_sockets_and_rebuilds_presence(cluster, ids, terminals):
    [alice], [bob], [carol] = ids.on(0), ids.on(1), ids.on(2)
    alice_ws, bob_ws = await terminals.open(alice), await terminals.open(bob)
    await im.asend_message(alice, [carol], "kept until Redis lost it")
    [kept] = (await get_backend().store.read_inbox(carol, "*")).messages
    carol_was_at = kept.position
    for client in (alice, bob):
        await im.ajoin_chan(client, "room")
    await asyncio.to_thread(cluster.redis.stop)
    outage = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await im.asend_message(alice, [bob], "lost in the outage")
    failed_after = time.monotonic() - outage
    assert failed_after < 10
    with pytest.raises(InvalidStatus) as refused:  # a handshake the node cannot check: refused, not a 500
        await connect(f"{server_base(cluster.servers[0])}/ws?token=anything", proxy=None)
    assert refused.value.response.status_code == 403
    await asyncio.sleep(max(0.0, 1 - (time.monotonic() - outage)))  # Redis stays down for about a second
    await asyncio.to_thread(cluster.redis.start)  # empty: no presence, no chans, no node registrations

    async def rebuilt() -> bool:
        return await online([alice, bob]) == {alice: True, bob: True} and await members("room") == {alice, bob}

    recovered = await eventually(rebuilt, HEARTBEAT_TTL * 2)
    report("send during the Redis outage -> StoreUnavailable", failed_after)
    report("Redis back (empty) -> presence and chans rebuilt", recovered)
    for index in range(len(cluster.servers)):  # every node's pooled connections died with Redis: none may fail a call
        for _ in range(3):
            await terminals.open_on(cluster.servers[index], ids.any(1)[0])
    sent = await im.asend_message(alice, [bob], "after the restart")
    got = unpositioned(await next_frame(bob_ws))
    assert got == {"type": "message", "id": sent, "from": alice, "data": "after the restart"}
    await im.asend_chan_message(bob, "room", "all back")
    chan_frame = {"type": "chan", "id": ANY, "chan": "room", "from": bob, "data": "all back"}
    assert await frames_until_fence({alice: alice_ws, bob: bob_ws}) == {alice: [chan_frame], bob: [chan_frame]}
    carol_ws = await terminals.open(carol, since=carol_was_at)
    assert await next_frame(carol_ws) == {"type": "gap", "since": carol_was_at}  # never a silent hole


# --- events workers ---------------------------------------------------------------------------------------------


@pytest.fixture
def record_key() -> str:
    """The Redis list this test's workers record signals in (outside freeim's prefix)."""
    return f"freeim-test-records:{uuid.uuid4().hex}"


def records_of(cluster: Cluster, key: str, client: str) -> list[dict[str, Any]]:
    entries = [json.loads(raw) for raw in cluster.store.lrange(key, 0, -1)]
    return [entry for entry in entries if entry["client_id"] == client]


async def recorded(cluster: Cluster, key: str, client: str, count: int) -> list[dict[str, Any]]:
    """The signals recorded for ``client`` once there are ``count`` of them."""

    async def enough() -> bool:
        return len(records_of(cluster, key, client)) >= count

    await eventually(enough, EVENT_TIMEOUT, step=0.1)
    return records_of(cluster, key, client)


def kinds(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(kind, meta, server)`` of recorded signals, sorted: two workers may record them in either order."""
    return sorted((entry["kind"], entry["meta"], entry["server"]) for entry in entries)


async def test_two_workers_handle_each_event_once(cluster, ids, terminals, record_key):
    workers = await asyncio.gather(*(asyncio.to_thread(cluster.start_worker, **{RECORD_KEY: record_key})
                                     for _ in range(2)))
    clients = [ids.on(node)[0] for node in range(3)]
    for client in clients:
        ws = await terminals.open(client, meta=f"meta-{client}")
        await ws.close()
    for client in clients:
        await recorded(cluster, record_key, client, 2)
    await asyncio.sleep(1.5)  # a second copy of an event would be handled by now (workers block 1 s)
    for node, client in enumerate(clients):
        got = records_of(cluster, record_key, client)
        meta, server = f"meta-{client}", cluster.servers[node]
        assert kinds(got) == [("offline", meta, server), ("online", meta, server)]
        assert {entry["pid"] for entry in got} <= {worker.pid for worker in workers}


async def test_an_event_without_a_running_worker_is_handled_when_one_starts(cluster, ids, terminals, record_key):
    [client] = ids.on(1)
    ws = await terminals.open(client, meta="early")
    await ws.close()

    async def offline_event_written() -> bool:
        return await online([client]) == {client: False}

    await eventually(offline_event_written, FRAME_TIMEOUT)
    worker = await asyncio.to_thread(cluster.start_worker, **{RECORD_KEY: record_key})
    got = await recorded(cluster, record_key, client, 2)
    assert kinds(got) == [("offline", "early", cluster.servers[1]), ("online", "early", cluster.servers[1])]
    assert {entry["pid"] for entry in got} == {worker.pid}


async def test_the_event_of_a_crashed_worker_is_claimed_by_another(cluster, terminals, record_key, tmp_path):
    marker = tmp_path / "crashed"
    env = {RECORD_KEY: record_key, CRASH_MARKER: str(marker)}
    server = rendezvous(CRASH_CLIENT, cluster.servers)
    crashing = await asyncio.to_thread(cluster.start_worker, "--claim-idle", "1", **env)  # its share: a second
    ws = await terminals.open(CRASH_CLIENT, meta="crash")

    async def crashed() -> bool:
        return crashing.process.poll() is not None

    await eventually(crashed, EVENT_TIMEOUT, step=0.1)
    assert crashing.process.returncode == 1 and marker.exists()  # died in the receiver, before the ack
    assert records_of(cluster, record_key, CRASH_CLIENT) == []
    claiming = await asyncio.to_thread(cluster.start_worker, "--claim-idle", "1", **env)
    online_entry = {"kind": "online", "client_id": CRASH_CLIENT, "meta": "crash", "server": server,
                    "pid": claiming.pid}
    assert await recorded(cluster, record_key, CRASH_CLIENT, 1) == [online_entry]
    await ws.close()
    assert await recorded(cluster, record_key, CRASH_CLIENT, 2) == [online_entry, {**online_entry, "kind": "offline"}]


# --- attacks ----------------------------------------------------------------------------------------------------


async def test_a_chan_named_like_another_chans_key_breaks_nothing(cluster, ids, terminals):
    """Chan names may contain ':'. Joining ``room:nodes`` once made every later join of (and post to)
    ``room`` fail with WRONGTYPE, and a member of ``room`` that then disconnected stayed online for good."""
    [squatter], [alice], [bob] = ids.on(0), ids.on(1), ids.on(2)
    await terminals.open(squatter)
    await im.ajoin_chan(squatter, "room:nodes", "room:members", "room:at")
    sockets = {c: await terminals.open(c) for c in (alice, bob)}
    for client in (alice, bob):
        await im.ajoin_chan(client, "room")
    await im.asend_chan_message(alice, "room", "still works")
    chan_frame = {"type": "chan", "id": ANY, "chan": "room", "from": alice, "data": "still works"}
    assert await frames_until_fence(sockets) == {alice: [chan_frame], bob: [chan_frame]}
    assert dict(await im.aget_chan_list()) == {"room": 2, "room:nodes": 1, "room:members": 1, "room:at": 1}
    await sockets[alice].close()

    async def alice_offline_and_out_of_room() -> bool:
        # The chan learns of her going one round trip after her own presence does (the client's keys first).
        return await online([alice, bob]) == {alice: False, bob: True} and await members("room") == {bob}

    await eventually(alice_offline_and_out_of_room, FRAME_TIMEOUT)


async def test_receipts_to_many_offline_receivers_stay_small_and_a_huge_fanout_is_refused(cluster, ids, terminals):
    """A 60 KB message to 1,000 offline receivers with receipts once wrote one 67 MB entry (each receipt
    echoed the payload) into the sender's node inbox. Now the send is refused before anything is written,
    and receipts name the message instead of carrying it."""
    [sender] = ids.on(0)
    sender_ws = await terminals.open(sender)
    absent = ids.any(1000)
    inbox = cluster.keys.node(cluster.servers[0], "inbox")
    before = cluster.inbox_length(0)
    with pytest.raises(FanoutTooLarge):
        await im.asend_message(sender, absent, {"pad": "x" * 60_000}, receipt=True)
    assert cluster.inbox_length(0) == before
    sent = await im.asend_message(sender, absent, {"pad": "x" * 4_000}, receipt=True)
    [(_id, entry)] = cluster.store.xrevrange(inbox, count=1)
    assert len(entry["p"]) < 250_000  # 1,000 receipts of about 170 bytes (frame, position), not 1,000 x 4 KB
    receipts = [await next_frame(sender_ws) for _ in absent]
    assert {(r["id"], r["status"]) for r in receipts} == {(sent, "offline")} and "data" not in receipts[0]
    assert {r["to"] for r in receipts} == set(absent)


# --- operations commands ----------------------------------------------------------------------------------------


def manage(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py <args>`` run from a shell beside the cluster, as a business process."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=cluster.env(), capture_output=True,
                          text=True, timeout=60)


async def command(*args: str) -> str:
    """What a command run in this process (the business side) printed."""
    out = io.StringIO()
    await asyncio.to_thread(call_command, *args, stdout=out)
    return out.getvalue()


async def test_freeim_status_from_a_shell_shows_every_node_its_sockets_and_the_events_backlog(cluster, ids, terminals):
    [alice], [bob] = ids.on(0), ids.on(1)
    await terminals.open(alice)
    await terminals.open(alice)
    await terminals.open(bob)
    await im.ajoin_chan(bob, "room")
    await asyncio.to_thread(cluster.start_worker)

    async def worker_caught_up() -> bool:
        done = await asyncio.to_thread(manage, cluster, "freeim_status", "--json")
        assert done.returncode == 0, done.stderr
        worker_caught_up.report = json.loads(done.stdout)  # type: ignore[attr-defined]
        return worker_caught_up.report["events"]["groups"] == [  # type: ignore[attr-defined]
            {"name": "freeim", "consumers": 1, "pending": 0, "lag": 0}]

    await eventually(worker_caught_up, EVENT_TIMEOUT)
    report = worker_caught_up.report  # type: ignore[attr-defined]
    assert all(0 <= node.pop("heartbeat_age") < HEARTBEAT_TTL / 2 for node in report["nodes"])
    for node in report["nodes"]:
        assert node.pop("loop_lag_ms") >= 0 and 0 <= time.time() - node.pop("started") < 600
    ready = {"state": "alive", "ready": True, "reasons": [], "draining": False, "version": freeim.__version__}
    assert report["nodes"] == sorted([  # by name
        {"name": cluster.servers[0], **ready, "connections": 2, "clients": 1},
        {"name": cluster.servers[1], **ready, "connections": 1, "clients": 1},
        {"name": cluster.servers[2], **ready, "connections": 0, "clients": 0}], key=lambda node: node["name"])
    assert report["online_clients"] == 2 and report["connections"] == 3 and report["chan_count"] == 1
    assert report["events"]["length"] == 2  # alice and bob came online


async def test_a_killed_node_shows_its_missed_beats_until_it_is_reaped(cluster, ids, terminals):
    await terminals.open(ids.on(2)[0])
    cluster.kill(2)

    async def nodes() -> dict[str, dict[str, Any]]:
        return {node.pop("name"): node for node in json.loads(await command("freeim_status", "--json"))["nodes"]}

    async def missing_beats() -> bool:  # late, then dead: the dead state lasts until a peer's next upkeep, at most
        found = await nodes()  # a fifth of the TTL, too short to poll for
        return found[cluster.servers[2]]["state"] in ("late", "dead") and found[cluster.servers[2]]["clients"] == 1

    async def reaped() -> bool:
        return sorted(await nodes()) == sorted(cluster.servers[:2])

    await eventually(missing_beats, HEARTBEAT_TTL * 3)
    await eventually(reaped, HEARTBEAT_TTL * 3)


async def test_freeim_send_broadcast_and_offline_reach_real_sockets(cluster, ids, terminals):
    [alice], [bob], servers = ids.on(0), ids.on(2), cluster.servers
    alice_ws, bob_ws = await terminals.open(alice), await terminals.open(bob)
    printed = await command("freeim_send", "ops", alice, bob, ids.any(1)[0], "--data", '{"text": "hello"}')
    [message_id] = re.fullmatch(r"sent message ([0-9a-f]{16}); 2 of its 3 receiver\(s\) online\n", printed).groups()
    for ws in (alice_ws, bob_ws):
        assert unpositioned(await next_frame(ws)) == {"type": "message", "id": message_id, "from": "ops",
                                                      "data": {"text": "hello"}}
    await command("freeim_broadcast", "--data", '"maintenance at 22:00"')
    for ws in (alice_ws, bob_ws):
        assert await next_frame(ws) == {"type": "broadcast", "data": "maintenance at 22:00"}
    assert await command("freeim_offline", bob) == f"client {bob}: closing 1 socket(s) on {servers[2]}\n"
    with pytest.raises(ConnectionClosed) as closed:
        await next_frame(bob_ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


async def test_a_bad_command_from_a_shell_says_why_in_one_line(cluster):
    done = await asyncio.to_thread(manage, cluster, "freeim_send", "ops", "x" * 200, "--data", "1")
    assert (done.returncode, done.stderr.splitlines()) == (1, [
        "CommandError: Client ids are ints or non-empty strings of printable characters, at most 128 characters "
        "long (an int's sign counts)."])
    done = await asyncio.to_thread(manage, cluster, "freeim_broadcast", "--data", "not json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("manage.py freeim_broadcast: error: argument --data: not JSON: ")
