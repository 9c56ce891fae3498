"""The channels adapter: freeim's consumer loop in place of channels' own, where channels is a version it knows.

channels' ``AsyncConsumer.__call__`` also listens to a channel layer (``await_many_dispatch``
starts a task and an ``asyncio.wait`` per event), and its ``dispatch`` and
``websocket_disconnect`` hop to a worker thread to close old database connections. freeim's
consumer uses neither a layer nor the database, so :class:`LeanWebsocketConsumer` awaits
``receive`` itself and calls the handlers directly: an idle socket costs no task or waiter, a
closing one no thread hop. Where channels is not 4.x, or its consumer is not shaped as
expected, it leaves channels' own methods in charge (slower, just as correct).
"""

from __future__ import annotations

import functools
import inspect
from importlib.metadata import version
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

#: The channels major versions whose consumer freeim was written and tested against.
KNOWN_CHANNELS = range(4, 5)


@functools.cache
def lean() -> bool:
    """Whether channels is a version (and shape) whose consumer loop freeim may replace."""
    return int(version("channels").split(".")[0]) in KNOWN_CHANNELS \
        and list(inspect.signature(AsyncConsumer.__call__).parameters) == ["self", "scope", "receive", "send"]


class LeanWebsocketConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels has no type hints
    """channels' ``AsyncWebsocketConsumer`` without a channel layer or database cleanup."""

    channel_layer = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Handle the socket's events one after the other; on a crash or a cancellation (daphne cancels a
        handshake that takes too long) call :meth:`ended_abruptly` first, since ``disconnect`` will not run."""
        try:
            if not lean():
                await super().__call__(scope, receive, send)
                return
            self.scope = scope
            self.base_send = send
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
