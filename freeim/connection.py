"""One accepted WebSocket as the node loop writes to it.

Fan-out never awaits a socket: the node appends frames to each connection's
pending list, then flushes. Under daphne the flush joins the pending frames,
already encoded once per message, and writes them to the Twisted transport in
one call (measured 10x faster than ``consumer.send`` per frame). Under any
other server, or the test communicator, it falls back to the ASGI ``send``.
A connection whose backlog passes ``MAX_BACKLOG_BYTES`` is reported slow.

What a terminal sends is bounded too: its frames (pings included) are counted
against ``MAX_INBOUND_RATE``, its pongs queue in its backlog like any frame, and
under daphne its socket is not read while Twisted's write buffer for it is full,
so a terminal that sends without reading cannot make the node buffer answers.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .conf import conf
from .ids import ClientId
from .protocol import MAX_INBOUND_BYTES, CloseCode, ws_text_frame

if TYPE_CHECKING:
    from channels.generic.websocket import AsyncWebsocketConsumer


#: Frames a terminal gets handled in a row before others get the loop (see :meth:`Connection.pace`).
INBOUND_BATCH = 50
#: Bytes Twisted reads from a terminal at once, and buffers for it before it pushes back (its default
#: is 64 KiB). Terminals send small frames only; from a flooding one, 64 KiB are thousands that
#: autobahn parses in one go, holding up every other socket of the node for tens of ms.
TRANSPORT_BUFFER = 16384
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


#: The connection of each protocol whose pings and pongs it counts (see :func:`count_control_frames`),
#: held weakly both ways: the connection holds its protocol, so a strong value would keep both forever.
_counted: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()
_counting_classes: dict[type, type | None] = {}


def count_control_frames(protocol: Any, connection: Any) -> bool:
    """Have ``connection.admit()`` count the WebSocket pings and pongs of the autobahn ``protocol``
    (its ``onPing`` and ``onPong`` hooks) before they are handled; False if it has no such hooks.

    The protocol becomes an instance of a cached subclass that counts them: hooks set on each
    protocol instead grew every one of them by 1.4 KB.
    """
    counting = _counting_class(type(protocol))
    if counting is None:
        return False
    _counted[protocol] = weakref.ref(connection)
    protocol.__class__ = counting
    return True


def _counting_class(base: type) -> type | None:
    """A subclass of the protocol class ``base`` whose ``onPing`` and ``onPong`` first count the frame
    against its connection's rate; None if ``base`` has not both hooks."""
    if base not in _counting_classes:
        hooks = [getattr(base, name, None) for name in ("onPing", "onPong")]
        _counting_classes[base] = None if not all(callable(h) for h in hooks) else type(
            f"Counting{base.__name__}", (base,), {"onPing": _counted_hook(hooks[0]), "onPong": _counted_hook(hooks[1])})
    return _counting_classes[base]


def _counted_hook(handler: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    def counted(protocol: Any, payload: bytes) -> None:
        held = _counted.get(protocol)
        connection = held() if held is not None else None
        if connection is None or connection.admit():
            handler(protocol, payload)

    return counted


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


def daphne_protocol(send: Callable[..., Any]) -> Any | None:
    """The autobahn protocol behind daphne's ASGI ``send``, or None for any other server.

    daphne >= 3.0.2 passes ``functools.partial(Server.handle_reply, protocol)``;
    channels' session middleware may wrap it (``real_send``).
    """
    while hasattr(getattr(send, "__self__", None), "real_send"):
        send = send.__self__.real_send  # type: ignore[attr-defined]
    if not (isinstance(send, functools.partial) and send.args and getattr(send.func, "__name__", "") == "handle_reply"):
        return None
    if type(getattr(send.func, "__self__", None)).__module__ != "daphne.server":
        return None
    protocol = send.args[0]
    if not all(hasattr(protocol, attr) for attr in ("state", "STATE_OPEN", "transport")):
        return None
    return protocol


class Connection:
    """A live socket of one client on this node, with its bounded backlog."""

    __slots__ = ("consumer", "client_id", "meta", "id", "closed", "accepted", "slow", "paused", "on_resume", "_pending",
                 "_pending_bytes", "_protocol", "_inbound", "_reads", "_handled", "__weakref__")

    def __init__(self, consumer: AsyncWebsocketConsumer, client_id: ClientId, meta: str) -> None:
        self.consumer = consumer
        self.client_id = client_id
        self.meta = meta
        self.id = ""  # unique across nodes, given by the node that attaches it: presence is kept per id
        self.closed = False
        self.accepted = False
        self.slow = False
        self.paused = False
        self.on_resume: Callable[[Connection], None] | None = None
        self._pending: list[Frame] = []
        self._pending_bytes = 0
        self._inbound = TokenBucket(conf.MAX_INBOUND_RATE, time.monotonic())
        self._reads: Any | None = None  # the transport, if this connection may pause reading it
        self._handled = 0
        self._protocol = daphne_protocol(consumer.base_send)
        if self._protocol is not None:
            self._watch_backpressure()
            # Pings and pongs count against the rate as the other frames: else only the pause in
            # reading bounds what pongs to pings cost, and nothing the parsing of unasked pongs.
            count_control_frames(self._protocol, self)
            self._refuse_long_frames()

    def _watch_backpressure(self) -> None:
        """Be the transport's push producer, so Twisted says when its buffer is over ``TRANSPORT_BUFFER``.

        daphne upgrades the socket from an HTTP connection whose ``HTTPChannel`` is still
        the registered producer, long after the HTTP exchange ended; it would only stop
        reading the socket while writes are blocked. It is replaced: without a producer of
        its own the node would never hear of a terminal that stopped reading, and Twisted's
        buffer would grow without bound. It keeps what the channel did, though: while the
        buffer is full the socket is not read, or each ping read would be answered into it.
        """
        transport = self._protocol.transport
        if all(callable(getattr(transport, name, None)) for name in ("pauseProducing", "resumeProducing")):
            self._reads = transport  # Twisted's transports are push producers of what they read
        if isinstance(getattr(transport, "bufferSize", None), int):
            transport.bufferSize = TRANSPORT_BUFFER
        if transport.producer is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)

    def _refuse_long_frames(self) -> None:
        """Have autobahn refuse (close 1009) a frame or message longer than any a terminal may send,
        as soon as its header says so.

        daphne allows 1 MiB, and autobahn keeps what arrived of a frame until it is whole: a
        terminal that announces one and stops costs the node that much memory. The bound stays
        above ``MAX_INBOUND_BYTES``, so a frame a little too long still gets freeim's 4003.
        """
        limit = 4 * MAX_INBOUND_BYTES
        for option in ("maxFramePayloadSize", "maxMessagePayloadSize"):
            if isinstance(getattr(self._protocol, option, None), int):
                setattr(self._protocol, option, limit)

    # Twisted's IPushProducer, duck-typed (no zope or Twisted import outside daphne).
    def pauseProducing(self) -> None:
        self.paused = True
        if self._reads is not None:
            self._reads.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        if self._reads is not None:
            self._reads.resumeProducing()
        if self.on_resume is not None:
            self.on_resume(self)

    def stopProducing(self) -> None:
        self.paused = True

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
        if self.paused and self._reads is None:
            self.close_soon(CloseCode.SLOW_CONSUMER)
            return False
        return True

    async def pace(self) -> None:
        """Every ``INBOUND_BATCH`` frames handled, let the loop serve the others, this socket unread meanwhile.

        daphne queues every frame of what it read at once (up to ``TRANSPORT_BUFFER``: hundreds
        of small frames), and the consumer would handle them all in one step of the loop, holding
        up every other socket. Unread while it waits its turn, the socket cannot queue more.
        """
        self._handled += 1
        if self._handled < INBOUND_BATCH:
            return
        self._handled = 0
        reads = None if self.paused else self._reads  # paused: Twisted resumes reading once its buffer drains
        if reads is not None:
            reads.pauseProducing()
        try:
            await asyncio.sleep(0)
        finally:
            if reads is not None and reads is self._reads and not self.paused:
                reads.resumeProducing()

    def enqueue(self, frame: Frame, limit: int) -> bool:
        """Queue ``frame``; past ``limit`` drop the backlog, stop queueing and return False.

        The caller then closes the connection: a terminal that cannot keep up gets
        a close code to reconnect with, not a stream with holes in it.
        """
        if self.closed or self.slow:
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
        protocol = self._protocol
        if protocol is None:
            return False
        if protocol.state != protocol.STATE_OPEN:
            self._pending.clear()
            return True
        if not self.paused:
            frames, self._pending, self._pending_bytes = self._pending, [], 0
            protocol.transport.write(b"".join(f.wire for f in frames))
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
            self._stop_writing()
            await self.consumer.close(code=int(code))  # autobahn accepts exactly int, not an IntEnum

    def close_soon(self, code: int) -> None:
        """:meth:`close` a terminal that floods, from synchronous code (a Twisted callback).

        Its socket is not read any more: under daphne each read parses hundreds of frames at
        once, all for nothing now. Its close reply is not awaited then; autobahn drops the
        connection a second after its close frame.
        """
        if not self.closed:
            self._stop_writing()
            if self._reads is not None:
                self._reads.pauseProducing()
                self._reads = None
            task = asyncio.get_running_loop().create_task(self.consumer.close(code=int(code)))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    def _stop_writing(self) -> None:
        self.closed = True
        self._pending.clear()
