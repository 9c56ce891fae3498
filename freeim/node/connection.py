"""One accepted WebSocket as the node loop writes to it.

Fan-out never awaits a socket: the node appends frames to each connection's
pending list, then flushes. Under daphne the flush joins the pending frames,
already encoded once per message, and writes them to the socket's transport in
one call (:mod:`freeim.servers.daphne.sockets`; measured 10x faster than
``consumer.send`` per frame). Under any other server, or the test communicator,
it falls back to the ASGI ``send``. A connection whose backlog passes
``MAX_BACKLOG_BYTES`` is reported slow.

What a terminal sends is bounded too: its frames (pings included) are counted
against ``MAX_INBOUND_RATE``, its pongs queue in its backlog like any frame, and
under daphne its socket is not read while Twisted's write buffer for it is full,
so a terminal that sends without reading cannot make the node buffer answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..conf import conf
from ..ids import ClientId
from ..logs import fields
from ..protocol import CloseCode, ws_text_frame
from ..servers import daphne
from .tally import TALLY

if TYPE_CHECKING:
    from channels.generic.websocket import AsyncWebsocketConsumer


logger = logging.getLogger("freeim.connections")
#: A place in a stream: ``(epoch, offset)``.
Place = tuple[str, int]
#: Frames a terminal gets handled in a row before others get the loop (see :meth:`Connection.pace`).
INBOUND_BATCH = 50
#: Closes started from synchronous callbacks; the loop keeps only weak references to tasks.
_closing: set[asyncio.Task[Any]] = set()


class TokenBucket:
    """Admits ``rate`` events a second on average, in bursts of up to ``rate``."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Take a token at ``now`` (seconds on a monotonic clock); False if none is left."""
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Frame:
    """A server-to-terminal message: its JSON text and, lazily, its wire bytes."""

    __slots__ = ("text", "_wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = ws_text_frame(self.text.encode())
        return self._wire

    def __len__(self) -> int:
        """Bytes on the wire, which ``MAX_BACKLOG_BYTES`` bounds (non-ASCII text takes 2-4 a character)."""
        return len(self.wire)


class Connection:
    """A live socket of one client on this node, with its bounded backlog."""

    __slots__ = ("consumer", "client_id", "meta", "since", "chans_since", "join", "id", "node", "closed", "accepted",
                 "slow",
                 "paused", "on_resume", "_pending", "_pending_bytes", "_socket", "_inbound", "_handled", "_caught_up",
                 "_held", "__weakref__")

    def __init__(self, consumer: AsyncWebsocketConsumer, client_id: ClientId, meta: str,
                 since: str | None = None, chans_since: dict[str, str] | None = None,
                 join: list[str] | None = None) -> None:
        self.consumer = consumer
        self.client_id = client_id
        self.meta = meta
        #: The inbox position the terminal resumes from (None: it gets live messages only).
        self.since = since
        #: The position it resumes each of these chans from.
        self.chans_since = chans_since
        #: Chans it joins as it opens (before they are caught up on).
        self.join = join
        self.id = ""  # unique across nodes, given by the node that attaches it: presence is kept per id
        self.node = ""  # the name of that node, for its log lines
        self.closed = False
        self.accepted = False
        self.slow = False
        self.paused = False
        self.on_resume: Callable[[Connection], None] | None = None
        self._pending: list[Frame] = []
        self._pending_bytes = 0
        self._inbound = TokenBucket(conf.MAX_INBOUND_RATE, time.monotonic())
        self._handled = 0
        #: Where its catch-up of each stream ended (``""``: its inbox, else a chan): a message up to there that
        #: also comes live is skipped. None for a socket that did not catch up, as most do not.
        self._caught_up: dict[str, Place] | None = None
        #: While its inbox and chans are read (:meth:`hold`), what is sent to it meanwhile: each frame, its
        #: stream and its position there (None: a frame no stream keeps).
        self._held: list[tuple[Frame, str, Place | None]] | None = None
        #: The socket written to directly (daphne), or None: then frames go through the ASGI ``send``.
        self._socket = daphne.socket_for(consumer.base_send, self)

    def opened(self) -> None:
        """The handshake completed: frames may be written (under daphne, its socket sheds what the
        handshake left: :meth:`freeim.servers.daphne.sockets.DaphneSocket.opened`)."""
        self.accepted = True
        if self._socket is not None:
            self._socket.opened()

    def resumed(self) -> None:
        """The socket takes writes again (its transport's buffer drained)."""
        if self.on_resume is not None:
            self.on_resume(self)

    def admit(self) -> bool:
        """Count a frame from the terminal; False if it must be ignored (the socket is then closing).

        A terminal over ``MAX_INBOUND_RATE`` is closed with 4005; one that sends while its
        socket pushes back, where the socket cannot stop being read, with 4002.
        """
        if self.closed:
            return False
        if not self._inbound.take(time.monotonic()):
            self.close_soon(CloseCode.RATE_LIMITED)
            return False
        if self.paused and (self._socket is None or self._socket.reads is None):
            self.close_soon(CloseCode.SLOW_CONSUMER)
            return False
        return True

    async def pace(self) -> None:
        """Every ``INBOUND_BATCH`` frames handled, let the loop serve the others, this socket unread meanwhile.

        daphne queues every frame of what it read at once (up to its ``TRANSPORT_BUFFER``: hundreds
        of small frames), and the consumer would handle them all in one step of the loop, holding
        up every other socket. Unread while it waits its turn, the socket cannot queue more.
        """
        self._handled += 1
        if self._handled < INBOUND_BATCH:
            return
        self._handled = 0
        socket = None if self.paused else self._socket  # paused: Twisted resumes reading once its buffer drains
        paused = socket is not None and socket.pause_reading()
        try:
            await asyncio.sleep(0)
        finally:
            if paused and socket is not None and not self.paused:
                socket.resume_reading()

    def hold(self) -> None:
        """Keep what is sent from now on aside, until :meth:`catch_up` (its inbox and chans are being read)."""
        self._held = []

    def catch_up(self, missed: list[Frame], last: dict[str, Place], limit: int) -> bool:
        """Queue what the terminal missed, up to the position ``last`` of each stream it read (``""``: its
        inbox, else a chan), then what was held meanwhile but what of it the catch-up already had; False if
        that is past ``limit`` (as :meth:`enqueue`)."""
        held, self._held = self._held or [], None
        self._caught_up = last or None
        fits = all([self.enqueue(frame, limit) for frame in missed])
        for frame, stream, place in held:
            fits = (self.enqueue_at(frame, place, limit, stream) if place is not None else self.enqueue(frame, limit)) \
                and fits
        return fits

    def enqueue_at(self, frame: Frame, at: Place, limit: int, stream: str = "") -> bool:
        """:meth:`enqueue` a message at the position ``at`` of its stream (``""``: the client's inbox, else the
        chan); skipped if the catch-up had it: the stream held it when it was read, up to the position the
        catch-up ended at. Live messages are not deduplicated among themselves: concurrent sends reach the
        node in any order, so a lower position may come after a higher one, and must not be dropped."""
        if self._held is not None:
            self._held.append((frame, stream, at))
            return True
        caught_up_to = self._caught_up.get(stream) if self._caught_up is not None else None
        if caught_up_to is not None and caught_up_to[0] == at[0] and at[1] <= caught_up_to[1]:
            return True
        return self.enqueue(frame, limit)

    def enqueue(self, frame: Frame, limit: int) -> bool:
        """Queue ``frame``; past ``limit`` drop the backlog, stop queueing and return False.

        The caller then closes the connection: a terminal that cannot keep up gets
        a close code to reconnect with, not a stream with holes in it.
        """
        if self.closed or self.slow:
            return True
        if self._held is not None:
            self._held.append((frame, "", None))
            return True
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._pending_bytes <= limit:
            return True
        self.slow = True
        self._pending.clear()
        return False

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def write_pending(self) -> bool:
        """Write what is pending, unless the socket is closed, not accepted yet, or pushing back;
        False if it must go through :meth:`send_pending` instead (no daphne transport).

        Synchronous, so the node's fan-out makes no coroutine per socket.
        """
        if self.closed or not self._pending:
            self._pending.clear()
            return True
        if not self.accepted:
            return True  # written once the handshake completes (Node.activate)
        socket = self._socket
        if socket is None:
            return False
        if not socket.is_open():
            self._pending.clear()
            return True
        if not self.paused:
            frames, self._pending, self._pending_bytes = self._pending, [], 0
            socket.write(b"".join(f.wire for f in frames))
        return True

    async def send_pending(self) -> None:
        """Send what is pending through the ASGI ``send`` (any server but daphne, the test communicator)."""
        frames, self._pending, self._pending_bytes = self._pending, [], 0
        for frame in frames:
            await self.consumer.send(text_data=frame.text)

    async def reply(self, frame: Frame, limit: int) -> None:
        """Answer the terminal (a pong) through its backlog, as the node writes to it: a terminal
        that pings without reading fills its backlog and is closed with 4002, like any slow one."""
        if not self.enqueue(frame, limit):
            await self.close(CloseCode.SLOW_CONSUMER)
        elif not self.write_pending():
            await self.send_pending()

    async def close(self, code: int) -> None:
        """Close the socket with ``code``; nothing more is written to it."""
        if not self.closed:
            self._stop_writing(code)
            await self.consumer.close(code=int(code))  # autobahn accepts exactly int, not an IntEnum

    async def flush_and_close(self, code: int) -> None:
        """Write what is pending, then :meth:`close`: the node leaves, it does not give up on the terminal."""
        if self._pending and not self.closed and not self.slow and not self.write_pending():
            await self.send_pending()
        await self.close(code)

    def close_soon(self, code: int) -> None:
        """:meth:`close` a terminal that floods, from synchronous code (a Twisted callback).

        Its socket is not read any more: under daphne each read parses hundreds of frames at
        once, all for nothing now. Its close reply is not awaited then; autobahn drops the
        connection a second after its close frame.
        """
        if not self.closed:
            self._stop_writing(code)
            if self._socket is not None:
                self._socket.stop_reading()
            task = asyncio.get_running_loop().create_task(self.consumer.close(code=int(code)))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued for this socket and not yet written (what ``MAX_BACKLOG_BYTES`` bounds)."""
        return self._pending_bytes

    def _stop_writing(self, code: int) -> None:
        log_close(self.node, self.client_id, code)
        self.closed = True
        self._pending.clear()


def log_close(node: str, client_id: ClientId | None, code: int) -> None:
    """The one log line of a socket the node closes with one of its codes (:class:`CloseCode`)."""
    try:
        reason = CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        reason = "not a freeim close code"
    TALLY.closes[code] += 1
    event = "force_offline" if code == CloseCode.FORCED_OFFLINE else "close"
    # A drain closes every socket at once: the node logs it in one line (DEBUG has each).
    level = logging.DEBUG if code == CloseCode.NODE_DRAINING else logging.INFO
    logger.log(level, "freeim node %s: closing a socket of client %r with %d (%s)", node, client_id, code, reason,
                extra=fields(event, node, client_id=client_id, code=code, reason=reason))
