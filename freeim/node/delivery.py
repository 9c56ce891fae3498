"""Where a message is written to its sockets: the node applies each payload batch its transport
delivers (:mod:`freeim.messaging.payloads` says what each asks), queueing frames on the local
connections, then flushes them (:mod:`.connection`), closes those that fell behind, and sends
the receipts its deliveries owe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from .. import measures, protocol
from ..backends import Backend
from ..backends.contract import InboxRead
from ..ids import ClientId
from ..messaging import operations
from ..messaging.payloads import Payload, Receipt
from ..protocol import CloseCode
from .chansync import ChanSync
from .connection import Connection, Frame, Place
from .registry import Registry
from .tally import TALLY

logger = logging.getLogger("freeim.node")
#: Sockets flushed before the loop gets a turn for others.
YIELD_EVERY = 100


def _newest_within(frames: list[Frame], budget: int) -> tuple[int, int]:
    """How many of the newest ``frames`` (the last ones) fit in ``budget`` bytes, and the bytes they take."""
    used = 0
    for taken, frame in enumerate(reversed(frames)):
        if used + len(frame) > budget:
            return taken, used
        used += len(frame)
    return len(frames), used


class Delivery:
    """The node's delivery loop: one batch after the other, in the order the transport handed them over."""

    def __init__(self, node: str, backend: Backend, registry: Registry, backlog_limit: int) -> None:
        self.node = node
        self.backend = backend
        self.registry = registry
        self.backlog_limit = backlog_limit
        self.chan_sync = ChanSync(backend, registry, self.tell_left)
        #: Batches, each with when it was sent (None: a wake-up, no batch).
        self._inbox: asyncio.Queue[tuple[list[Payload], float | None]] = asyncio.Queue()
        self._dirty: dict[Connection, None] = {}
        self._to_close: list[tuple[Connection, int]] = []
        self._receipts: list[operations.ReceiptDue] = []

    def receive(self, batch: list[Payload], sent: float | None = None) -> None:
        """Take a batch for delivery, sent at ``sent`` (seconds since the epoch; the transport's callback: any
        code on the node's loop may call it)."""
        self._inbox.put_nowait((batch, sent))

    def activate(self, connection: Connection) -> None:
        """``connection``'s handshake completed: write what was queued for it meanwhile."""
        connection.opened()
        if connection.has_pending:
            self.wake(connection)

    def wake(self, connection: Connection) -> None:
        """Flush ``connection`` soon (it has frames pending, or its socket takes writes again)."""
        self._dirty[connection] = None
        self._inbox.put_nowait(([], None))

    def forget(self, connection: Connection) -> None:
        """``connection`` closed: write nothing more to it."""
        self._dirty.pop(connection, None)

    def tell_left(self, client_id: ClientId, chan: str) -> None:
        """Tell ``client_id``'s sockets here that it is no longer in ``chan``."""
        self._write([client_id], Frame(protocol.left_frame(chan)))
        self._inbox.put_nowait(([], None))  # flushed by the delivery loop, also when this comes from elsewhere

    async def run(self) -> None:
        """Until cancelled: apply what arrived, then flush."""
        while True:
            batches = [await self._inbox.get()]
            while not self._inbox.empty():
                batches.append(self._inbox.get_nowait())
            now = time.time()
            for _batch, sent in batches:
                if sent is not None:  # by two clocks, the sender's and this one: never below 0
                    measures.TRANSPORT_LAG.observe(max(0.0, now - sent))
            for payload in (p for batch, _sent in batches for p in batch):
                try:
                    self._apply(payload)
                except Exception:  # one bad payload must not stop delivery
                    logger.exception("freeim node %s: bad payload %.200r", self.node, payload)
            try:
                await self._flush()
            except Exception:
                logger.exception("freeim node %s: flush failed", self.node)

    def _apply(self, payload: Payload) -> None:
        TALLY.payloads[payload["op"]] += 1
        if payload["op"] == "send":
            self._send(payload["to"], payload["frame"], payload.get("receipt"), payload.get("pos"))
        elif payload["op"] == "chan":
            self._write_chan(payload["chan"], payload["frame"], payload.get("pos"))
        elif payload["op"] == "broadcast":
            self._write_all(Frame(payload["frame"]))
        elif payload["op"] == "join":
            self.registry.join(payload["client"], payload["chans"])
            self.chan_sync.stale([payload["client"]])
        elif payload["op"] == "leave":
            for chan in self.registry.leave(payload["client"], payload["chans"]):
                self.tell_left(payload["client"], chan)
            self.chan_sync.stale([payload["client"]])
        elif payload["op"] == "clear":
            members = self.registry.clear(payload["chan"])
            self._write(members, Frame(protocol.left_frame(payload["chan"])))
            self.chan_sync.stale(members)
        elif payload["op"] == "offline":
            for connection in self.registry.clients.get(payload["client"], ()):
                self._to_close.append((connection, CloseCode.FORCED_OFFLINE))
            if payload["client"] in self.registry.parked:  # a drain closed its sockets: the drain releases it
                self.registry.forced.add(payload["client"])
        else:
            raise ValueError(f"unknown op {payload['op']!r}")

    def _send(self, to: list[ClientId], frame: str, receipt: Receipt | None, positions: list[str] | None) -> None:
        if positions is None:
            self._write(to, Frame(frame))
        else:
            for client_id, at in zip(to, positions, strict=True):
                self._write_at(client_id, frame, at)
        if receipt:
            for client_id in to:
                if client_id in self.registry.parked and client_id not in self.registry.clients:
                    continue  # moving to another node (a drain): its catch-up there reports it delivered
                status = protocol.RECEIPT_DELIVERED if client_id in self.registry.clients else protocol.RECEIPT_OFFLINE
                self._receipts.append(operations.ReceiptDue(receipt["sender"], receipt["id"], client_id, status))

    def _write(self, client_ids: Iterable[ClientId], frame: Frame) -> None:
        clients = self.registry.clients
        for client_id in client_ids:
            self._enqueue(clients.get(client_id) or (), frame)

    def _write_chan(self, chan: str, frame: str, at: str | None) -> None:
        members = self.registry.chan_members(chan)
        place = protocol.parse_position(at)
        if at is None or place is None:  # a payload of a node that gave no positions yet
            self._write(members, Frame(frame))
            return
        positioned = Frame(protocol.with_position(frame, at))
        clients = self.registry.clients
        for client_id in members:
            self._enqueue(clients.get(client_id) or (), positioned, (place, chan))

    def _write_at(self, client_id: ClientId, frame: str, at: str) -> None:
        """Write a message at its position in ``client_id``'s inbox (:meth:`Connection.enqueue_at`)."""
        connections = self.registry.clients.get(client_id)
        place = protocol.parse_position(at)
        if connections and place is not None:
            self._enqueue(connections, Frame(protocol.with_position(frame, at)), (place, ""))

    def catch_up(self, connection: Connection, missed: dict[str, tuple[InboxRead, str]]) -> None:
        """Queue for ``connection`` what each stream it resumes kept after the position it gave (``""``: its
        inbox, else a chan), then what was sent to it while they were read.

        A ``gap`` frame comes first where the stream no longer kept all of it, and where it kept more than
        half the socket's backlog can take (then only the newest that fit are sent): a catch-up past the
        backlog would close the socket as slow, and the terminal would come back for the same, for ever.
        """
        frames: list[Frame] = []
        last: dict[str, Place] = {}
        budget = self.backlog_limit // 2  # the rest of the backlog for what comes live meanwhile
        for stream, (read, since) in missed.items():
            kept = [Frame(protocol.with_position(message.frame, message.position)) for message in read.messages]
            taken, used = _newest_within(kept, budget)
            budget -= used
            if read.gap or taken < len(kept):  # what does not fit is as good as trimmed: the terminal re-syncs
                frames.append(Frame(protocol.gap_frame(since, stream or None)))
            frames += kept[len(kept) - taken:]
            if read.messages and (place := protocol.parse_position(read.messages[-1].position)) is not None:
                last[stream] = place
        if not connection.catch_up(frames, last, self.backlog_limit):
            self._to_close.append((connection, CloseCode.SLOW_CONSUMER))
            return
        # Its sender asked for a receipt, and got "offline" when it was sent: it is delivered now.
        self._receipts += [operations.ReceiptDue(kept.receipt_to, kept.id, connection.client_id,
                                                 protocol.RECEIPT_DELIVERED)
                           for read, _since in missed.values() for kept in read.messages
                           if kept.receipt_to is not None]
        self.wake(connection)

    def _write_all(self, frame: Frame) -> None:
        for connections in self.registry.clients.values():
            self._enqueue(connections, frame)

    def _enqueue(self, connections: Sequence[Connection], frame: Frame, at: tuple[Place, str] | None = None) -> None:
        """Queue ``frame`` on each connection (at its position ``at`` in a stream, ``""`` being the inbox); a
        connection past its backlog is closed as slow."""
        limit = self.backlog_limit
        for connection in connections:
            if connection.enqueue(frame, limit) if at is None else connection.enqueue_at(frame, at[0], limit, at[1]):
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
        await operations.send_receipts(self.backend, receipts)
