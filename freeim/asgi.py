"""ASGI glue for a project's ``asgi.py``.

    application = freeim.asgi.wrap(ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": URLRouter(freeim.asgi.websocket_urlpatterns()),
    }))
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from django.urls import URLPattern, path, re_path

from . import asgi_connect, request_threads
from .conf import conf
from .node import health
from .node.consumer import FreeIMConsumer
from .node.lifecycle import ensure_node, install_server_hooks, stop_node
from .protocol import CloseCode

#: An ASGI 3 application: ``await app(scope, receive, send)``.
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def websocket_urlpatterns(catch_all: bool = True) -> list[URLPattern]:
    """The route of freeim's consumer at ``FREEIM['PATH']``, then one for every other path that
    closes the socket with 4004 (:attr:`CloseCode.UNKNOWN_PATH`); list your own routes before these.

    Without the catch-all, channels' URLRouter raises on an unknown path: a 500 and a traceback.
    """
    routes = [path(conf.PATH.lstrip("/"), FreeIMConsumer.as_asgi())]
    # channels' URLRouter routes to ASGI apps where Django's patterns take views.
    return [*routes, re_path(r"", unknown_path)] if catch_all else routes  # type: ignore[arg-type]


async def unknown_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept the socket and close it with 4004: refusing the handshake would show the terminal an
    HTTP 403, which says nothing about why."""
    if (await receive())["type"] != "websocket.connect":
        return  # the client left before its handshake was handled
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": int(CloseCode.UNKNOWN_PATH)})  # autobahn wants an int


def wrap(application: ASGIApp) -> ASGIApp:
    """Add node start/stop to ``application`` (ASGI lifespan, plus daphne's reactor hooks), the node's
    health probes (:mod:`freeim.node.health`), kept threads for the sync code of HTTP requests
    (:mod:`freeim.request_threads`), and the connect route served in one call (:mod:`freeim.asgi_connect`)."""
    install_server_hooks()

    def app(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # A plain function handing back the inner coroutine: no frame of its own stays on the
        # stack of every open socket...
        if scope["type"] == "lifespan":
            return _lifespan(receive, send)
        if probe := health.probe_for(scope):  # before the project's routing: every node answers its probes
            return probe(scope, receive, send)
        if scope["type"] == "http":  # terminals' connect requests in one call on a thread (.asgi_connect)
            return _on_a_kept_thread(asgi_connect.handler() if asgi_connect.serves(scope) else application,
                                     scope, receive, send)
        return application(scope, receive, send)

    if sys.version_info >= (3, 12):
        return inspect.markcoroutinefunction(app)  # ...that servers see as an ASGI 3 app
    return _awaiting(app)


def _awaiting(app: ASGIApp) -> ASGIApp:
    """``app`` as an ``async def``, on Python 3.11: hypercorn tells ASGI from WSGI with
    ``inspect.iscoroutinefunction``, which sees no mark before 3.12 (asgiref's only marks it for
    asyncio's), so there each socket pays a coroutine frame."""

    async def awaiting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    return awaiting


async def _on_a_kept_thread(application: ASGIApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An HTTP request whose sync code runs on a thread kept from an earlier request (:mod:`.request_threads`)."""
    async with request_threads.borrowed():
        await application(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if conf.IS_NODE:
                await ensure_node()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_node()
            await send({"type": "lifespan.shutdown.complete"})
            return
