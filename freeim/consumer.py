"""The WebSocket consumer: token check at the handshake, register, ping/pong, close codes.

It takes no channel layer (each one costs a task and ~4 KiB per socket, and
freeim never delivers through it): the node writes to its connections directly.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from . import ids, protocol
from .conf import conf
from .connection import Connection, Frame
from .exceptions import InvalidClientId, StoreUnavailable, TooManyConnections
from .lifecycle import ensure_node
from .node import Node

logger = logging.getLogger(__name__)
PONG = Frame(protocol.PONG)


class FreeIMConsumer(AsyncWebsocketConsumer):
    """One terminal's socket. Rejects (HTTP 403) a missing, unknown, expired or reused token."""

    channel_layer = None  # never set up: see __call__
    connection: Connection | None = None
    node: Node | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = query.get("token", [""])[0]
        if not conf.IS_NODE:  # a business process in a cluster: terminals connect to the nodes
            await self.close()
            return
        try:
            node = await ensure_node()
        except StoreUnavailable as error:  # the node could not start: refused (HTTP 403), tried again later
            logger.warning("freeim: handshake refused, the node cannot start: %s", error)
            await self.close()
            return
        if not await node.admit_handshake():
            node.refused()
            await self.close()  # refused (HTTP 403): the terminal backs off and retries with a fresh token
            return
        try:
            record = await node.backend.store.redeem_token(token) if token else None
            if record is None or record.get("server") != node.name:
                node.refused()
                await self.close()
                return
            # Registered before the handshake completes, so the client is online in the store
            # by the time the terminal sees the socket open (a join right after open works);
            # frames for it wait in its backlog until it is accepted.
            self.node = node
            # The canonical form, as every payload names it ("42" is 42), whoever made the token.
            self.connection = Connection(self, ids.client_id(record["client_id"]), record.get("meta", ""))
            await node.attach(self.connection)
        except TooManyConnections:  # not attached: nothing to detach
            self.connection = None
            node.refused()
            await self.accept()  # a close code tells the terminal why, where a refused handshake cannot
            await self.close(code=int(protocol.CloseCode.TOO_MANY_CONNECTIONS))
            return
        except (StoreUnavailable, InvalidClientId) as error:  # the token cannot be checked, names no client id,
            # or the client cannot be registered
            logger.warning("freeim node %s: handshake refused: %s", node.name, error)
            if self.connection is not None:
                await node.detach(self.connection)  # whatever part of it was registered
                self.connection = None
            node.refused()
            await self.close()  # HTTP 403, as for a bad token: the terminal backs off and tries again
            return
        finally:
            node.handshakes.release()
        await self.accept()
        node.activate(self.connection)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Handle the socket's events one after the other.

        channels' loop (``await_many_dispatch``) also listens to a channel layer, so it
        starts a task and an ``asyncio.wait`` per event; with no layer, awaiting
        ``receive`` directly saves an idle socket that task and its waiter.

        If the consumer crashes or is cancelled (daphne cancels a handshake that takes
        too long), its connection is detached here, since ``disconnect`` will not run.
        At server shutdown the node's bulk cleanup does that instead.
        """
        self.scope = scope
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except BaseException:
            if self.connection is not None and self.node is not None and not self.node.stopping:
                await self.node.detach(self.connection)
            raise

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler directly: channels' dispatch first hops to the sync thread to close
        old database connections, and this consumer never touches the database."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Count each frame against ``MAX_INBOUND_RATE`` before handling it (over it: closed with 4005),
        and let other sockets have the loop between runs of frames (:meth:`Connection.pace`)."""
        if self.connection is None or self.connection.admit():
            await super().websocket_receive(message)
        if self.connection is not None:
            await self.connection.pace()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            kind = protocol.parse_inbound(text_data, bytes_data)
        except ValueError as error:
            if self.connection is not None:  # frames only arrive on an accepted socket, which has one
                await self.connection.close(error.args[0])
            return
        if kind == "ping" and self.connection is not None and self.node is not None:
            await self.connection.reply(PONG, self.node.backlog_limit)  # in the backlog, as any frame

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """channels' version also closes stale database connections in a worker thread,
        a thread hop per closed socket; this consumer keeps none open."""
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if self.connection is not None and self.node is not None:
            await self.node.detach(self.connection)
