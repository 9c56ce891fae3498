"""Keeps a node's local chan index true to the store when chan changes cross on their way.

``join_chan``, ``leave_chan`` and ``clear_chan_client`` change the store, then tell the client's
nodes. Two callers changing one client's chans can have their store changes land in one order
and their notices in the other: the node would then hold the client in a chan the store says it
left (and deliver the chan's messages to it), or out of one it joined. The node applies each
notice at once (a send right after a join must reach the new member), and marks its client
stale; this re-reads the chans of stale clients from the store, a batch at a time, and corrects
the index: a notice comes after its store change, so a read after the notice sees that change
or a later one, and the last read wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from ..backends import Backend
from ..exceptions import StoreUnavailable
from ..ids import ClientId
from .registry import Registry

logger = logging.getLogger("freeim.node")
#: Seconds before reading again after the store failed.
RETRY_AFTER = 1.0


class ChanSync:
    """Re-reads the chans of the clients whose chans changed, and puts the local index right."""

    def __init__(self, backend: Backend, registry: Registry, tell_left: Callable[[ClientId, str], None]) -> None:
        self.backend = backend
        self.registry = registry
        self.tell_left = tell_left
        self._stale: set[ClientId] = set()
        self._wanted = asyncio.Event()

    def stale(self, clients: Iterable[ClientId]) -> None:
        """The chans of ``clients`` changed: read them again soon."""
        self._stale.update(clients)
        if self._stale:
            self._wanted.set()

    async def run(self) -> None:
        """Until cancelled: read the stale clients' chans and correct the index."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            clients = [client for client in self._stale if client in self.registry.clients]
            self._stale.clear()
            if not clients:
                continue
            try:
                self._correct(await self.backend.store.clients_chans(clients))
            except StoreUnavailable as error:
                logger.warning("freeim: could not read the chans of %d clients (%s); retrying", len(clients), error)
                await asyncio.sleep(RETRY_AFTER)
                self.stale(clients)

    def _correct(self, truth: dict[ClientId, list[str]]) -> None:
        registry = self.registry
        for client, chans in truth.items():
            if client not in registry.clients:
                continue  # gone meanwhile: its chans went with its last connection here
            wanted, held = set(chans), registry.chans_of(client)
            for chan in registry.leave(client, sorted(held - wanted)):
                self.tell_left(client, chan)
            registry.join(client, sorted(wanted - held))
