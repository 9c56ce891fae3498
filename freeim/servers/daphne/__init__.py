"""The daphne adapter: every reach into daphne's, Twisted's and autobahn's internals lives in this package.

=========================  ===============================================================
module                     what it does with their objects
=========================  ===============================================================
:mod:`.sockets`            writes frames straight to a socket's Twisted transport, pauses
                           reading it, bounds its frames, counts its pings and pongs
:mod:`.footprint`          sheds what daphne and autobahn keep of an open socket's handshake,
                           and the deques of its queues
:mod:`.admission`          stops accepting while the loop lags; drops stalled requests
:mod:`.autobahn_logging`   spares autobahn's per-connection debug formatting
this module                finds out whether those internals are as expected (versions and
                           features), and starts and stops the node with Twisted's reactor
=========================  ===============================================================

Each use is guarded: where a check fails, the node falls back to what any ASGI server offers
(``send`` per frame, no accept gate) and says so once at start (:func:`write_path`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .sockets import DaphneSocket, Owner, protocol_behind

#: The daphne major versions whose internals freeim was written and tested against.
KNOWN_DAPHNE = range(4, 5)
_background: set[asyncio.Future[Any]] = set()  # the loop keeps only weak references to tasks


def loaded() -> bool:
    """Whether this process is a daphne server: its server module and Twisted's reactor are loaded
    (the reactor may not run yet)."""
    return "daphne.server" in sys.modules and "twisted.internet.reactor" in sys.modules


def serving() -> bool:
    """Whether daphne serves this process now: loaded, and its reactor running (not merely imported)."""
    return loaded() and bool(getattr(sys.modules["twisted.internet.reactor"], "running", False))


@functools.cache
def unsupported() -> str | None:
    """Why daphne's internals cannot be used directly in this process; None if they can."""
    if not serving():
        return "the server is not daphne"
    try:
        found = version("daphne")
    except PackageNotFoundError:
        return "daphne's version is unknown"
    if int(found.split(".")[0]) not in KNOWN_DAPHNE:
        return f"daphne {found} is not a version freeim knows (4.x)"
    from autobahn.websocket.protocol import WebSocketProtocol
    from daphne.server import Server

    if list(inspect.signature(Server.handle_reply).parameters) != ["self", "protocol", "message"]:
        return f"daphne {found}'s Server.handle_reply is not handle_reply(protocol, message)"
    missing = [name for name in ("onPing", "onPong", "STATE_OPEN") if not hasattr(WebSocketProtocol, name)]
    if missing:
        return f"autobahn's WebSocketProtocol lacks {', '.join(missing)}"
    return None


def write_path() -> str:
    """How this process's node writes to its sockets, for the log line at its start."""
    reason = unsupported()
    if reason is None:
        return f"frames written to daphne's Twisted transports directly (daphne {version('daphne')})"
    return f"frames sent through ASGI send ({reason})"


def socket_for(send: Callable[..., Any], owner: Owner) -> DaphneSocket | None:
    """The direct-write socket behind the ASGI ``send`` of ``owner``'s consumer; None where there is
    none (another server, the test communicator) or daphne's internals are not as expected."""
    if unsupported() is not None:
        return None
    protocol = protocol_behind(send)
    return DaphneSocket(protocol, owner) if protocol is not None else None


def run_with_reactor(start: Callable[[], Awaitable[Any]], stop: Callable[[], Awaitable[None]],
                     handshake_timeout: float) -> bool:
    """Under daphne (which has no ASGI lifespan), run ``start`` once Twisted's reactor runs, guard the
    listening ports (:mod:`.admission`), and run ``stop`` before the reactor shuts down; False
    (nothing done) under any other server."""
    if not loaded():
        return False
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from .admission import guard_accepts
    from .autobahn_logging import format_only_when_debugging

    format_only_when_debugging()

    def started() -> None:
        for work in (start(), guard_accepts(reactor, handshake_timeout)):
            future = asyncio.ensure_future(work)
            _background.add(future)
            future.add_done_callback(_background.discard)

    def stopping() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(stop()))

    reactor.callWhenRunning(started)
    # Twisted declares it on a zope interface, whose methods have no self: mypy shifts the arguments.
    reactor.addSystemEventTrigger("before", "shutdown", stopping)  # type: ignore[arg-type]
    return True
