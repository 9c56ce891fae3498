"""The WebSocket consumer: token check at the handshake, register, ping/pong, close codes.

It takes no channel layer (each one costs a task and ~4 KiB per socket, and
freeim never delivers through it): the node writes to its connections directly
(the loop without a layer: :mod:`freeim.servers.channels`).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from .. import ids, protocol
from ..conf import conf
from ..exceptions import InvalidClientId, StoreUnavailable, TooManyConnections
from ..logs import fields
from ..servers.channels import LeanWebsocketConsumer
from .connection import Connection, Frame, log_close
from .lifecycle import ensure_node
from .runtime import HANDSHAKE_WAIT, Node
from .tally import TALLY

logger = logging.getLogger("freeim.connections")
PONG = Frame(protocol.PONG)


class FreeIMConsumer(LeanWebsocketConsumer):
    """One terminal's socket. Rejects (HTTP 403) a missing, unknown, expired or reused token.

    Every refusal and every close the node starts is logged on ``freeim.connections`` with the node's
    name and, where the token named one, the client id; never the token, which is the client's
    credential for ``TOKEN_TTL`` seconds.
    """

    connection: Connection | None = None
    node: Node | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = query.get("token", [""])[0]
        if not conf.IS_NODE:  # a business process in a cluster: terminals connect to the nodes
            await self._refuse(None, "no_node", logging.WARNING, "this process is not a node (FREEIM['SERVER'] %r is "
                               "not in SERVERS): terminals must connect to the URL connect/ gives", conf.SERVER)
            return
        try:
            node = await ensure_node()
        except StoreUnavailable as error:  # the node could not start: refused (HTTP 403), tried again later
            await self._refuse(None, "store", logging.WARNING, "the node cannot start: %s", error)
            return
        if node.draining:  # connect/ sends no terminal here now: a token issued just before, or the last node
            await self._refuse(node, "draining", logging.INFO, "the node is draining")
            return
        if not await node.admit_handshake():  # the terminal backs off and retries with a fresh token
            await self._refuse(node, "busy", logging.INFO, "busy: no handshake slot came free within %s s",
                               HANDSHAKE_WAIT)
            return
        try:
            record = await node.backend.store.redeem_token(token) if token else None
            if record is None:
                await self._refuse(node, "token", logging.INFO,
                                   "unknown, expired or used token" if token else "no token")
                return
            if record.get("server") != node.name:
                await self._refuse(node, "wrong_node", logging.INFO, "the token of client %r is for node %s",
                                   record.get("client_id"), record.get("server"))
                return
            # Registered before the handshake completes, so the client is online in the store
            # by the time the terminal sees the socket open (a join right after open works);
            # frames for it wait in its backlog until it is accepted.
            self.node = node
            # The canonical form, as every payload names it ("42" is 42), whoever made the token.
            self.connection = Connection(self, ids.client_id(record["client_id"]), record.get("meta", ""),
                                         record.get("since"), record.get("chans_since"), record.get("join"))
            await node.attachments.attach(self.connection)
        except TooManyConnections:  # not attached: nothing to detach
            refused, self.connection = self.connection, None
            node.refused()
            await self.accept()  # a close code tells the terminal why, where a refused handshake cannot
            code = protocol.CloseCode.TOO_MANY_CONNECTIONS
            log_close(node.name, refused.client_id if refused is not None else None, code)
            await self.close(code=int(code))
            return
        except (StoreUnavailable, InvalidClientId) as error:  # the token cannot be checked, names no client id,
            # or the client cannot be registered
            if self.connection is not None:
                await node.attachments.detach(self.connection)  # whatever part of it was registered
                self.connection = None
            # HTTP 403, as for a bad token: the terminal backs off and tries again
            await self._refuse(node, "store", logging.WARNING, "%s", error)
            return
        finally:
            node.handshakes.release()
        await self.accept()
        TALLY.handshakes += 1
        node.delivery.activate(self.connection)
        self.forget_scope()  # all it needed was the token and the peer's address, for refusals
        if node.draining:  # the drain began during the handshake, after it closed the sockets open then
            await self.connection.close(protocol.CloseCode.NODE_DRAINING)
            return
        if not logger.isEnabledFor(logging.DEBUG):  # a connect storm builds no line nor its fields for nothing
            return
        client_id, own = self.connection.client_id, len(node.registry.clients.get(self.connection.client_id, ()))
        logger.debug("freeim node %s: client %r connected; sockets here: %d of its own, %d in all", node.name,
                     client_id, own, node.registry.connection_count,
                     extra=fields("connect", node.name, client_id=client_id, sockets=own))

    async def _refuse(self, node: Node | None, kind: str, level: int, why: str, *args: object) -> None:
        """Refuse the handshake (HTTP 403), count it under ``kind`` and log why at ``level``."""
        TALLY.refusals[kind] += 1
        peer = (self.scope.get("client") or ("an unknown address",))[0]
        name = node.name if node is not None else conf.SERVER
        logger.log(level, f"freeim node %s: refused a handshake from %s: {why}", name, peer, *args,
                   extra=fields("refuse", name, peer=peer, reason=why % args))
        if node is not None:
            node.refused()
        await self.close()

    async def ended_abruptly(self) -> None:
        """The consumer crashed or was cancelled: detach its connection (at server shutdown the node's
        bulk cleanup does that instead; while it drains, the detach keeps the client's presence)."""
        if self.connection is not None and self.node is not None and not self.node.stopping:
            await self.node.attachments.detach(self.connection)

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

    async def disconnect(self, code: int) -> None:
        if self.connection is not None and self.node is not None:
            await self.node.attachments.detach(self.connection)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("freeim node %s: client %r disconnected with %s; sockets here: %d in all",
                             self.node.name, self.connection.client_id, code, self.node.registry.connection_count,
                             extra=fields("disconnect", self.node.name, client_id=self.connection.client_id, code=code))
