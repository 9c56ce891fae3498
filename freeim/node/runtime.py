"""The node: one per server process, on the server's event loop.

It holds this process's connections (:mod:`.registry`), keeps them in the store's presence
(:mod:`.attachments`), receives payload batches for its name from the backend's transport and
writes their frames to its sockets (:mod:`.delivery`), and keeps itself registered: heartbeats (each
with its health report, :func:`.health.report`), upkeep, and the reaping of dead peers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..backends import Backend
from ..conf import conf
from ..exceptions import StoreUnavailable
from ..ids import ClientId
from ..logs import fields
from ..messaging.operations import LATE_AFTER
from ..protocol import CloseCode
from ..servers import daphne
from . import probe
from .attachments import Attachments
from .delivery import Delivery
from .health import LoopLag, report
from .heap import HeapKeeper
from .local_events import LocalEvents
from .registry import Registry

logger = logging.getLogger("freeim.node")
#: Handshakes registering in the store at once. In a storm of connects the rest wait their
#: turn instead of all crawling through a starved loop and a full connection pool together...
HANDSHAKE_CONCURRENCY = 64
#: ...but not for long: a terminal refused quickly backs off, while one left waiting gives up
#: and retries on a new socket, leaving the old handshake to be done for nothing.
HANDSHAKE_WAIT = 3.0
#: Seconds between two looks at which drained terminals came back on other nodes.
DRAIN_POLL = 0.25
#: Seconds between two health reports of a node that beats no heartbeat (the embedded one), for the admin's page.
REPORT_EVERY = 1.0


class Node:
    """This process's node: its connections, its inbox and the loops that deliver and keep it registered."""

    def __init__(self, name: str, backend: Backend, backlog_limit: int) -> None:
        self.name = name
        self.backend = backend
        self.backlog_limit = backlog_limit
        self.loop = asyncio.get_running_loop()
        self.boot = uuid.uuid4().hex
        self.started = time.time()
        self.registry = Registry()
        self.heap = HeapKeeper()
        self.events = LocalEvents() if backend.events is None else None
        self.delivery = Delivery(name, backend, self.registry, backlog_limit)
        self.attachments = Attachments(name, self.boot, backend, self.registry, self.delivery, self.heap, self._emit)
        self.handshakes = asyncio.Semaphore(HANDSHAKE_CONCURRENCY)
        self.stopping = False
        #: Told to stop (:meth:`drain`): it takes no new terminal and moves its own to other nodes...
        self.draining = False
        #: ...until they are back elsewhere, or its grace is over.
        self.drained = False
        self.lag = LoopLag()
        self._last_beat: float | None = None  # loop time of the last heartbeat that reached the store
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Clean what a previous process of this name left, register, and start receiving."""
        if self.events is not None:
            self.events.start()
        for client_id in await self.backend.nodes.drop_node(self.name, True):
            self._emit("offline", client_id, "")
        # Read from before the registration: a sender finds this node from it on.
        after = await self.backend.transport.inbox_tail(self.name)
        await self.backend.nodes.register_node(self.name, self.boot)
        self._last_beat = self.loop.time()
        await self.backend.nodes.publish_health(self.name, report(self))
        self._spawn(self.lag.run(), "loop-lag")
        self._spawn(self.backend.transport.receive(self.name, self.delivery.receive, after), "receive")
        self._spawn(self.delivery.run(), "deliver")
        self._spawn(self.delivery.chan_sync.run(), "chan-sync")
        ttl = self.backend.heartbeat_ttl
        # Each beat carries the node's health report; a node that needs no heartbeat still reports.
        self._spawn(self._every(ttl / 5 if ttl else REPORT_EVERY, "heartbeat", self._beat), "beat")
        if ttl:
            self._spawn(self._every(ttl / 5, "upkeep", self._upkeep), "upkeep")
        if conf.GC_FREEZE:
            self._spawn(self.heap.run(self.client_count), "heap")
        if path := probe.probe_path():
            self._spawn(probe.run_probe(path, self.name, self.client_count), "probe")
        logger.info("freeim node %s started: %s", self.name, daphne.write_path(), extra=fields("start", self.name))

    def _spawn(self, work: Awaitable[Any], what: str) -> None:
        self._tasks.append(asyncio.ensure_future(work))
        self._tasks[-1].set_name(f"freeim-{what}")

    async def drain(self, grace: float) -> None:
        """Move this node's terminals to other nodes before it stops (on SIGTERM: :mod:`freeim.servers.signals`).

        It refuses new handshakes and leaves connect/'s choice (the store marks it draining), writes what each
        socket still holds, and closes every socket with 4007: freeim.js reconnects at once, to another node.
        Their connections stay in the store's presence meanwhile, so a client back on another node within
        ``grace`` seconds never looked offline: no offline event, no online one. Each is taken off as its client
        shows up elsewhere; :meth:`stop` takes off the rest (those clients go offline then).
        """
        if self.draining or self.stopping:
            return
        if not await self._others_take_terminals():
            logger.info("freeim node %s: no other node takes terminals; it stops without draining", self.name,
                        extra=fields("drain", self.name, sockets=0))
            return
        # In one step with the snapshot: a socket accepted after it sees ``draining`` and closes itself (consumer).
        self.draining = self.attachments.parking = True
        accepted = [connection for connection in self.registry.connections() if connection.accepted]
        began, moving = self.loop.time(), len(accepted)
        logger.info("freeim node %s draining: moving %d sockets to other nodes within %s s", self.name, moving, grace,
                    extra=fields("drain", self.name, sockets=moving))
        try:
            await self.backend.nodes.set_draining(self.name, True)
            await self.backend.nodes.publish_health(self.name, report(self))  # now, not at the next beat
        except StoreUnavailable as error:  # handshakes are refused here anyway: their terminals try elsewhere
            logger.warning("freeim node %s: %s; connect/ may send terminals here while it drains", self.name, error)
        for connection in accepted:
            await connection.flush_and_close(CloseCode.NODE_DRAINING)
        kept = moving
        while kept and self.loop.time() - began < grace:
            await asyncio.sleep(DRAIN_POLL)
            if not await self._others_take_terminals():  # they drain too: a full shutdown
                break
            try:
                await self.attachments.release_forced()
                kept = await self.backend.nodes.release_moved(self.name)
            except StoreUnavailable as error:
                logger.warning("freeim node %s: %s; retrying", self.name, error)
        self.drained = True
        logger.info("freeim node %s drained in %.1f s: %d connections not back on another node", self.name,
                    self.loop.time() - began, kept, extra=fields("drained", self.name, sockets=kept))

    async def _others_take_terminals(self) -> bool:
        """Whether another node takes new terminals now, as connect/ sees them (no store: none can be told)."""
        try:
            accepting = await self.backend.nodes.alive_nodes(within=conf.HEARTBEAT_TTL * LATE_AFTER, accepting=True)
        except StoreUnavailable:
            return False
        return any(node != self.name for node in accepting)

    async def stop(self) -> None:
        """Remove this node's presence in bulk (servers cancel consumers without disconnect)."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        metas = {c.client_id: c.meta for c in self.registry.connections()}
        try:
            for client_id in await self.backend.nodes.drop_node(self.name, True):  # and its draining mark
                self._emit("offline", client_id, metas.get(client_id, ""))
        except StoreUnavailable as error:  # the server's shutdown goes on: a node cannot wait for its store
            logger.warning("freeim node %s: %s; its presence stays until its peers' reaper takes it off, or a node "
                           "of its name starts", self.name, error)
        self.registry.forget_all()
        if self.events is not None:
            await self.events.drain(timeout=5)
        cut_short = self.draining and not self.drained  # a second SIGTERM, or the server stopped on its own
        logger.info("freeim node %s stopped%s", self.name, " before its drain ended" if cut_short else "",
                    extra=fields("stop", self.name))

    def client_count(self) -> int:
        """How many clients have a connection here."""
        return len(self.registry.clients)

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

    async def _every(self, seconds: float, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` every ``seconds`` until cancelled; a failed run is logged, and the next one tries again.

        The heartbeat has a loop of its own: a long reap or a backlog of releases must never
        hold up the beat, or the node would lose its registration while alive.
        """
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except StoreUnavailable as error:
                logger.warning("freeim node %s: %s; retrying", self.name, error)
            except Exception:
                logger.exception("freeim node %s: %s failed", self.name, what)

    async def _beat(self) -> None:
        if not await self.backend.nodes.heartbeat(self.name, self.boot, report(self)):
            await self.attachments.register_again()
        self._last_beat = self.loop.time()

    def heartbeat_age(self) -> float | None:
        """Seconds since a heartbeat last reached the store (its registration at first); None where nodes need
        no heartbeat (one process) or before the registration."""
        if self.backend.heartbeat_ttl is None or self._last_beat is None:
            return None
        return self.loop.time() - self._last_beat

    async def _upkeep(self) -> None:
        """Release what a store outage left, trim this node's inbox, and reap dead peers."""
        await self.attachments.release_pending()
        await self.backend.transport.trim_inbox(self.name)
        dead = await self.backend.nodes.reap(self.name)
        if dead:
            logger.warning("freeim node %s cleaned up after dead nodes %s", self.name, dead)

    def _emit(self, kind: str, client_id: ClientId, meta: str) -> None:
        if self.events is not None:
            self.events.put(kind, client_id, meta, self.name)
