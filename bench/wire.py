"""The bytes the load generator speaks: an HTTP/1.1 request or upgrade, RFC 6455 frames.

Pure functions and one small parser, no I/O, so the load generator stays cheap
per socket (a ``websockets`` connection costs several times more) and the
parsing is unit-tested (tests/e2e/test_bench.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: The sender puts ``seq`` then ``ts`` first in every payload (compact JSON keeps the order).
STAMP = re.compile(rb'"seq":(\d+),"ts":([0-9.eE+-]+)')


def upgrade_request(host: str, port: int, path: str) -> bytes:
    """A WebSocket opening handshake, no extensions (no compression) offered."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def post_request(host: str, port: int, path: str, body: dict[str, object], headers: dict[str, str]) -> bytes:
    """A keep-alive JSON POST."""
    data = json.dumps(body).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n").encode() + data


def status_of(head: bytes) -> int:
    """The status code of an HTTP response head (``HTTP/1.1 101 ...``); 0 if unreadable."""
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def header_of(head: bytes, name: bytes) -> bytes | None:
    """One header's value from a response head (case-insensitive name)."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked, final client frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def close_code(payload: bytes) -> int:
    """The code of a close frame's payload; 1005 (none given) if it has none."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def stamp(payload: bytes) -> tuple[int, float] | None:
    """``(seq, ts)`` of a benchmark message, or None for any other frame."""
    found = STAMP.search(payload)
    return (int(found[1]), float(found[2])) if found else None


class FrameParser:
    """Splits a server's byte stream into whole messages ``(opcode, payload)``; keeps partial frames."""

    __slots__ = ("_buffer", "_fragments", "_fragment_op")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_op = OP_TEXT

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        messages: list[tuple[int, bytes]] = []
        position, size = 0, len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, head = int.from_bytes(buffer[position + 2:position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, head = int.from_bytes(buffer[position + 2:position + 10], "big"), 10
            if second & 0x80:
                raise ValueError("a server frame must not be masked")
            end = position + head + length
            if end > size:
                break
            self._collect(first, bytes(buffer[position + head:end]), messages)
            position = end
        del buffer[:position]
        return messages

    def _collect(self, first: int, payload: bytes, messages: list[tuple[int, bytes]]) -> None:
        opcode, final = first & 0x0F, first & 0x80
        if opcode >= OP_CLOSE:  # control frames are never fragmented and may come between fragments
            messages.append((opcode, payload))
        elif opcode == OP_CONTINUATION or not final:
            if opcode != OP_CONTINUATION:
                self._fragment_op = opcode
            self._fragments.append(payload)
            if final:
                messages.append((self._fragment_op, b"".join(self._fragments)))
                self._fragments = []
        else:
            messages.append((opcode, payload))


def split_ws_url(url: str) -> tuple[str, int, str]:
    """``ws://host:port/path?query`` -> ``(host, port, "/path?query")``."""
    scheme, _, rest = url.partition("://")
    if scheme != "ws":
        raise ValueError(f"only ws:// URLs are benchmarked, got {url!r}")
    address, slash, path = rest.partition("/")
    host, _, port = address.rpartition(":")
    return host, int(port or 80), slash + path
