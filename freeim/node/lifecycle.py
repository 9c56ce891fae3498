"""Starting and stopping this process's node with the server.

daphne has no ASGI lifespan, so :func:`install_server_hooks` has its adapter
(:func:`freeim.servers.daphne.run_with_reactor`) start the node when Twisted's
reactor runs and stop it before it shuts down; servers with lifespan (uvicorn,
hypercorn) use :func:`freeim.asgi.wrap`'s handler. Either way the first
WebSocket starts the node if nothing else did. A node of a cluster drains on SIGTERM before the server stops
(:mod:`freeim.servers.signals`).
"""

from __future__ import annotations

import asyncio

from django.core.exceptions import ImproperlyConfigured

from ..backends import get_backend, host_here
from ..conf import conf
from ..servers import daphne, signals
from .runtime import Node

_node: Node | None = None
_started: asyncio.Task[None] | None = None


async def ensure_node() -> Node:
    """The node of the running loop and current settings, started once (concurrent callers wait for it)."""
    global _node, _started
    if not conf.IS_NODE:
        raise ImproperlyConfigured(f"This process is not a freeim node: FREEIM['SERVER'] ({conf.SERVER!r}) "
                                   "is not in FREEIM['SERVERS'].")
    host_here()  # a node runs here (not merely an imported application): this process holds the embedded state
    loop, backend = asyncio.get_running_loop(), get_backend()
    node, started = _node, _started
    if node is None or started is None or node.loop is not loop or node.backend is not backend \
            or node.name != conf.SERVER:
        node = _node = Node(conf.SERVER, backend, conf.MAX_BACKLOG_BYTES)
        started = _started = loop.create_task(node.start())
    try:
        await asyncio.shield(started)  # a caller that is cancelled does not cancel the start
    except Exception:
        if _node is node and started.done():  # the start failed: the next caller tries again
            _node = _started = None
        raise
    if conf.DRAIN_GRACE and not backend.process_local:  # an embedded node has nowhere to move its terminals to
        signals.drain_first(drain_node)
    return node


async def drain_node() -> None:
    """Move this process's node's terminals to other nodes (SIGTERM: :mod:`freeim.servers.signals`)."""
    node = current_node()
    if node is not None:
        await node.drain(conf.DRAIN_GRACE)


def current_node() -> Node | None:
    """This process's node if one started on the running loop (a probe's answer reads it)."""
    node, started = _node, _started
    if node is None or started is None or not started.done() or started.cancelled() or started.exception():
        return None
    return node if node.loop is asyncio.get_running_loop() else None


async def stop_node() -> None:
    """Stop this process's node, if one runs on this loop."""
    global _node
    node, _node = _node, None
    if node is not None and node.loop is asyncio.get_running_loop():
        await node.stop()


def install_server_hooks() -> None:
    """Under daphne, start the node with the reactor and stop it before shutdown."""
    if conf.IS_NODE:
        daphne.run_with_reactor(ensure_node, stop_node, conf.HANDSHAKE_TIMEOUT)
