"""What a backend does: the store (tokens, presence, chans) and the transport to nodes.

Every operation is a method taking and returning plain data. Callers reach it
through :meth:`Backend.call` (blocking, for sync code: DRF views, commands) or
:meth:`Backend.acall` (awaitable, for nodes and async code), so each backend
decides how one operation runs on either side without the callers knowing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from ..ids import ClientId
from ..payloads import Payload


class Backend(abc.ABC):
    """Store + transport for one deployment."""

    #: True when online/offline events are dispatched in the node's own process.
    local_events: bool = True

    def call(self, name: str, *args: Any) -> Any:
        """Run operation ``name`` blocking the calling thread."""
        return getattr(self, name)(*args)

    async def acall(self, name: str, *args: Any) -> Any:
        """Run operation ``name`` without blocking the event loop."""
        return getattr(self, name)(*args)

    # Tokens
    @abc.abstractmethod
    def issue_token(self, token: str, record: dict[str, Any], ttl: int) -> None:
        """Store ``record`` under ``token`` for ``ttl`` seconds."""

    @abc.abstractmethod
    def redeem_token(self, token: str) -> dict[str, Any] | None:
        """Take the record of ``token`` and forget the token; None if unknown or expired."""

    # Nodes
    #: Seconds a node's registration lives without a heartbeat; None: nodes need no heartbeat.
    heartbeat_ttl: float | None = None

    @abc.abstractmethod
    def register_node(self, node: str, boot: str) -> None:
        """Mark ``node`` (the process with boot id ``boot``) alive: it receives payloads from now on."""

    def heartbeat(self, node: str, boot: str) -> bool:
        """Keep ``node`` registered; False when its registration was lost and must be rebuilt."""
        return True

    def trim_inbox(self, node: str) -> None:
        """Drop what ``node``'s inbox keeps past its age, when nothing new arrives to trim it."""
        return None  # an in-process transport keeps nothing

    def reap(self, me: str) -> list[str]:
        """Clean up after peers whose heartbeat stopped (one reaper at a time); return their names."""
        return []

    @abc.abstractmethod
    def alive_nodes(self) -> list[str]:
        """Names of the nodes that are alive, sorted."""

    @abc.abstractmethod
    def drop_node(self, node: str, force: bool = True) -> list[ClientId]:
        """Remove every connection and the registration of ``node``; return clients now offline.

        Without ``force`` nothing is removed while ``node`` looks alive (a reaper racing a restart).
        """

    # Presence
    @abc.abstractmethod
    def add_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> bool:
        """Add connection ``conn`` (an id unique across nodes) of ``client_id`` on ``node``; True if the
        client just came online. Adding a connection twice adds it once. Raises ``TooManyConnections``
        when the client already holds ``MAX_CONNECTIONS_PER_CLIENT``."""

    @abc.abstractmethod
    def remove_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "",
                          chans: tuple[str, ...] = ()) -> bool:
        """Remove connection ``conn``; True if the client just went offline (its chans are left).
        Removing it twice removes it once.

        ``meta`` is the closing connection's, for the offline event; ``chans``, the chans the node
        knows the client in, a hint that may save a round trip (it need not be right).
        """

    @abc.abstractmethod
    def locate(self, client_ids: list[ClientId]) -> dict[ClientId, dict[str, int]]:
        """For each online client of ``client_ids``: node -> connection count."""

    @abc.abstractmethod
    def online_clients(self) -> list[ClientId]:
        """Every online client id."""

    # Chans
    @abc.abstractmethod
    def join(self, client_id: ClientId, chans: list[str]) -> bool:
        """Add an online client to ``chans``; False (and nothing done) if it is offline. Raises
        ``TooManyChans`` (nothing joined) past ``MAX_CHANS_PER_CLIENT``."""

    @abc.abstractmethod
    def leave(self, client_id: ClientId, chans: list[str]) -> None:
        """Remove ``client_id`` from ``chans``."""

    @abc.abstractmethod
    def chan_members(self, chan: str) -> list[ClientId]:
        """Members of ``chan``."""

    @abc.abstractmethod
    def clear_chan(self, chan: str) -> list[ClientId]:
        """Remove every member of ``chan``; return who they were."""

    @abc.abstractmethod
    def chan_list(self) -> list[tuple[str, int]]:
        """Every chan with its member count, sorted by name."""

    @abc.abstractmethod
    def client_chans(self, client_id: ClientId) -> list[str]:
        """The chans ``client_id`` is in, sorted."""

    @abc.abstractmethod
    def clients_chans(self, client_ids: list[ClientId]) -> dict[ClientId, list[str]]:
        """The chans each of ``client_ids`` is in (one batched read)."""

    @abc.abstractmethod
    def chan_online(self, chan: str) -> int:
        """How many members ``chan`` has."""

    @abc.abstractmethod
    def chan_nodes(self, chan: str) -> list[str]:
        """The nodes hosting at least one member of ``chan``."""

    # Transport
    @abc.abstractmethod
    def publish(self, batches: dict[str, list[Payload]]) -> None:
        """Hand each node its payloads, in order; one batch per node."""

    @abc.abstractmethod
    def inbox_tail(self, node: str) -> str:
        """Where ``node``'s inbox ends now: :meth:`receive` from there misses nothing published since.

        A node takes it before it registers, since senders find it from its registration on.
        """

    @abc.abstractmethod
    async def receive(self, node: str, deliver: Callable[[list[Payload]], None], after: str) -> None:
        """Run on ``node``'s loop until cancelled, passing each batch for ``node`` published after the
        position ``after`` (from :meth:`inbox_tail`) to ``deliver``, in order."""
