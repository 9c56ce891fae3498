"""The node runtime: one per server process, on the server's event loop.

It holds this process's connections (:class:`~freeim.registry.Registry`),
receives payloads for its node name from the backend's transport, and writes
their frames to its sockets. What each payload asks of it: :mod:`freeim.payloads`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels.db import database_sync_to_async

from . import autojoin, operations, probe, protocol
from .backends import Backend
from .chansync import ChanSync
from .conf import conf
from .connection import Connection, Frame
from .events import LocalEvents
from .exceptions import StoreUnavailable
from .heap import HeapKeeper
from .ids import ClientId
from .payloads import Payload, Receipt
from .protocol import CloseCode
from .registry import Registry
from .storegate import StoreGate

logger = logging.getLogger(__name__)
YIELD_EVERY = 100
#: Handshakes registering in the store at once. In a storm of connects the rest wait their
#: turn instead of all crawling through a starved loop and a full connection pool together...
HANDSHAKE_CONCURRENCY = 64
#: ...but not for long: a terminal refused quickly backs off, while one left waiting gives up
#: and retries on a new socket, leaving the old handshake to be done for nothing.
HANDSHAKE_WAIT = 3.0


class Node:
    """This process's node: its connections, its inbox and the loop that delivers."""

    def __init__(self, name: str, backend: Backend, backlog_limit: int) -> None:
        self.name = name
        self.backend = backend
        self.backlog_limit = backlog_limit
        self.registry = Registry()
        self.loop = asyncio.get_running_loop()
        self.boot = uuid.uuid4().hex
        self.events = LocalEvents() if backend.events is None else None
        self._inbox: asyncio.Queue[list[Payload]] = asyncio.Queue()
        self._dirty: dict[Connection, None] = {}
        self._to_close: list[tuple[Connection, int]] = []
        self._receipts: list[tuple[ClientId, str]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._unreleased: list[tuple[ClientId, str, str]] = []  # (client, connection id, meta)
        self._connection_numbers = itertools.count()
        self.handshakes = asyncio.Semaphore(HANDSHAKE_CONCURRENCY)
        self.heap = HeapKeeper()
        self._store = StoreGate()
        self.chan_sync = ChanSync(backend, lambda: self.registry, self._tell_left)
        self.stopping = False

    async def start(self) -> None:
        """Clean what a previous process of this name left, register, and start receiving."""
        if self.events is not None:
            self.events.start()
        for client_id in await self.backend.nodes.drop_node(self.name, True):
            self._emit("offline", client_id, "")
        # Read from before the registration: a sender finds this node from it on.
        after = await self.backend.transport.inbox_tail(self.name)
        await self.backend.nodes.register_node(self.name, self.boot)
        self._tasks = [
            asyncio.create_task(self.backend.transport.receive(self.name, self._inbox.put_nowait, after),
                                name="freeim-receive"),
            asyncio.create_task(self._deliver_forever(), name="freeim-deliver"),
            asyncio.create_task(self.chan_sync.run(), name="freeim-chan-sync"),
        ]
        if self.backend.heartbeat_ttl:
            ttl = self.backend.heartbeat_ttl
            self._tasks += [asyncio.create_task(self._keep_alive(ttl), name="freeim-beat"),
                            asyncio.create_task(self._tend(ttl), name="freeim-upkeep")]
        if conf.GC_FREEZE:
            self._tasks.append(asyncio.create_task(self.heap.run(self.client_count), name="freeim-heap"))
        if path := probe.probe_path():
            self._tasks.append(asyncio.create_task(probe.run_probe(path, self.name, self.client_count),
                                                   name="freeim-probe"))
        logger.info("freeim node %s started", self.name)

    async def stop(self) -> None:
        """Remove this node's presence in bulk (servers cancel consumers without disconnect)."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        metas = {c.client_id: c.meta for c in self.registry.connections()}
        for client_id in await self.backend.nodes.drop_node(self.name, True):
            self._emit("offline", client_id, metas.get(client_id, ""))
        self.registry = Registry()
        if self.events is not None:
            await self.events.drain(timeout=5)
        logger.info("freeim node %s stopped", self.name)

    def client_count(self) -> int:
        """How many clients have a connection here."""
        return len(self.registry.clients)

    async def attach(self, connection: Connection) -> None:
        """Register a connection here and in the store (before its handshake completes).

        Its client's chans are in the local index before the socket opens: the
        auto-join chans (:mod:`freeim.autojoin`) when it just came online, else
        the chans it joined from another node, when this is its first connection here.
        """
        client_id = connection.client_id
        connection.on_resume = self._wake
        connection.id = f"{self.boot[:16]}{next(self._connection_numbers):x}"
        async with self._store.shared():
            new_here = client_id not in self.registry.clients
            self.registry.add(connection)
            self.heap.attached()
            try:
                came_online = await self._register(connection)
            except BaseException:  # not in the store: nothing to release there
                self.registry.remove(connection)
                raise
            if came_online and autojoin.has_providers():
                chans = await database_sync_to_async(autojoin.chans_for)(client_id)
                if len(chans) > conf.MAX_CHANS_PER_CLIENT:
                    logger.warning("freeim node %s: client %r would auto-join %d chans; it joins the first %d "
                                   "(MAX_CHANS_PER_CLIENT)", self.name, client_id, len(chans),
                                   conf.MAX_CHANS_PER_CLIENT)
                    chans = chans[:conf.MAX_CHANS_PER_CLIENT]
                if chans:
                    self.registry.join(client_id, chans)
                    # Through the helper, so a device of the client that reached another node
                    # meanwhile (and found no chans yet) is told too.
                    await operations.join_chan(self.backend, client_id, *chans)
            elif new_here and not came_online:
                self.registry.join(client_id, await self.backend.store.client_chans(client_id))

    async def _register(self, connection: Connection) -> bool:
        """Add ``connection`` in the store; True if its client came online with it."""
        if await self.backend.store.add_connection(self.name, connection.client_id, connection.id,
                                                 connection.meta):
            self._emit("online", connection.client_id, connection.meta)
            return True
        return False

    async def admit_handshake(self) -> bool:
        """Take a handshake slot (release ``self.handshakes`` after); False if none freed up in time."""
        try:
            await asyncio.wait_for(self.handshakes.acquire(), HANDSHAKE_WAIT)
        except TimeoutError:
            return False
        return True

    def refused(self) -> None:
        """A handshake was refused: what it leaves in reference cycles counts towards a full collection."""
        self.heap.detached()

    def activate(self, connection: Connection) -> None:
        """The handshake completed: write what was sent to ``connection`` meanwhile."""
        connection.accepted = True
        if connection.has_pending:
            self._wake(connection)

    async def detach(self, connection: Connection) -> None:
        """Forget a closed connection; the client goes offline with its last one."""
        connection.closed = True
        self._dirty.pop(connection, None)
        if connection not in self.registry.clients.get(connection.client_id, ()):
            return
        chans = tuple(self.registry.chans_of(connection.client_id))  # the store's, most likely
        self.registry.remove(connection)
        self.heap.detached()
        try:
            async with self._store.shared():
                await self._release(connection.client_id, connection.id, connection.meta, chans)
        except StoreUnavailable as error:
            # Never leave a client online in the store for a socket that is gone: retry with the heartbeat.
            logger.warning("freeim node %s: %s; will release client %r later", self.name, error, connection.client_id)
            self._unreleased.append((connection.client_id, connection.id, connection.meta))

    async def _release(self, client_id: ClientId, conn: str, meta: str, chans: tuple[str, ...] = ()) -> None:
        if await self.backend.store.remove_connection(self.name, client_id, conn, meta, chans):
            self._emit("offline", client_id, meta)

    async def _keep_alive(self, ttl: float) -> None:
        """Heartbeat every ``ttl / 5`` seconds, and rebuild a lost registration.

        Nothing else runs in this task: a long reap or a backlog of releases must never
        hold up the beat, or the node would lose its registration while alive.
        """
        while True:
            await asyncio.sleep(ttl / 5)
            await self._guarded("heartbeat", self._beat)

    async def _beat(self) -> None:
        if not await self.backend.nodes.heartbeat(self.name, self.boot):
            await self._register_again()

    async def _tend(self, ttl: float) -> None:
        """Every ``ttl / 5`` seconds: release what a store outage left, trim this node's inbox, and reap
        dead peers."""
        while True:
            await asyncio.sleep(ttl / 5)
            await self._guarded("upkeep", self._release_and_reap)

    async def _release_and_reap(self) -> None:
        while self._unreleased:
            async with self._store.shared():
                if self._unreleased:  # a rebuild may have emptied it meanwhile
                    await self._release(*self._unreleased[0])
                    self._unreleased.pop(0)
        await self.backend.transport.trim_inbox(self.name)
        dead = await self.backend.nodes.reap(self.name)
        if dead:
            logger.warning("freeim node %s cleaned up after dead nodes %s", self.name, dead)

    async def _guarded(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except StoreUnavailable as error:
            logger.warning("freeim node %s: %s; retrying", self.name, error)
        except Exception:
            logger.exception("freeim node %s: %s failed", self.name, what)

    async def _register_again(self) -> None:
        """Write this node's live connections and chans back (after a Redis restart, or being reaped).

        The node's own registration comes last: if a step fails, the next heartbeat still
        finds it missing and starts over.
        """
        async with self._store.exclusive():
            logger.warning("freeim node %s lost its registration; registering %d clients again",
                           self.name, len(self.registry.clients))
            await self.backend.nodes.drop_node(self.name, True)
            self._unreleased.clear()  # dropping the node released them all
            for connection in list(self.registry.connections()):
                await self._register(connection)
            for client_id, chans in self.registry.chans_by_client():
                await self.backend.store.join(client_id, chans)
            await self.backend.nodes.register_node(self.name, self.boot)

    def _emit(self, kind: str, client_id: ClientId, meta: str) -> None:
        if self.events is not None:
            self.events.put(kind, client_id, meta, self.name)

    def _tell_left(self, client_id: ClientId, chan: str) -> None:
        """Tell ``client_id``'s sockets here that it is no longer in ``chan``."""
        self._write([client_id], Frame(protocol.left_frame(chan)))
        self._inbox.put_nowait([])  # flushed by the delivery loop, also when this comes from elsewhere

    def _wake(self, connection: Connection) -> None:
        self._dirty[connection] = None
        self._inbox.put_nowait([])

    async def _deliver_forever(self) -> None:
        while True:
            batches = [await self._inbox.get()]
            while not self._inbox.empty():
                batches.append(self._inbox.get_nowait())
            for payload in (p for batch in batches for p in batch):
                try:
                    self._apply(payload)
                except Exception:  # one bad payload must not stop delivery
                    logger.exception("freeim node %s: bad payload %.200r", self.name, payload)
            try:
                await self._flush()
            except Exception:
                logger.exception("freeim node %s: flush failed", self.name)

    def _apply(self, payload: Payload) -> None:
        if payload["op"] == "send":
            self._send(payload["to"], Frame(payload["frame"]), payload.get("receipt"))
        elif payload["op"] == "chan":
            self._write(self.registry.chan_members(payload["chan"]), Frame(payload["frame"]))
        elif payload["op"] == "broadcast":
            self._write_all(Frame(payload["frame"]))
        elif payload["op"] == "join":
            self.registry.join(payload["client"], payload["chans"])
            self.chan_sync.stale([payload["client"]])
        elif payload["op"] == "leave":
            for chan in self.registry.leave(payload["client"], payload["chans"]):
                self._tell_left(payload["client"], chan)
            self.chan_sync.stale([payload["client"]])
        elif payload["op"] == "clear":
            members = self.registry.clear(payload["chan"])
            self._write(members, Frame(protocol.left_frame(payload["chan"])))
            self.chan_sync.stale(members)
        elif payload["op"] == "offline":
            for connection in self.registry.clients.get(payload["client"], ()):
                self._to_close.append((connection, CloseCode.FORCED_OFFLINE))
        else:
            raise ValueError(f"unknown op {payload['op']!r}")

    def _send(self, to: list[ClientId], frame: Frame, receipt: Receipt | None) -> None:
        self._write(to, frame)
        if receipt:
            for client_id in to:
                status = protocol.RECEIPT_DELIVERED if client_id in self.registry.clients else protocol.RECEIPT_OFFLINE
                self._receipts.append((receipt["sender"], protocol.receipt_frame(receipt["id"], client_id, status)))

    def _write(self, client_ids: Any, frame: Frame) -> None:
        clients = self.registry.clients
        for client_id in client_ids:
            self._enqueue(clients.get(client_id) or (), frame)

    def _write_all(self, frame: Frame) -> None:
        for connections in self.registry.clients.values():
            self._enqueue(connections, frame)

    def _enqueue(self, connections: Sequence[Connection], frame: Frame) -> None:
        for connection in connections:
            if connection.enqueue(frame, self.backlog_limit):
                self._dirty[connection] = None
            else:
                self._to_close.append((connection, CloseCode.SLOW_CONSUMER))

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for index, connection in enumerate(dirty):
            if not connection.write_pending():
                await connection.send_pending()
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        to_close, self._to_close = self._to_close, []
        for connection, code in to_close:
            await connection.close(code)
        receipts, self._receipts = self._receipts, []
        by_sender: dict[ClientId, list[str]] = {}
        for sender, frame in receipts:
            by_sender.setdefault(sender, []).append(frame)
        for sender, frames in by_sender.items():
            await operations.send_frames(self.backend, sender, frames)
