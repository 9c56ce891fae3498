"""ASGI glue for a project's ``asgi.py``.

    application = freeim.asgi.wrap(ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": URLRouter(freeim.asgi.websocket_urlpatterns()),
    }))
"""

from __future__ import annotations

from typing import Any

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

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await application(scope, receive, send)
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

    return app
