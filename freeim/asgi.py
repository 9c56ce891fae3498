"""ASGI glue for a project's ``asgi.py``.

    application = freeim.asgi.wrap(ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": URLRouter(freeim.asgi.websocket_urlpatterns()),
    }))
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.urls import URLPattern, path

from .conf import conf
from .consumer import FreeIMConsumer
from .lifecycle import ensure_node, install_server_hooks, stop_node

ASGIApp = Any


def websocket_urlpatterns() -> list[URLPattern]:
    """The route of freeim's consumer at ``FREEIM['PATH']``."""
    return [path(conf.PATH.lstrip("/"), FreeIMConsumer.as_asgi())]


def wrap(application: ASGIApp) -> ASGIApp:
    """Add node start/stop to ``application``: ASGI lifespan, plus daphne's reactor hooks."""
    install_server_hooks()

    @markcoroutinefunction  # servers see an ASGI 3 app...
    def app(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # ...that is a plain function handing back the inner coroutine: no frame of
        # its own stays on the stack of every open socket.
        if scope["type"] != "lifespan":
            return application(scope, receive, send)
        return _lifespan(receive, send)

    return app


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
