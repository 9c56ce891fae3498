"""What daphne and autobahn keep for each open socket, cut down to what an open socket still uses.

Measured with tracemalloc over 1,000 idle sockets of a node (the bench's capacity scenario), each
held about 20.5 KB of Python objects, 8 KB of them in two things an open socket no longer needs:

* **The protocol's attributes** (3.3 KB of ``__dict__`` alone, ~100 entries): autobahn copies about
  30 options of its factory onto every protocol, and keeps what it parsed of the handshake (the raw
  request, its headers and query, the response). An open socket reads the options from its class
  instead (:func:`lean_class`), and its flags and Nones too, while they are the class's; the
  handshake's leftovers go (:data:`HANDSHAKE_LEFTOVERS`); its ``__dict__`` is rebuilt at the size the
  rest needs (:func:`slim`).
* **Deques** (760 B each, however few items: a deque allocates a block of 64 slots up front):
  daphne's input queue of the socket (an ``asyncio.Queue``: three deques, and an Event with a
  fourth) and autobahn's send queue. Those of an idle socket hold one waiter or nothing: lists do
  (:class:`Line`, :func:`lighten_queue`).

Every object is shape-checked first: what is not as expected is left as it is (heavier, as correct).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

#: What autobahn and daphne keep of the handshake on the protocol, and read during it only.
HANDSHAKE_LEFTOVERS = frozenset({
    "http_request_data", "http_response_data", "http_status_line", "http_request_uri", "http_request_host",
    "http_request_path", "http_request_params", "http_headers", "_wskey", "websocket_origin",
    "websocket_protocols", "websocket_extensions", "clean_headers", "application_deferred", "_raw_query_string",
})
#: Values an instance may share with its class by equality; anything else only if it is the same object.
_IMMUTABLE = (type(None), bool, int, float, str, bytes)
#: The values of an open socket that become its class's defaults.
_SCALARS = (type(None), bool, int)
#: Per factory, per protocol class: the lean subclass its open sockets become.
_classes: weakref.WeakKeyDictionary[Any, dict[type, type]] = weakref.WeakKeyDictionary()


class Line(list):  # type: ignore[type-arg]
    """A list that also answers ``popleft``: what asyncio's queues and autobahn's send queue ask of their
    deques, for a queue that mostly holds nothing (56 bytes empty, where a deque takes 760)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class Request:
    """What daphne reads of the handshake's request (autobahn's ``ConnectionRequest``, with every
    header) once the socket is open: its path, for its log lines."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def lean_class(protocol: Any, namespace: Callable[[type], dict[str, Any]]) -> type | None:
    """The subclass of ``protocol``'s class that the open sockets of its factory become: ``namespace(base)``,
    with defaults for what open sockets mostly hold alike: the factory's options (autobahn reads them
    from the class when the instance has none), and the flags, counters and Nones of ``protocol``, one
    open socket (most stay as they are until it closes). None if ``protocol`` has no factory.
    """
    base, factory = type(protocol), getattr(protocol, "factory", None)
    if factory is None:
        return None
    classes = _classes.setdefault(factory, {})
    if base not in classes:
        options = getattr(base, "CONFIG_ATTRS", ())
        # A callable option would become a method of the class; a method of the class stays one.
        defaults = {name: getattr(factory, name) for name in options
                    if hasattr(factory, name) and not callable(getattr(factory, name))}
        defaults.update({name: value for name, value in vars(protocol).items()
                         if type(value) in _SCALARS and not callable(getattr(base, name, None))})
        classes[base] = type(f"Lean{base.__name__}", (base,), {**defaults, **namespace(base)})
    return classes[base]


def slim(protocol: Any, lean: type) -> None:
    """Make the open ``protocol`` an instance of ``lean`` (:func:`lean_class`) that keeps only what differs
    from its class and what is read after the handshake, in a ``__dict__`` rebuilt at that size."""
    if isinstance(getattr(getattr(protocol, "request", None), "path", None), str):
        protocol.request = Request(protocol.request.path)
    if type(getattr(protocol, "send_queue", None)) is deque:
        protocol.send_queue = Line(protocol.send_queue)
    protocol.__class__ = lean
    defaults = vars(lean)
    # Built entry by entry, the new dict is sized for what it holds: a copy would keep the old one's size.
    protocol.__dict__ = {name: value for name, value in vars(protocol).items() if name not in HANDSHAKE_LEFTOVERS
                         and (name not in defaults or not _stands_for(defaults[name], value))}


def _stands_for(default: Any, value: Any) -> bool:
    """Whether a class's ``default`` stands for an instance's ``value``."""
    return default is value or (type(default) is type(value) and isinstance(value, _IMMUTABLE) and default == value)


def lighten_queue(queue: Any) -> bool:
    """Lists in place of the deques of daphne's input queue of a socket; False if it is not an unbounded
    ``asyncio.Queue`` shaped as expected (it is left as it is).

    Only daphne puts to it and only the socket's consumer gets from it: it holds a waiter or a few events.
    Nothing waits to put (it has no bound), or joins it: ``()`` stands for its putters, which are never
    appended to, and its Event (which ``put_nowait`` clears) keeps a list of the waiters it never has.
    """
    finished = getattr(queue, "_finished", None)
    if type(queue) is not asyncio.Queue or queue.maxsize != 0 or not isinstance(finished, asyncio.Event):
        return False
    held, event = vars(queue), vars(finished)
    deques = (held.get("_queue"), held.get("_getters"), held.get("_putters"), event.get("_waiters"))
    if not all(type(line) is deque for line in deques) or held["_putters"]:
        return False
    held["_queue"], held["_getters"], held["_putters"] = Line(held["_queue"]), Line(held["_getters"]), ()
    event["_waiters"] = Line(event["_waiters"])
    return True
