"""The embedded backend: one process, plain dicts, an in-process transport.

Sync callers (DRF views run in worker threads) and the node loop share it, so
every operation holds one lock; payloads reach the node loop through
``loop.call_soon_threadsafe`` when published from another thread.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from ..conf import conf
from ..exceptions import TooManyChans, TooManyConnections
from ..ids import ClientId
from ..messaging.payloads import Payload
from ..protocol import position
from .contract import Backend, Deliver, InboxRead, Letter, NodeHealth, NodeLoad, Page, TokenRecord
from .inboxes import META_LIFE, Entry, read_after


class MemoryState:
    """Store, node registry and transport of a single process, in one object: dropping a node
    touches all three."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tokens: dict[str, tuple[float, TokenRecord]] = {}
        self._nodes: set[str] = set()
        self._draining: set[str] = set()
        self._health: dict[str, NodeHealth] = {}
        self._connections: dict[ClientId, dict[str, str]] = {}  # client -> connection id -> node
        self._chans: dict[str, set[ClientId]] = defaultdict(set)
        self._client_chans: dict[ClientId, set[str]] = defaultdict(set)
        self._inboxes: dict[str, tuple[asyncio.AbstractEventLoop, Deliver]] = {}
        self._held: dict[str, list[tuple[list[Payload], float]]] = {}  # between a node's inbox_tail and receive
        self._client_inboxes: _Inboxes[ClientId] = _Inboxes()
        self._chan_streams: _Inboxes[str] = _Inboxes()

    async def issue_token(self, token: str, record: TokenRecord, ttl: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: v for t, v in self._tokens.items() if v[0] > now}
            self._tokens[token] = (now + ttl, TokenRecord(**record))

    async def issue_token_seeing_nodes(self, token: str, record: TokenRecord, ttl: int, within: float) -> list[str]:
        await self.issue_token(token, record, ttl)
        return await self.alive_nodes(within, accepting=True)

    async def redeem_token(self, token: str) -> TokenRecord | None:
        with self._lock:
            found = self._tokens.pop(token, None)
        return found[1] if found is not None and found[0] > time.monotonic() else None

    async def register_node(self, node: str, boot: str) -> None:
        with self._lock:
            self._nodes.add(node)

    async def heartbeat(self, node: str, boot: str, health: NodeHealth | None = None) -> bool:
        if health is not None:
            await self.publish_health(node, health)
        return True  # one process: the node cannot lose its registration

    async def publish_health(self, node: str, health: NodeHealth) -> None:
        with self._lock:
            self._health[node] = NodeHealth(**health)  # no TTL: the node forgets its report as it stops (drop_node)

    async def node_health(self, nodes: list[str]) -> dict[str, NodeHealth]:
        with self._lock:
            return {node: self._health[node] for node in nodes if node in self._health}

    async def reap(self, me: str) -> list[str]:
        return []  # one process: no peer to die

    async def alive_nodes(self, within: float | None = None, accepting: bool = False) -> list[str]:
        with self._lock:
            return sorted(self._nodes - self._draining if accepting else self._nodes)

    async def set_draining(self, node: str, draining: bool) -> None:
        with self._lock:
            (self._draining.add if draining else self._draining.discard)(node)

    async def draining_nodes(self) -> list[str]:
        with self._lock:
            return sorted(self._draining)

    async def release_moved(self, node: str) -> int:
        with self._lock:
            kept = 0
            for conns in self._connections.values():
                here = [conn for conn, at in conns.items() if at == node]
                if len(here) == len(conns):  # not back on another node (yet)
                    kept += len(here)
                    continue
                for conn in here:
                    del conns[conn]
            return kept

    async def heartbeats(self) -> dict[str, float | None]:
        with self._lock:
            return dict.fromkeys(sorted(self._nodes))  # one process: no heartbeats

    async def drop_node(self, node: str, force: bool = True, keep: Collection[str] = ()) -> list[ClientId]:
        with self._lock:
            if not keep:
                self._nodes.discard(node)
                self._draining.discard(node)
                self._health.pop(node, None)
                self._inboxes.pop(node, None)
            gone = []
            for client_id, conns in list(self._connections.items()):
                here = [conn for conn, at in conns.items() if at == node and conn not in keep]
                if here and self._remove(client_id, here):
                    gone.append(client_id)
            return gone

    async def add_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> bool:
        with self._lock:
            conns = self._connections.setdefault(client_id, {})
            if conn not in conns:
                if len(conns) >= conf.MAX_CONNECTIONS_PER_CLIENT:
                    raise TooManyConnections()
                conns[conn] = node
            return len(conns) == 1

    async def remove_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> bool:
        with self._lock:
            if self._connections.get(client_id, {}).get(conn) != node:
                return False
            return self._remove(client_id, [conn])

    def _remove(self, client_id: ClientId, conns: list[str]) -> bool:
        """Take ``conns`` off ``client_id``; True if it went offline (and left its chans)."""
        mine = self._connections[client_id]
        for conn in conns:
            del mine[conn]
        if mine:
            return False
        self._forget_client(client_id)
        return True

    def _forget_client(self, client_id: ClientId) -> None:
        self._connections.pop(client_id, None)
        for chan in self._client_chans.pop(client_id, ()):
            self._discard_member(chan, client_id)

    def _discard_member(self, chan: str, client_id: ClientId) -> None:
        members = self._chans.get(chan)
        if members is not None:
            members.discard(client_id)
            if not members:
                del self._chans[chan]

    async def locate(self, client_ids: list[ClientId]) -> dict[ClientId, dict[str, int]]:
        with self._lock:
            return self._located(client_ids)

    def _located(self, client_ids: list[ClientId]) -> dict[ClientId, dict[str, int]]:
        return {c: nodes for c in client_ids if (nodes := self._nodes_of(c))}

    def _nodes_of(self, client_id: ClientId) -> dict[str, int]:
        """Where ``client_id`` is connected: node -> connections (empty when offline)."""
        return dict(Counter(self._connections.get(client_id, {}).values()))

    async def online_clients(self) -> list[ClientId]:
        with self._lock:
            return list(self._connections)

    async def online_count(self) -> int:
        with self._lock:
            return len(self._connections)

    async def online_page(self, cursor: str, count: int) -> Page[ClientId]:
        with self._lock:
            return _page(list(self._connections), str, cursor, count)

    async def node_loads(self, nodes: list[str]) -> dict[str, NodeLoad]:
        with self._lock:
            connections: Counter[str] = Counter()
            clients: Counter[str] = Counter()
            for conns in self._connections.values():
                here = Counter(conns.values())
                connections.update(here)
                clients.update(here.keys())
        return {node: NodeLoad(connections[node], clients[node]) for node in nodes}

    async def join(self, client_id: ClientId, chans: list[str]) -> bool:
        with self._lock:
            if not self._connections.get(client_id):
                return False
            mine = self._client_chans.get(client_id, set())
            if len(mine | set(chans)) > conf.MAX_CHANS_PER_CLIENT:
                raise TooManyChans()
            for chan in chans:
                self._chans[chan].add(client_id)
                self._client_chans[client_id].add(chan)
            return True

    async def leave(self, client_id: ClientId, chans: list[str]) -> None:
        with self._lock:
            mine = self._client_chans.get(client_id, set())
            for chan in chans:
                mine.discard(chan)
                self._discard_member(chan, client_id)
            if not mine:
                self._client_chans.pop(client_id, None)

    async def store_messages(self, letters: list[Letter], locate: list[ClientId]
                             ) -> tuple[list[tuple[str, dict[str, int]]], dict[ClientId, dict[str, int]]]:
        with self._lock:
            now = time.monotonic()
            stored = []
            for letter in letters:
                inbox = self._client_inboxes.for_writing(letter.client, now)
                stored.append((position(inbox.epoch, inbox.append(letter, now)), self._nodes_of(letter.client)))
            return stored, self._located(locate)

    async def receipts_wanted(self, client_id: ClientId, message_ids: list[str]) -> list[tuple[str, ClientId]]:
        with self._lock:
            inbox = self._client_inboxes.get(client_id, time.monotonic())
            kept = [(message_id, inbox.ids.get(message_id)) for message_id in message_ids] if inbox else []
        return [(message_id, found[1]) for message_id, found in kept if found is not None and found[1] is not None]

    async def read_inbox(self, client_id: ClientId, since: str) -> InboxRead:
        with self._lock:
            return self._read(self._client_inboxes, client_id, since)

    async def store_chan_message(self, chan: str, message_id: str, frame: str) -> tuple[str, list[str]]:
        with self._lock:
            now = time.monotonic()
            stream = self._chan_streams.for_writing(chan, now)
            at = position(stream.epoch, stream.append(Letter(chan, message_id, frame), now))
        return at, await self.chan_nodes(chan)

    async def drop_chan_stream(self, chan: str) -> None:
        with self._lock:
            self._chan_streams.drop(chan)

    async def read_chans(self, since: dict[str, str]) -> dict[str, InboxRead]:
        with self._lock:
            return {chan: self._read(self._chan_streams, chan, at) for chan, at in since.items()}

    @staticmethod
    def _read(inboxes: _Inboxes[K], owner: K, since: str) -> InboxRead:
        now = time.monotonic()
        inbox = inboxes.get(owner, now)
        return read_after(None, 0, [], since) if inbox is None else inbox.read(since, now)

    async def chan_members(self, chan: str) -> list[ClientId]:
        with self._lock:
            return list(self._chans.get(chan, ()))

    async def clear_chan(self, chan: str) -> list[ClientId]:
        with self._lock:
            members = list(self._chans.pop(chan, ()))
            for client_id in members:
                self._client_chans.get(client_id, set()).discard(chan)
            return members

    async def chan_list(self) -> list[tuple[str, int]]:
        with self._lock:
            return sorted((chan, len(members)) for chan, members in self._chans.items())

    async def chan_count(self) -> int:
        with self._lock:
            return len(self._chans)

    async def chan_page(self, cursor: str, count: int) -> Page[tuple[str, int]]:
        with self._lock:
            return _page([(chan, len(members)) for chan, members in self._chans.items()], lambda item: item[0],
                         cursor, count)

    async def client_chans(self, client_id: ClientId) -> list[str]:
        with self._lock:
            return sorted(self._client_chans.get(client_id, ()))

    async def clients_chans(self, client_ids: list[ClientId]) -> dict[ClientId, list[str]]:
        with self._lock:
            return {c: sorted(self._client_chans.get(c, ())) for c in client_ids}

    async def chan_online(self, chan: str) -> int:
        with self._lock:
            return len(self._chans.get(chan, ()))

    async def chan_nodes(self, chan: str) -> list[str]:
        with self._lock:
            nodes = {n for c in self._chans.get(chan, ()) for n in self._connections.get(c, {}).values()}
            return sorted(nodes)

    async def publish(self, batches: dict[str, list[Payload]]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        sent = time.time()
        for node, payloads in batches.items():
            with self._lock:
                inbox = self._inboxes.get(node)
                if inbox is None:
                    if node in self._held:  # the node is starting: it reads this once it receives
                        self._held[node].append((payloads, sent))
                    continue  # else no loop runs for that node, so no connection is there to deliver to
            loop, deliver = inbox
            if loop.is_closed():
                continue
            if loop is running:
                deliver(payloads, sent)
            else:
                loop.call_soon_threadsafe(deliver, payloads, sent)

    async def trim_inbox(self, node: str) -> None:
        return None  # an in-process transport keeps nothing

    async def inbox_tail(self, node: str) -> str:
        """Hold what is published to ``node`` from now on, until it receives."""
        with self._lock:
            self._held.setdefault(node, [])
        return ""

    async def receive(self, node: str, deliver: Deliver, after: str) -> None:
        """Feed ``node``'s payloads (those held since :meth:`inbox_tail` first) to ``deliver`` on the
        running loop until cancelled."""
        with self._lock:
            self._inboxes[node] = (asyncio.get_running_loop(), deliver)
            held = self._held.pop(node, [])
        for payloads, sent in held:
            deliver(payloads, sent)
        try:
            await asyncio.Event().wait()
        finally:
            if self._inboxes.get(node, (None, None))[1] is deliver:
                del self._inboxes[node]


class _Inbox:
    """One inbox: its epoch, the offset of its newest message, and the messages it keeps."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.top = 0
        self.kept: deque[tuple[Entry, float, int]] = deque()  # (entry, stored at, bytes)
        #: Each kept message's offset and who wants a receipt for it, by message id.
        self.ids: dict[str, tuple[int, ClientId | None]] = {}
        self.bytes = 0
        self.last = 0.0

    def append(self, letter: Letter, now: float) -> int:
        """Keep ``letter``; its offset (that of the same message, if it is kept already)."""
        if letter.id in self.ids:
            return self.ids[letter.id][0]
        self.top += 1
        size = len(letter.frame.encode())
        self.kept.append(((self.top, letter.id, letter.frame, letter.receipt_to), now, size))
        self.ids[letter.id] = (self.top, letter.receipt_to)
        self.bytes += size
        self.last = now
        self.trim(now)
        return self.top

    def trim(self, now: float, oldest: float | None = None) -> None:
        """Drop the oldest messages past the count, bytes and age limits (or older than ``oldest``)."""
        oldest = now - conf.INBOX_MAX_AGE if oldest is None else oldest
        while self.kept and (len(self.kept) > conf.INBOX_MAX_MESSAGES or self.bytes > conf.INBOX_MAX_BYTES
                             or self.kept[0][1] < oldest):
            entry, _at, size = self.kept.popleft()
            del self.ids[entry[1]]
            self.bytes -= size

    def read(self, since: str, now: float) -> InboxRead:
        self.trim(now)
        return read_after(self.epoch, self.top, [entry for entry, _at, _size in self.kept], since)


K = TypeVar("K")
T = TypeVar("T")


class _Inboxes(Generic[K]):
    """Inboxes by owner, as Redis keeps them: one idle past ``INBOX_MAX_AGE`` gives its messages up (Redis
    expires the stream), one idle past :data:`META_LIFE` goes entirely (the meta hash). Least recently
    written first, so each call looks only at those whose time came."""

    def __init__(self) -> None:
        self._live: OrderedDict[K, _Inbox] = OrderedDict()
        self._quiet: OrderedDict[K, _Inbox] = OrderedDict()  # messages given up, epoch and top kept

    def get(self, owner: K, now: float) -> _Inbox | None:
        self._expire(now)
        return self._live.get(owner) or self._quiet.get(owner)

    def for_writing(self, owner: K, now: float) -> _Inbox:
        self._expire(now)
        inbox = self._live.pop(owner, None) or self._quiet.pop(owner, None) or _Inbox(secrets.token_hex(4))
        self._live[owner] = inbox  # the most recently written, last
        return inbox

    def drop(self, owner: K) -> None:
        self._live.pop(owner, None)
        self._quiet.pop(owner, None)

    def _expire(self, now: float) -> None:
        while self._live and now - next(iter(self._live.values())).last > conf.INBOX_MAX_AGE:
            owner, inbox = self._live.popitem(last=False)
            inbox.trim(now, oldest=now)
            self._quiet[owner] = inbox
        while self._quiet and now - next(iter(self._quiet.values())).last > max(META_LIFE, conf.INBOX_MAX_AGE):
            self._quiet.popitem(last=False)


class MemoryBackend(Backend):
    """``FREEIM['BACKEND']`` of the embedded default (no ``REDIS_URL``): one process holds every
    connection, and the node sends the online/offline signals itself."""

    process_local = True

    def __init__(self) -> None:
        state = MemoryState()
        super().__init__(state, state, state)


def _page(items: list[T], name: Callable[[T], str], cursor: str, count: int) -> Page[T]:
    """The ``count`` items named after ``cursor`` (the name of the last item of the page before), by name."""
    after = [item for item in sorted(items, key=name) if name(item) > cursor]
    return Page(after[:count], name(after[count - 1]) if len(after) > count else "")
