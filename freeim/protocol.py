"""The wire protocol between a node and its terminals: frames and close codes.

Server to terminal, JSON text frames::

    {"type": "message", "id": <message id>, "from": <id>, "data": <json>}
    {"type": "chan", "chan": <name>, "from": <id>, "data": <json>}
    {"type": "broadcast", "data": <json>}
    {"type": "receipt", "id": <message id>, "to": <id>, "status": "delivered" | "offline"}
    {"type": "left", "chan": <name>}
    {"type": "pong"}

Terminal to server: ``{"type": "ping"}`` only. Other JSON objects are ignored
(so newer terminals can talk to older nodes); anything that is not a JSON object
closes the socket with :data:`CLOSE_PROTOCOL_ERROR`.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

from .exceptions import InvalidMessage
from .ids import ClientId


class CloseCode(enum.IntEnum):
    """Every close code a node sends; terminals decide on reconnecting by it."""

    #: ``force_offline`` closed every connection of the client. Do not reconnect.
    FORCED_OFFLINE = 4000
    #: The terminal sent a binary frame or text that is not a JSON object.
    PROTOCOL_ERROR = 4001
    #: The terminal read too slowly: its backlog passed ``MAX_BACKLOG_BYTES``.
    SLOW_CONSUMER = 4002
    #: The terminal sent a frame larger than ``MAX_INBOUND_BYTES``. (Not the standard 1009:
    #: autobahn, under daphne, lets an application send only 1000 and 3000-4999.)
    MESSAGE_TOO_BIG = 4003
    #: The handshake asked for a path no WebSocket route serves. Do not reconnect there.
    UNKNOWN_PATH = 4004
    #: The terminal sent frames faster than ``MAX_INBOUND_RATE`` per second.
    RATE_LIMITED = 4005
    #: The client id already holds ``MAX_CONNECTIONS_PER_CLIENT`` sockets.
    TOO_MANY_CONNECTIONS = 4006


RECEIPT_DELIVERED = "delivered"
RECEIPT_OFFLINE = "offline"
MAX_INBOUND_BYTES = 4096
PONG = '{"type":"pong"}'

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(frame: dict[str, Any]) -> str:
    """Encode a frame as compact JSON text; raise :class:`InvalidMessage` if it cannot be."""
    try:
        return _dumps(frame)
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"The message is not JSON-serialisable: {exc}") from None


def message_frame(message_id: str, sender: ClientId, data: Any) -> str:
    return encode({"type": "message", "id": message_id, "from": sender, "data": data})


def chan_frame(chan: str, sender: ClientId, data: Any) -> str:
    return encode({"type": "chan", "chan": chan, "from": sender, "data": data})


def broadcast_frame(data: Any) -> str:
    return encode({"type": "broadcast", "data": data})


def receipt_frame(message_id: str, receiver: ClientId, status: str) -> str:
    """A receipt names its message by id and never carries its payload: a receipt to each of
    many receivers would multiply it (a 60 KB message to 1,000 offline receivers made 67 MB)."""
    return encode({"type": "receipt", "id": message_id, "to": receiver, "status": status})


def left_frame(chan: str) -> str:
    """The client was taken out of ``chan`` (``leave_chan``, ``clear_chan_client``, a group's rules)."""
    return encode({"type": "left", "chan": chan})


def parse_inbound(text: str | None, binary: bytes | None) -> str | None:
    """Classify one terminal frame: ``"ping"``, ``None`` (ignore), or raise ``ValueError``.

    The ``ValueError`` carries the close code to use as its first argument.
    """
    if binary is not None or text is None:
        raise ValueError(CloseCode.PROTOCOL_ERROR)
    if len(text) > MAX_INBOUND_BYTES:
        raise ValueError(CloseCode.MESSAGE_TOO_BIG)
    try:
        frame = json.loads(text)
    except ValueError:
        raise ValueError(CloseCode.PROTOCOL_ERROR) from None
    if not isinstance(frame, dict):
        raise ValueError(CloseCode.PROTOCOL_ERROR)
    return "ping" if frame.get("type") == "ping" else None


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked RFC 6455 text frame (FIN set), as a server writes it."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
