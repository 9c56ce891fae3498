"""A node's local index: which connections each client has here, and who is in which chan here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..ids import ClientId
from .connection import Connection


class Registry:
    """Client id -> live connections on this node, and chan -> local members."""

    def __init__(self) -> None:
        self.clients: dict[ClientId, list[Connection]] = {}
        #: Connections held, of all clients.
        self.connection_count = 0
        #: What a drain closed, by client: ``(connection id, meta)`` of connections the store keeps until their
        #: client is back on another node (:meth:`freeim.node.runtime.Node.drain`).
        self.parked: dict[ClientId, list[tuple[str, str]]] = {}
        #: Parked clients forced offline meanwhile: taken off the store at once, not kept for their return.
        self.forced: set[ClientId] = set()
        self._chans: dict[str, set[ClientId]] = {}
        self._client_chans: dict[ClientId, set[str]] = {}

    def forget_all(self) -> None:
        """Drop every connection and chan (the node stopped)."""
        self.clients.clear()
        self.connection_count = 0
        self.parked.clear()
        self.forced.clear()
        self._chans.clear()
        self._client_chans.clear()

    def add(self, connection: Connection) -> None:
        self.clients.setdefault(connection.client_id, []).append(connection)
        self.connection_count += 1

    def remove(self, connection: Connection) -> bool:
        """Forget ``connection``; True if it was its client's last one here (chans are left)."""
        connections = self.clients.get(connection.client_id)
        if connections is None or connection not in connections:
            return False
        connections.remove(connection)
        self.connection_count -= 1
        if connections:
            return False
        del self.clients[connection.client_id]
        self.leave(connection.client_id, list(self._client_chans.get(connection.client_id, ())))
        return True

    def join(self, client_id: ClientId, chans: Iterable[str]) -> None:
        if client_id in self.clients:
            for chan in chans:
                self._chans.setdefault(chan, set()).add(client_id)
                self._client_chans.setdefault(client_id, set()).add(chan)

    def leave(self, client_id: ClientId, chans: Iterable[str]) -> list[str]:
        """Take ``client_id`` out of ``chans``; return the ones it was in."""
        mine = self._client_chans.get(client_id, set())
        left = [chan for chan in chans if chan in mine]
        for chan in left:
            mine.discard(chan)
            members = self._chans.get(chan)
            if members is not None:
                members.discard(client_id)
                if not members:
                    del self._chans[chan]
        if not mine:
            self._client_chans.pop(client_id, None)
        return left

    def clear(self, chan: str) -> list[ClientId]:
        """Empty ``chan``; return who was in it."""
        members = list(self._chans.get(chan, ()))
        for client_id in members:
            self.leave(client_id, [chan])
        return members

    def chans_by_client(self) -> list[tuple[ClientId, list[str]]]:
        """Every local client that is in a chan, with its chans."""
        return [(client_id, sorted(chans)) for client_id, chans in self._client_chans.items()]

    def chans_of(self, client_id: ClientId) -> set[str]:
        """The chans ``client_id`` is in here."""
        return set(self._client_chans.get(client_id, ()))

    def chan_members(self, chan: str) -> set[ClientId]:
        return self._chans.get(chan, set())

    def connections(self) -> Iterator[Connection]:
        for connections in self.clients.values():
            yield from connections
