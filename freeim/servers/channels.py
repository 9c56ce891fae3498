"""The channels adapter: freeim's consumer loop in place of channels' own, where channels is a version it knows.

channels' ``AsyncConsumer.__call__`` also listens to a channel layer (``await_many_dispatch``
starts a task and an ``asyncio.wait`` per event), and its ``dispatch`` and
``websocket_disconnect`` hop to a worker thread to close old database connections. freeim's
consumer uses neither a layer nor the database, so :class:`LeanWebsocketConsumer` awaits
``receive`` itself and calls the handlers directly: an idle socket costs no task or waiter, a
closing one no thread hop. Where channels is not 4.x, or its consumer is not shaped as
expected, it leaves channels' own methods in charge (slower, just as correct). Its ``as_asgi``
adds no coroutine between the route and the consumer, and an open socket's consumer may let go of
its scope: an idle socket keeps neither.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from importlib.metadata import version
from types import MappingProxyType
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

#: The channels major versions whose consumer freeim was written and tested against.
KNOWN_CHANNELS = range(4, 5)
#: The scope of a consumer that let go of its own (:meth:`LeanWebsocketConsumer.forget_scope`).
NO_SCOPE: Mapping[str, Any] = MappingProxyType({})


@functools.cache
def lean() -> bool:
    """Whether channels is a version (and shape) whose consumer loop freeim may replace."""
    return int(version("channels").split(".")[0]) in KNOWN_CHANNELS \
        and list(inspect.signature(AsyncConsumer.__call__).parameters) == ["self", "scope", "receive", "send"]


class LeanWebsocketConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels has no type hints
    """channels' ``AsyncWebsocketConsumer`` without a channel layer (nor groups) or database cleanup."""

    channel_layer = None
    groups: tuple[str, ...] = ()  # channels gives each consumer a list of its own otherwise
    scope: Mapping[str, Any]

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any:
        """channels' ``as_asgi``, but the application it returns hands back the consumer's coroutine
        rather than awaiting it in one of its own, which each open socket kept (256 bytes)."""

        def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
            return cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        app._asgi_single_callable = True  # type: ignore[attr-defined]  # not an ASGI 2 app (asgiref's test)
        functools.update_wrapper(app, cls, updated=())
        return app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Handle the socket's events one after the other; on a crash or a cancellation (daphne cancels a
        handshake that takes too long) call :meth:`ended_abruptly` first, since ``disconnect`` will not run."""
        try:
            if not lean():
                await super().__call__(scope, receive, send)
                return
            self.scope = scope
            self.base_send = send
            del scope  # the consumer's is the reference it may drop (see :meth:`forget_scope`)
            try:
                while True:
                    await self.dispatch(await receive())
            except StopConsumer:
                pass
        except BaseException:
            await self.ended_abruptly()
            raise

    async def ended_abruptly(self) -> None:
        """The consumer crashed or was cancelled: clean up what ``disconnect`` would have."""

    def forget_scope(self) -> None:
        """Let go of the scope (the copy of it channels' URLRouter made, with the route's arguments) for the
        rest of the socket's life, once the consumer read what it needs of it."""
        self.scope = NO_SCOPE

    async def dispatch(self, message: dict[str, Any]) -> None:
        if not lean():
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if not lean():
            await super().websocket_disconnect(message)
            return
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()
