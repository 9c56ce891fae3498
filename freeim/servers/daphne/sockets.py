"""One daphne WebSocket as the node uses it: direct writes to its Twisted transport, read pauses,
frame limits and counted control frames, all on autobahn's and Twisted's objects.

daphne hands the consumer ``functools.partial(Server.handle_reply, protocol)`` as its ASGI
``send``; behind it are the autobahn protocol and its Twisted transport. Writing a frame's
bytes to the transport at once is measured 10x faster than ``send`` per frame. Every object is
shape-checked before use; where a check fails the connection goes through ASGI ``send``.

Twisted's ``write`` only buffers: each socket written to then costs the loop a writer registered, a
callback on its next turn, the ``send`` and the writer removed (three system calls and a callback where one
system call does: most of a broadcast to 5,000, measured 285 ms against 87-108 ms sent at once). So where
Twisted holds nothing unsent for a plain TCP socket, a frame is sent at once with the transport's own
``writeSomeData`` (what its ``doWrite`` calls), and only what the kernel does not take is left to ``write``, as
asyncio's transports do.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from ...protocol import MAX_INBOUND_BYTES
from .footprint import lean_class, lighten_queue, slim

#: Bytes Twisted reads from a terminal at once, and buffers for it before it pushes back (its default
#: is 64 KiB). Terminals send small frames only; from a flooding one, 64 KiB are thousands that
#: autobahn parses in one go, holding up every other socket of the node for tens of ms.
TRANSPORT_BUFFER = 16384
#: The longest frame or message autobahn lets a terminal start: above ``MAX_INBOUND_BYTES``, so a frame a
#: little too long still gets freeim's 4003 (:meth:`DaphneSocket._refuse_long_frames`).
FRAME_LIMIT = 4 * MAX_INBOUND_BYTES


class Owner(Protocol):
    """The node's connection behind a socket: told when Twisted's buffer fills and drains, and asked
    whether each frame from the terminal may be handled."""

    paused: bool

    def admit(self) -> bool: ...

    def resumed(self) -> None: ...


def protocol_behind(send: Callable[..., Any]) -> Any | None:
    """The autobahn protocol behind daphne's ASGI ``send``, or None for any other server.

    daphne >= 3.0.2 passes ``functools.partial(Server.handle_reply, protocol)``; channels'
    session middleware may wrap it (``real_send``).
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


class DaphneSocket:
    """A daphne WebSocket's transport, written to directly; Twisted's push producer for it."""

    __slots__ = ("protocol", "transport", "owner", "reads", "sends_at_once")

    def __init__(self, protocol: Any, owner: Owner) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.owner = owner
        #: The transport, while this socket may pause reading it (Twisted's transports are push
        #: producers of what they read); None once it may not.
        self.reads: Any | None = None
        #: Whether a frame may go out at once while Twisted holds nothing unsent (:meth:`write`).
        self.sends_at_once = sends_at_once(self.transport)
        self._watch_backpressure()

    def opened(self) -> None:
        """The handshake is done: bound the socket's frames, count its pings and pongs against its owner's
        rate, and drop what the handshake left (:mod:`.footprint`)."""
        protocol = self.protocol
        if protocol.state != protocol.STATE_OPEN:
            return  # closed meanwhile
        self._refuse_long_frames()
        # Pings and pongs count against the rate as the other frames: else only the pause in
        # reading bounds what pongs to pings cost, and nothing the parsing of unasked pongs.
        count_control_frames(protocol, self.owner)
        lighten_queue(getattr(protocol, "application_queue", None))

    def _watch_backpressure(self) -> None:
        """Be the transport's push producer, so Twisted says when its buffer is over ``TRANSPORT_BUFFER``.

        daphne upgrades the socket from an HTTP connection whose ``HTTPChannel`` is still
        the registered producer, long after the HTTP exchange ended; it would only stop
        reading the socket while writes are blocked. It is replaced: without a producer of
        its own the node would never hear of a terminal that stopped reading, and Twisted's
        buffer would grow without bound. It keeps what the channel did, though: while the
        buffer is full the socket is not read, or each ping read would be answered into it.
        """
        transport = self.transport
        if all(callable(getattr(transport, name, None)) for name in ("pauseProducing", "resumeProducing")):
            self.reads = transport
        if isinstance(getattr(transport, "bufferSize", None), int):
            transport.bufferSize = TRANSPORT_BUFFER
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)

    def _refuse_long_frames(self) -> None:
        """Have autobahn refuse (close 1009) a frame or message longer than any a terminal may send,
        as soon as its header says so.

        daphne allows 1 MiB, and autobahn keeps what arrived of a frame until it is whole: a
        terminal that announces one and stops costs the node that much memory. The bound stays
        above ``MAX_INBOUND_BYTES``, so a frame a little too long still gets freeim's 4003.
        """
        for option in ("maxFramePayloadSize", "maxMessagePayloadSize"):
            if isinstance(getattr(self.protocol, option, None), int):
                setattr(self.protocol, option, FRAME_LIMIT)

    def is_open(self) -> bool:
        return bool(self.protocol.state == self.protocol.STATE_OPEN)

    def write(self, data: bytes) -> None:
        """Write ``data`` after what Twisted holds: sent at once when it holds nothing (module docstring)."""
        transport = self.transport
        if self.sends_at_once and not transport.dataBuffer and not transport._tempDataLen \
                and not transport.disconnecting and transport.connected:
            sent = transport.writeSomeData(data)  # bytes sent, 0 when the kernel takes none, or an error
            if isinstance(sent, int) and sent >= 0:
                if sent == len(data):
                    return
                data = data[sent:]
            # An error (the connection is lost) goes through write all the same: Twisted meets it again as it
            # writes, and closes the connection as it would have.
        transport.write(data)

    def pause_reading(self) -> bool:
        """Stop reading the socket for now; False if it cannot be paused."""
        if self.reads is None:
            return False
        self.reads.pauseProducing()
        return True

    def resume_reading(self) -> None:
        if self.reads is not None:
            self.reads.resumeProducing()

    def stop_reading(self) -> None:
        """Never read the socket again (it is closing)."""
        self.pause_reading()
        self.reads = None

    # Twisted's IPushProducer, duck-typed (no zope or Twisted import here).
    def pauseProducing(self) -> None:
        self.owner.paused = True
        self.pause_reading()

    def resumeProducing(self) -> None:
        self.owner.paused = False
        self.resume_reading()
        self.owner.resumed()

    def stopProducing(self) -> None:
        self.owner.paused = True


def sends_at_once(transport: Any) -> bool:
    """Whether ``transport`` is Twisted's plain TCP server transport, shaped as :meth:`DaphneSocket.write` uses it:
    its unsent bytes in ``dataBuffer`` and ``_tempDataLen``, and ``writeSomeData``. Not under TLS, whose transport
    must encrypt what it sends."""
    cls = type(transport)
    return (cls.__module__ == "twisted.internet.tcp" and cls.__name__ == "Server"
            and not getattr(transport, "TLS", True)
            and isinstance(getattr(transport, "dataBuffer", None), bytes)
            and isinstance(getattr(transport, "_tempDataLen", None), int)
            and all(isinstance(getattr(transport, name, None), bool | int) for name in ("connected", "disconnecting"))
            and callable(getattr(transport, "writeSomeData", None)))


def count_control_frames(protocol: Any, owner: Owner) -> bool:
    """Have ``owner.admit()`` count the WebSocket pings and pongs of the open autobahn ``protocol`` (its
    ``onPing`` and ``onPong`` hooks) before they are handled; False if it has no such hooks (then it is
    left as it is).

    The protocol becomes an instance of a lean subclass of its class that counts them (hooks set on
    each protocol instead grew every one of them by 1.4 KB), holding its owner weakly (the owner holds
    its socket and protocol), and it sheds what it kept of its handshake (:func:`.footprint.slim`).
    """
    if "freeim_owner" in vars(protocol):
        return True  # already counted: its class counts once
    if not all(callable(getattr(type(protocol), name, None)) for name in ("onPing", "onPong")):
        return False
    lean = lean_class(protocol, _counting_hooks)
    if lean is None:
        return False
    protocol.freeim_owner = weakref.ref(owner)
    slim(protocol, lean)
    return True


def _counting_hooks(base: type) -> dict[str, Any]:
    return {"onPing": _counted_hook(base.onPing), "onPong": _counted_hook(base.onPong)}  # type: ignore[attr-defined]


def _counted_hook(handler: Any) -> Callable[[Any, bytes], None]:
    def counted(protocol: Any, payload: bytes) -> None:
        held = vars(protocol).get("freeim_owner")
        owner = held() if held is not None else None
        if owner is None or owner.admit():
            handler(protocol, payload)

    return counted
