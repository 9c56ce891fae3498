"""What a backend provides, as typed contracts: the store, node liveness, the transport, the events stream.

* :class:`Store`: :class:`Tokens`, :class:`Presence` (who is connected where), :class:`Chans` and
  :class:`Inboxes` (what each client missed).
* :class:`Nodes`: which node processes are alive, and the cleanup after those that died.
* :class:`Transport`: payloads from the business side to the nodes (:mod:`freeim.messaging.payloads`).
* :class:`EventStream`: online/offline events for the ``freeim_events`` workers (the cluster only).

Every method is a coroutine, so the node and async callers await it. Sync callers (DRF views,
commands, Celery tasks) use :meth:`Backend.blocking`: a backend whose methods finish without ever
suspending (they block the calling thread instead), which :func:`run_blocking` runs to its end
without an event loop. An operation is therefore written once, as a coroutine over a
:class:`Backend`, and serves both kinds of callers (:mod:`freeim.messaging.operations`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from typing import Any, Generic, NamedTuple, NotRequired, Protocol, TypedDict, TypeVar, cast

from ..ids import ClientId
from ..messaging.payloads import Payload

T = TypeVar("T")
#: Takes one batch of payloads for the node, on the node's loop, with when it was sent (seconds since the epoch, by
#: the sender's clock: Redis's for an inbox entry).
Deliver = Callable[[list[Payload], float], None]


class TokenRecord(TypedDict):
    """What a one-time connect token stands for."""

    client_id: ClientId
    meta: str
    server: str
    #: The position the terminal resumes its inbox from (absent: it gets live messages only).
    since: NotRequired[str]
    #: The position it resumes each of these chans from.
    chans_since: NotRequired[dict[str, str]]
    #: Chans the client joins as the socket opens, before its chans are caught up on.
    join: NotRequired[list[str]]


class Tokens(Protocol):
    async def issue_token(self, token: str, record: TokenRecord, ttl: int) -> None:
        """Store ``record`` under ``token`` for ``ttl`` seconds."""

    async def issue_token_seeing_nodes(self, token: str, record: TokenRecord, ttl: int, within: float) -> list[str]:
        """:meth:`issue_token`, and in the same round trip the names of the nodes that beat within ``within``
        seconds and take new terminals (:meth:`Nodes.alive_nodes` with ``accepting``), sorted: a connect whose
        node was chosen among the nodes it saw last learns at no cost whether they changed."""

    async def redeem_token(self, token: str) -> TokenRecord | None:
        """Take the record of ``token`` and forget the token; None if unknown or expired."""


class NodeLoad(NamedTuple):
    """What one node holds."""

    connections: int
    #: The clients those connections belong to.
    clients: int


class Page(NamedTuple, Generic[T]):
    """One page of a list read a page at a time (the online clients, the chans)."""

    items: list[T]
    #: What to ask for the page after this one; ``""`` when this one is the last.
    next: str


class Presence(Protocol):
    async def add_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> bool:
        """Add connection ``conn`` (an id unique across nodes) of ``client_id`` on ``node``; True if the
        client just came online. Adding a connection twice adds it once. Raises ``TooManyConnections``
        when the client already holds ``MAX_CONNECTIONS_PER_CLIENT``."""

    async def remove_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> bool:
        """Remove connection ``conn``; True if the client just went offline (its chans are left).
        Removing it twice removes it once. ``meta`` is the closing connection's, for the offline event.
        """

    async def locate(self, client_ids: list[ClientId]) -> dict[ClientId, dict[str, int]]:
        """For each online client of ``client_ids``: node -> connection count."""

    async def online_clients(self) -> list[ClientId]:
        """Every online client id."""

    async def online_count(self) -> int:
        """How many clients are online."""

    async def online_page(self, cursor: str, count: int) -> Page[ClientId]:
        """About ``count`` online clients from ``cursor`` on (``""``: the first page). A client online the whole
        time pages are read is in one of them at least; one that comes or goes meanwhile may be in none, or two.
        ``ValueError`` where the backend can tell that ``cursor`` is none it gave."""

    async def node_loads(self, nodes: list[str]) -> dict[str, NodeLoad]:
        """What each of ``nodes`` holds (read-only, for status reports: it reads every connection of those nodes,
        a bounded chunk per round trip)."""


class Chans(Protocol):
    async def join(self, client_id: ClientId, chans: list[str]) -> bool:
        """Add an online client to ``chans``; False (and nothing done) if it is offline. Raises
        ``TooManyChans`` (nothing joined) past ``MAX_CHANS_PER_CLIENT``."""

    async def leave(self, client_id: ClientId, chans: list[str]) -> None:
        """Remove ``client_id`` from ``chans``."""

    async def chan_members(self, chan: str) -> list[ClientId]:
        """Members of ``chan``."""

    async def clear_chan(self, chan: str) -> list[ClientId]:
        """Remove every member of ``chan``; return who they were."""

    async def chan_list(self) -> list[tuple[str, int]]:
        """Every chan with its member count, sorted by name."""

    async def chan_count(self) -> int:
        """How many chans have members."""

    async def chan_page(self, cursor: str, count: int) -> Page[tuple[str, int]]:
        """About ``count`` chans with their member counts from ``cursor`` on, as :meth:`Presence.online_page`."""

    async def client_chans(self, client_id: ClientId) -> list[str]:
        """The chans ``client_id`` is in, sorted."""

    async def clients_chans(self, client_ids: list[ClientId]) -> dict[ClientId, list[str]]:
        """The chans each of ``client_ids`` is in (one batched read)."""

    async def chan_online(self, chan: str) -> int:
        """How many members ``chan`` has."""

    async def chan_nodes(self, chan: str) -> list[str]:
        """The nodes hosting at least one member of ``chan``."""


class Letter(NamedTuple):
    """A message for one client's inbox."""

    client: ClientId
    id: str
    #: The message's frame, without its position (the inbox gives it).
    frame: str
    #: Who gets a ``delivered`` receipt when a terminal catches up on it (None: nobody).
    receipt_to: ClientId | None = None


class Kept(NamedTuple):
    """A message an inbox keeps."""

    position: str
    frame: str
    id: str
    receipt_to: ClientId | None = None


class InboxRead(NamedTuple):
    """What a client's inbox holds after a position."""

    #: True when it no longer holds all that came after the position (trimmed, or its epoch changed).
    gap: bool
    #: Each message after it, oldest first.
    messages: list[Kept]


class Inboxes(Protocol):
    """Each client's bounded inbox of private messages, so a terminal that reconnects gets what it missed.

    An inbox numbers its messages 1, 2, 3... within an *epoch*, a random name given when the inbox
    is made; a position is ``"<epoch>.<offset>"`` (:func:`freeim.protocol.position`). It keeps at most
    ``INBOX_MAX_MESSAGES`` messages and ``INBOX_MAX_BYTES`` bytes, none older than ``INBOX_MAX_AGE``.
    """

    async def store_messages(self, letters: list[Letter], locate: list[ClientId]
                             ) -> tuple[list[tuple[str, dict[str, int]]], dict[ClientId, dict[str, int]]]:
        """Append each letter to its client's inbox. Return, for each, its position and where its client is
        connected now (node -> connections); and where each of ``locate`` is.

        Storing one message (by id) in one inbox twice stores it once.
        """

    async def receipts_wanted(self, client_id: ClientId, message_ids: list[str]) -> list[tuple[str, ClientId]]:
        """Of the messages ``message_ids`` that ``client_id``'s inbox keeps, those whose sender wants a
        receipt: ``(message id, sender)`` each."""

    async def read_inbox(self, client_id: ClientId, since: str) -> InboxRead:
        """What ``client_id``'s inbox holds after the position ``since`` (:data:`~freeim.protocol.FROM_THE_START`:
        all it holds)."""

    async def store_chan_message(self, chan: str, message_id: str, frame: str) -> tuple[str, list[str]]:
        """Append a message to ``chan``'s stream (an inbox every member shares, with the same limits); return
        its position and the nodes that host a member of the chan."""

    async def read_chans(self, since: dict[str, str]) -> dict[str, InboxRead]:
        """What each chan's stream holds after its position in ``since`` (chan -> position), as
        :meth:`read_inbox`; one batched read."""

    async def drop_chan_stream(self, chan: str) -> None:
        """Forget ``chan``'s stream: whoever has the chan next catches up on nothing said before (a
        terminal resuming from an old position gets a ``gap``)."""


class Store(Tokens, Presence, Chans, Inboxes, Protocol):
    """Tokens, presence, chans and inboxes: the state every process of a deployment shares."""


class NodeHealth(TypedDict):
    """What a node reports of itself with each heartbeat: its readiness probe's facts (:mod:`freeim.node.health`),
    for ``freeim_status`` and the admin's live-ops page, which run in other processes. A report lasts a heartbeat
    TTL: a dead node's is gone before the node is reaped."""

    ready: bool
    #: Why it is not ready (none when it is).
    reasons: list[str]
    #: How late its loop woke, at worst, in the last two seconds.
    loop_lag_ms: float
    draining: bool
    #: Its sockets and their clients, by its own count (presence keeps a draining node's until each client is back).
    connections: int
    clients: int
    #: When the node started (Unix time, seconds), and the freeim version it runs.
    started: float
    version: str


class Nodes(Protocol):
    """Which nodes are alive, what each reports of its health, and the cleanup after those that are not."""

    async def register_node(self, node: str, boot: str) -> None:
        """Mark ``node`` (the process with boot id ``boot``) alive: it receives payloads from now on."""

    async def heartbeat(self, node: str, boot: str, health: NodeHealth | None = None) -> bool:
        """Keep ``node`` registered, and publish ``health`` with the beat (as :meth:`publish_health`, in the same
        round trip); False when its registration was lost and must be rebuilt."""

    async def publish_health(self, node: str, health: NodeHealth) -> None:
        """Keep ``health`` as ``node``'s report, until its next one or for the heartbeat TTL."""

    async def node_health(self, nodes: list[str]) -> dict[str, NodeHealth]:
        """The report of each of ``nodes`` that has one (read-only, for status reports)."""

    async def alive_nodes(self, within: float | None = None, accepting: bool = False) -> list[str]:
        """Names of the nodes that are alive, sorted: that beat within the heartbeat TTL, or within ``within``
        seconds (a shorter time finds the nodes whose heartbeat is not late); with ``accepting``, only those
        that take new terminals (not draining)."""

    async def set_draining(self, node: str, draining: bool) -> None:
        """Mark ``node`` draining, so no new terminal is sent there (``alive_nodes(accepting=True)``), or not."""

    async def draining_nodes(self) -> list[str]:
        """The nodes marked draining, sorted."""

    async def release_moved(self, node: str) -> int:
        """Take off ``node`` (which drains) the connections of each client that has one on another node now: its
        terminal moved there, so it stays online and no event is sent. Return how many connections ``node``
        still holds for clients that did not come back yet."""

    async def drop_node(self, node: str, force: bool = True, keep: Collection[str] = ()) -> list[ClientId]:
        """Remove every connection and the registration of ``node`` (and its draining mark); return clients now
        offline.

        Without ``force`` nothing is removed while ``node`` looks alive (a reaper racing a restart).
        The connections in ``keep`` (ids) stay, and so does the registration if there are any: what a node
        that rebuilds its presence holds (its clients must not flap offline and online).
        """

    async def reap(self, me: str) -> list[str]:
        """Clean up after peers whose heartbeat stopped (one reaper at a time); return their names."""

    async def heartbeats(self) -> dict[str, float | None]:
        """Every registered node, a dead one too until it is reaped, with the seconds since its last heartbeat
        (None where nodes need none)."""


class Transport(Protocol):
    """Payload batches from any process to the nodes, in order per node."""

    async def publish(self, batches: dict[str, list[Payload]]) -> None:
        """Hand each node its payloads, in order; one batch per node."""

    async def inbox_tail(self, node: str) -> str:
        """Where ``node``'s inbox ends now: :meth:`receive` from there misses nothing published since.

        A node takes it before it registers, since senders find it from its registration on.
        """

    async def receive(self, node: str, deliver: Deliver, after: str) -> None:
        """Run on ``node``'s loop until cancelled, passing each batch for ``node`` published after the
        position ``after`` (from :meth:`inbox_tail`) to ``deliver``, in order."""

    async def trim_inbox(self, node: str) -> None:
        """Drop what ``node``'s inbox keeps past its age, when nothing new arrives to trim it."""


class GroupBacklog(NamedTuple):
    """Where one consumer group of the events stream is."""

    name: str
    consumers: int
    #: Events a worker of the group took and did not ack yet.
    pending: int
    #: Events no worker of the group took yet; None where the stream cannot tell (trimmed past the group).
    lag: int | None


class EventsBacklog(NamedTuple):
    """The events stream: the events it keeps, and each consumer group reading it."""

    length: int
    groups: list[GroupBacklog]


class EventStream(Protocol):
    """Online/offline events, each handled by one worker of a group, at least once; one client's by one worker
    at a time, in their order."""

    async def read(self, group: str, consumer: str, claim_idle_ms: int,
                   block_ms: int) -> list[tuple[str, dict[str, str]]]:
        """Events for ``consumer``: first those a worker that died (silent for ``claim_idle_ms``) or gave them up
        left unacked, then new ones (waiting up to ``block_ms``); ``(entry id, fields)`` each."""

    async def leave(self, group: str, consumer: str) -> None:
        """``consumer`` stops: the other workers of ``group`` take its events over at once."""

    async def ack(self, group: str, entry_ids: list[str]) -> None:
        """Mark events handled by ``group``."""

    async def backlog(self) -> EventsBacklog:
        """The stream's length and its groups' backlogs (read-only, for status reports)."""


class Backend:
    """The parts of one deployment's backend, chosen by ``FREEIM['BACKEND']`` (:mod:`freeim.backends`).

    ``events`` is None where the node sends the online/offline signals in its own process (one
    process holds every connection); ``heartbeat_ttl`` is None where nodes need no heartbeat.
    """

    #: Whether the state lives in this process's memory, so only the process that runs the node
    #: (the server) may use it: :func:`freeim.backends.get_backend` refuses it anywhere else.
    process_local = False

    def __init__(self, store: Store, nodes: Nodes, transport: Transport, *, events: EventStream | None = None,
                 heartbeat_ttl: float | None = None, blocking: Backend | None = None) -> None:
        self.store = store
        self.nodes = nodes
        self.transport = transport
        self.events = events
        self.heartbeat_ttl = heartbeat_ttl
        self._blocking = blocking

    def blocking(self) -> Backend:
        """This backend for sync callers: its methods never suspend (run them with :func:`run_blocking`)."""
        return self._blocking or self


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end in the calling thread; it must await only a blocking backend.

    Such a coroutine never suspends, so one ``send`` finishes it: no event loop, no
    ``async_to_sync`` thread hop. One that does suspend is a bug, and raises.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("A coroutine run with run_blocking awaited something that suspends; a blocking backend "
                       "must finish every call at once.")
