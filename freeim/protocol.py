"""The wire protocol between a node and its terminals: frames and close codes.

Server to terminal, JSON text frames::

    {"type": "message", "id": <message id>, "pos": <position>, "from": <id>, "data": <json>}
    {"type": "chan", "chan": <name>, "pos": <position>, "from": <id>, "data": <json>}
    {"type": "broadcast", "data": <json>}
    {"type": "receipt", "id": <message id>, "to": <id>, "status": "delivered" | "offline" | "read"}
    {"type": "left", "chan": <name>}
    {"type": "gap", "since": <position>}  (and "chan": <name>, for a chan's stream)
    {"type": "pong"}

A message's position (``"<epoch>.<offset>"``) is its place in its receiver's inbox: a terminal
that reconnects with the last position it holds gets what came after, in order, once; a ``gap``
frame first when the inbox no longer holds all of that (trimmed, or Redis lost it: a new epoch).

Terminal to server: ``{"type": "ping"}`` only. Other JSON objects are ignored
(so newer terminals can talk to older nodes); anything that is not a JSON object
(or is nested deeper than :data:`MAX_JSON_DEPTH`) closes the socket with
:attr:`CloseCode.PROTOCOL_ERROR`. :func:`decode` parses REST bodies too.
"""

from __future__ import annotations

import enum
import json
import re
import struct
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .exceptions import InvalidMessage, NestingTooDeep
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
    #: The node is shutting down (a deploy): reconnect at once, with a fresh token, to another node. Within
    #: ``DRAIN_GRACE`` seconds the client's presence does not change: no offline, no online.
    NODE_DRAINING = 4007


RECEIPT_DELIVERED = "delivered"
RECEIPT_OFFLINE = "offline"
RECEIPT_READ = "read"
#: The largest text frame a terminal may send, in UTF-8 bytes.
MAX_INBOUND_BYTES = 4096
#: The deepest JSON a terminal or a REST body may send; the outermost array or object is level 1.
MAX_JSON_DEPTH = 64
PONG = '{"type":"pong"}'

_dumps: Callable[[Any], str] | None = None


def _encoder() -> Callable[[Any], str]:
    """``FREEIM['JSON_ENCODER']``'s compact ``encode``, built once per setting (it runs on every send)."""
    global _dumps
    if _dumps is None:
        from .conf import conf

        # allow_nan=False: NaN and Infinity are not JSON, and a terminal's JSON.parse fails on them.
        _dumps = import_string(conf.JSON_ENCODER)(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
    return _dumps


def _forget_encoder(setting: str, **kwargs: Any) -> None:
    global _dumps
    if setting == "FREEIM":
        _dumps = None


setting_changed.connect(_forget_encoder)


def encode(frame: dict[str, Any]) -> str:
    """Encode a frame as compact JSON text; raise :class:`InvalidMessage` if no terminal could read it.

    The text must be valid UTF-8 too (frames go out as UTF-8): a lone surrogate, which a
    JSON body can carry as ``"\\ud800"``, has no UTF-8 form, so it is refused here rather
    than failing later on the way to the sockets.
    """
    try:
        text = _encoder()(frame)
        if not text.isascii():
            text.encode()
    except UnicodeEncodeError:
        raise InvalidMessage("The message has a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot hold.") from None
    except RecursionError:
        raise InvalidMessage("The message is nested too deeply to encode.") from None
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"The message is not JSON-serialisable: {exc}") from None
    return text


def as_terminals_read(message: Any) -> Any:
    """``message`` as a terminal reads it: encoded with ``JSON_ENCODER`` (a ``datetime`` becomes its ISO text)
    and parsed back, for what stores it as JSON (the history)."""
    return json.loads(encode({"m": message}))["m"]


# A JSON string, or the rest of the text after an unterminated one (the parser stops there).
# Each turn of the loop starts at a backslash, so it never backtracks: linear time on any text.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^][{}]+")
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


def decode(text: str) -> Any:
    """Parse JSON from a terminal or a REST body. Raise ``ValueError`` if it is not JSON (NaN and
    Infinity are not), :class:`NestingTooDeep` (a ``ValueError``) past :data:`MAX_JSON_DEPTH` levels.

    The depth is measured before parsing, in C-speed passes over the text: json's parser recurses
    once per level and raises RecursionError, not a parse error, near the interpreter's recursion
    limit (~1,000 levels, fewer in a deep stack).
    """
    if _too_deep(text):
        raise NestingTooDeep(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
    return json.loads(text, parse_constant=_not_json)


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # most texts end here: they cannot nest deeper than they open
    # Brackets inside strings do not nest; mismatched ones make text the parser refuses anyway.
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def message_frame(message_id: str, sender: ClientId, data: Any) -> str:
    """A private message without its position, which each receiver's inbox gives (:func:`with_position`)."""
    return encode({"type": "message", "id": message_id, "from": sender, "data": data})


#: What a terminal asks to resume from when it holds no position yet: everything its inbox keeps.
FROM_THE_START = "*"
_POSITION = re.compile(r"([0-9a-f]{1,16})\.([0-9]{1,18})")  # matched whole (fullmatch: "$" allows a final "\n")


def position(epoch: str, offset: int) -> str:
    """The position of the ``offset``-th message of an inbox whose life is ``epoch``."""
    return f"{epoch}.{offset}"


def parse_position(text: object) -> tuple[str, int] | None:
    """``(epoch, offset)`` of a position, or None if ``text`` is not one."""
    match = _POSITION.fullmatch(text) if isinstance(text, str) else None
    return (match[1], int(match[2])) if match else None


def with_position(frame: str, at: str) -> str:
    """``frame`` (an encoded JSON object) with its ``pos``; a position needs no escaping."""
    return f'{frame[:-1]},"pos":"{at}"}}'


def gap_frame(since: str, chan: str | None = None) -> str:
    """The inbox (or ``chan``'s stream) no longer holds all that came after ``since``: the terminal re-syncs
    from its own history."""
    return encode({"type": "gap", "since": since} if chan is None else {"type": "gap", "chan": chan, "since": since})


def chan_frame(message_id: str, chan: str, sender: ClientId, data: Any) -> str:
    """A chan message without its position, which the chan's stream gives."""
    return encode({"type": "chan", "id": message_id, "chan": chan, "from": sender, "data": data})


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
    if len(text) > MAX_INBOUND_BYTES or (not text.isascii() and len(text.encode()) > MAX_INBOUND_BYTES):
        raise ValueError(CloseCode.MESSAGE_TOO_BIG)  # in UTF-8 bytes, as the frame came
    try:
        frame = decode(text)
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
