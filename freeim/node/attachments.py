"""A node's connections in the store's presence: attach, detach, release later, rebuild.

The store (:class:`~freeim.backends.contract.Presence`) keeps who is connected where, for every
process; this keeps the node's share of it true: a connection is added before its handshake
completes and removed when it closes, one that could not be removed (the store was down) is
retried with the upkeep, and a node that lost its registration writes all of its own back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from channels.db import database_sync_to_async

from .. import autojoin
from ..backends import Backend
from ..backends.contract import InboxRead
from ..conf import conf
from ..exceptions import StoreUnavailable, TooManyChans
from ..ids import ClientId
from ..messaging import operations
from .connection import Connection
from .delivery import Delivery
from .heap import HeapKeeper
from .registry import Registry
from .storegate import StoreGate

logger = logging.getLogger("freeim.node")
#: Sends an online or offline event: ``(kind, client id, meta)``.
Emit = Callable[[str, ClientId, str], None]


class Attachments:
    """Adds this node's connections to the store and takes them off, so presence stays exact."""

    def __init__(self, node: str, boot: str, backend: Backend, registry: Registry, delivery: Delivery,
                 heap: HeapKeeper, emit: Emit) -> None:
        self.node = node
        self.boot = boot
        self.backend = backend
        self.registry = registry
        self.delivery = delivery
        self.heap = heap
        self.emit = emit
        self._numbers = itertools.count()
        self._gate = StoreGate()
        self._unreleased: list[tuple[ClientId, str, str]] = []  # (client, connection id, meta)
        #: The node drains: a closed connection stays in the store's presence until its client is back elsewhere
        #: (:meth:`freeim.node.runtime.Node.drain`).
        self.parking = False

    async def attach(self, connection: Connection) -> None:
        """Register a connection here and in the store (before its handshake completes).

        Its client's chans are in the local index before the socket opens: the
        auto-join chans (:mod:`freeim.autojoin`) when it just came online, else
        the chans it joined from another node, when this is its first connection here.
        """
        client_id = connection.client_id
        connection.on_resume = self.delivery.wake
        connection.id = f"{self.boot[:16]}{next(self._numbers):x}"
        connection.node = self.node
        if connection.since is not None or connection.chans_since:
            connection.hold()  # what arrives while its inbox and chans are read comes after what it missed
        async with self._gate.shared():
            new_here = client_id not in self.registry.clients
            self.registry.add(connection)
            self.heap.attached()
            try:
                came_online = await self._register(connection)
            except BaseException:
                # The store may have it all the same: its step was sent before this was cut short (a handshake
                # cancelled as its terminal gave up, a reply that came too late). Taken off with the upkeep, as
                # after an outage; taking off what the store never had changes nothing.
                self.registry.remove(connection)
                self._release_later(connection)
                raise
            if came_online and autojoin.has_providers():
                await self._join(client_id, await database_sync_to_async(autojoin.chans_for)(client_id), "auto-join")
            elif new_here and not came_online:
                self.registry.join(client_id, await self.backend.store.client_chans(client_id))
            if connection.join:
                await self._join_own(client_id, connection.join)
            if connection.since is not None or connection.chans_since:
                self.delivery.catch_up(connection, await self._missed(connection))

    async def _join_own(self, client_id: ClientId, chans: list[str]) -> None:
        """Join the terminal's own chans, never one the server manages (whose members the providers name).

        ``connect/`` left out the managed ones when it issued the token, but a chan may have become
        managed since (a group created or renamed with its name, up to ``TOKEN_TTL`` ago), and that
        group's take-over ran before this join, so it cannot evict it. So they are tested here again
        before the join, and after it as :class:`freeim.rest.views.ChanJoinView` does: a chan that
        became managed in between is left again, unless the providers put the client in it.
        """
        mine = self.registry.chans_of(client_id)
        chans = [chan for chan in chans if chan not in mine]
        if not chans or not autojoin.has_managers():
            await self._join(client_id, chans, "join")
            return
        managed = await self._managed(client_id, chans)
        chans = [chan for chan in chans if chan not in managed]
        await self._join(client_id, chans, "join")
        managed = await self._managed(client_id, chans) if chans else set()
        if managed:
            allowed = set(await database_sync_to_async(autojoin.chans_for)(client_id))
            if squatted := [chan for chan in chans if chan in managed and chan not in allowed]:
                self.registry.leave(client_id, squatted)
                await operations.leave_chan(self.backend, client_id, *squatted)

    async def _managed(self, client_id: ClientId, chans: list[str]) -> set[str]:
        """The managed ones among ``chans``; all of them if the tests fail (the database is down): a chan
        that may be a group's is not joined on a guess."""
        try:
            managed: set[str] = await database_sync_to_async(autojoin.managed_among)(chans)
        except Exception:
            logger.exception("freeim node %s: could not tell which chans client %r may join; it joins none of %s",
                             self.node, client_id, chans)
            return set(chans)
        return managed

    async def _join(self, client_id: ClientId, chans: list[str], why: str) -> None:
        """Join ``client_id`` to ``chans`` as its socket opens: the providers' chans (``auto-join``) or the
        terminal's own (``join``), as many as ``MAX_CHANS_PER_CLIENT`` leaves room for."""
        room = conf.MAX_CHANS_PER_CLIENT - len(self.registry.chans_of(client_id))
        if len(chans) > room:
            logger.warning("freeim node %s: client %r would %s %d chans; it joins the first %d "
                           "(MAX_CHANS_PER_CLIENT)", self.node, client_id, why, len(chans), max(room, 0))
            chans = chans[:max(room, 0)]
        if not chans:
            return
        self.registry.join(client_id, chans)
        try:
            # Through the helper, so a device of the client that reached another node
            # meanwhile (and found no chans yet) is told too.
            await operations.join_chan(self.backend, client_id, *chans)
        except TooManyChans:  # another device joined chans meanwhile: the store refused them all
            self.registry.leave(client_id, chans)
            logger.warning("freeim node %s: client %r could not %s %d chans: MAX_CHANS_PER_CLIENT", self.node,
                           client_id, why, len(chans))

    async def _missed(self, connection: Connection) -> dict[str, tuple[InboxRead, str]]:
        """What the streams the terminal resumes kept after its positions: its inbox (``""``), and each chan it
        gave a position for that its client is in; the inbox and the chans read side by side."""
        store, since, mine = self.backend.store, connection.since, self.registry.chans_of(connection.client_id)
        chans = {chan: at for chan, at in (connection.chans_since or {}).items() if chan in mine}

        async def in_inbox() -> dict[str, tuple[InboxRead, str]]:
            return {"": (await store.read_inbox(connection.client_id, since), since)} if since is not None else {}

        async def in_chans() -> dict[str, tuple[InboxRead, str]]:
            return {chan: (read, chans[chan]) for chan, read in (await store.read_chans(chans)).items()}

        inbox, chan_streams = await asyncio.gather(in_inbox(), in_chans())
        return {**inbox, **chan_streams}

    async def _register(self, connection: Connection) -> bool:
        """Add ``connection`` in the store; True if its client came online with it."""
        if await self.backend.store.add_connection(self.node, connection.client_id, connection.id, connection.meta):
            self.emit("online", connection.client_id, connection.meta)
            return True
        return False

    async def detach(self, connection: Connection) -> None:
        """Forget a closed connection; the client goes offline with its last one (unless the node drains)."""
        connection.closed = True
        self.delivery.forget(connection)
        if connection not in self.registry.clients.get(connection.client_id, ()):
            return
        self.registry.remove(connection)
        self.heap.detached()
        if self.parking:
            self.registry.parked.setdefault(connection.client_id, []).append((connection.id, connection.meta))
            return
        try:
            async with self._gate.shared():
                await self._release(connection.client_id, connection.id, connection.meta)
        except StoreUnavailable as error:
            # Never leave a client online in the store for a socket that is gone: retry with the upkeep.
            logger.warning("freeim node %s: %s; will release client %r later", self.node, error, connection.client_id)
            self._release_later(connection)
        except BaseException:  # cut short (the consumer's task cancelled): the upkeep takes it off all the same
            self._release_later(connection)
            raise

    def _release_later(self, connection: Connection) -> None:
        """Have the upkeep take ``connection`` off the store (:meth:`release_pending`)."""
        self._unreleased.append((connection.client_id, connection.id, connection.meta))

    async def _release(self, client_id: ClientId, conn: str, meta: str) -> None:
        if await self.backend.store.remove_connection(self.node, client_id, conn, meta):
            self.emit("offline", client_id, meta)

    async def release_forced(self) -> None:
        """Take the parked clients forced offline off the store: they go offline now, not when the drain ends.
        Their terminals, told to move before the force, are not told of it: as after any lost socket, they may
        connect again (``force_offline`` closes sockets; refusing a user is the connect endpoint's to do)."""
        while self.registry.forced:
            client_id = self.registry.forced.pop()
            for conn, meta in self.registry.parked.pop(client_id, []):
                async with self._gate.shared():
                    await self._release(client_id, conn, meta)

    async def release_pending(self) -> None:
        """Take off the store what a store outage left there (connections closed meanwhile)."""
        while self._unreleased:
            async with self._gate.shared():
                if self._unreleased:  # a rebuild may have emptied it meanwhile
                    await self._release(*self._unreleased[0])
                    self._unreleased.pop(0)

    async def register_again(self) -> None:
        """Write this node's live connections and chans back (after a Redis restart or failover, or being reaped).

        What the store holds of the node's and is not live here goes; its live connections stay, so a
        store that lost only some writes (a failover) makes no client flap offline. Attaches and detaches
        wait meanwhile (:mod:`.storegate`). The node's own registration comes last: if a step fails, the
        next heartbeat still finds it missing and starts over.
        """
        async with self._gate.exclusive():
            logger.warning("freeim node %s lost its registration (or the store lost writes); registering %d clients "
                           "again", self.node, len(self.registry.clients))
            live = [connection.id for connection in self.registry.connections()]
            await self.backend.nodes.drop_node(self.node, True, keep=live)
            self._unreleased.clear()  # dropping the node released them all
            for connection in list(self.registry.connections()):
                await self._register(connection)
            for client_id, chans in self.registry.chans_by_client():
                await self.backend.store.join(client_id, chans)
            await self.backend.nodes.register_node(self.node, self.boot)
