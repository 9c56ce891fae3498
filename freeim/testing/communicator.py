"""A terminal for tests: ``FreeIMCommunicator`` connects through the real token flow (channels' test
communicator, no server) and reads freeim's JSON frames."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import urlsplit

from channels.routing import get_default_application
from channels.testing import WebsocketCommunicator

from .. import im


class FreeIMCommunicator(WebsocketCommunicator):  # type: ignore[misc]  # channels has no type hints
    """A WebSocket test client for the URL :func:`freeim.im.prev_connect_server` returned."""

    def __init__(self, application: Any, url: str) -> None:
        parts = urlsplit(url)
        super().__init__(application, f"{parts.path}?{parts.query}")

    @classmethod
    async def open(cls, application: Any, client_id: Any, meta: str = "", since: str | None = None,
                   chans_since: dict[str, str] | None = None, join: list[str] | None = None) -> FreeIMCommunicator:
        """Issue a token for ``client_id`` and connect (joining ``join``, resuming its inbox and chans after
        ``since`` and ``chans_since``, if given); raise ``AssertionError`` if rejected."""
        url = await im.aprev_connect_server(client_id, meta, base="ws://testserver", since=since,
                                            chans_since=chans_since, join=join)
        communicator = cls(application, url)
        accepted, _ = await communicator.connect()
        assert accepted, f"freeim rejected the connection of {client_id!r}"
        return communicator

    async def receive_frame(self, timeout: float = 1) -> dict[str, Any]:
        """The next frame, decoded; ``TimeoutError`` if none comes within ``timeout`` seconds (the application is
        then stopped, as channels' communicator does: the terminal is done)."""
        return cast(dict[str, Any], json.loads(await self.receive_from(timeout)))

    async def receive_close(self, timeout: float = 1) -> int:
        """Wait for the server to close the socket; return the close code."""
        message = await self.receive_output(timeout)
        assert message["type"] == "websocket.close", f"expected a close, got {message!r}"
        return int(message.get("code", 1000))


@contextlib.asynccontextmanager
async def connected(application: Any, client_id: Any, meta: str = "", since: str | None = None,
                    chans_since: dict[str, str] | None = None,
                    join: list[str] | None = None) -> AsyncIterator[FreeIMCommunicator]:
    """A connected :class:`FreeIMCommunicator` on ``application``, disconnected on exit."""
    communicator = await FreeIMCommunicator.open(application, client_id, meta, since, chans_since, join)
    try:
        yield communicator
    finally:
        if not communicator.future.done():  # a receive that timed out cancelled it: its error is the one to see
            await communicator.disconnect()


def terminal(client_id: Any, meta: str = "", since: str | None = None, chans_since: dict[str, str] | None = None,
             join: list[str] | None = None) -> contextlib.AbstractAsyncContextManager[FreeIMCommunicator]:
    """:func:`connected` on the project's own application (``settings.ASGI_APPLICATION``)."""
    return connected(get_default_application(), client_id, meta, since, chans_since, join)
