"""The load-generator process: thousands of WebSocket clients in one asyncio loop (uvloop if installed).

Each client is a tiny :class:`asyncio.Protocol` doing its own HTTP upgrade and
RFC 6455 framing (:mod:`bench.wire`): no compression, pings answered, closed
with a RST (no TIME_WAIT). A freeim client first asks the business API for its
connect URL (``POST /im/connect/``, keep-alive connections) and then opens
the returned ``ws://node/ws?token=...``; a peer's client opens the path its
target gives (``ws://node/ws/<id>``; Socket.IO's ``/socket.io/?EIO=4&...``, spoken
by :class:`SocketIOClient`). Every benchmark frame is recorded as ``(receive time,
seq, ts)``; the controller (:mod:`bench.workers`) drives the process through a
pipe with the commands of :class:`Loadgen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
import struct
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from bench import wire
from bench.freeim_site.credentials import credential

HANDSHAKE_TIMEOUT = 30.0
ATTEMPTS = 4
SOURCES_PER_PROCESS = 8  # loopback source addresses: 8 x 28k ephemeral ports, never exhausted
API_CONNECTIONS = 16
#: Clients per connect chunk: all their URLs, then all their sockets. Small enough that
#: no token outlives its TTL (60 s in bench.freeim_site) while it waits for its socket.
CHUNK = 1000
Address = tuple[str, int, str]


class Recorder:
    """Every benchmark frame received by this process, and what else happened to its sockets."""

    def __init__(self) -> None:
        self.reset()
        self.closes: Counter[int] = Counter()
        self.other = 0

    def reset(self) -> None:
        self.recv, self.ts, self.seq = array("d"), array("d"), array("q")

    def add(self, now: float, payload: bytes) -> None:
        found = wire.stamp(payload)
        if found is None:
            self.other += 1
            return
        self.recv.append(now)
        self.seq.append(found[0])
        self.ts.append(found[1])


class Client(asyncio.Protocol):
    """One WebSocket: the upgrade, then frames; ``opened`` resolves once the client can receive."""

    def __init__(self, request: bytes, recorder: Recorder, sockets: set[Client]) -> None:
        self.request, self.recorder, self.sockets = request, recorder, sockets
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head: bytes | None = b""  # the HTTP answer so far; None once upgraded
        self.parser = wire.FrameParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            head, found, rest = self.head.partition(b"\r\n\r\n")
            if not found:
                return
            status = wire.status_of(head)
            if status != 101:
                self.opened.set_exception(ConnectionRefusedError(f"handshake answered {status}"))
                self.abort()
                return
            self.head = None
            self.upgraded()
            data = rest
        now = time.time()
        for opcode, payload in self.parser.feed(data):
            if opcode == wire.OP_TEXT:
                self.text(now, payload)
            elif opcode == wire.OP_PING:
                self.transport.write(wire.client_frame(wire.OP_PONG, payload))  # type: ignore[union-attr]
            elif opcode == wire.OP_CLOSE:
                self.recorder.closes[wire.close_code(payload)] += 1
                self.transport.write(wire.client_frame(wire.OP_CLOSE, payload[:2]))  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]

    def upgraded(self) -> None:
        """The server answered 101: a plain WebSocket client is open."""
        self.ready()

    def ready(self) -> None:
        self.sockets.add(self)
        self.opened.set_result(None)

    def text(self, now: float, payload: bytes) -> None:
        self.recorder.add(now, payload)

    def send_text(self, payload: bytes) -> None:
        self.transport.write(wire.client_frame(wire.OP_TEXT, payload))  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.sockets.discard(self)
        if not self.opened.done():
            self.opened.set_exception(ConnectionResetError("closed during the handshake"))

    def abort(self) -> None:
        """Close with a RST: no TIME_WAIT left behind by thousands of sockets."""
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class SocketIOClient(Client):
    """A Socket.IO 4 client over a bare WebSocket: Engine.IO v4 packets, one per text frame.

    The server opens with ``0{...}`` (Engine.IO open); the client asks for the main
    namespace (``40``) and is open once the server accepts it (``40{"sid":...}``): only
    then is it in its rooms. ``2`` (ping) is answered ``3``; events (``42["message",{...}]``)
    are recorded; a refused namespace (``44``) fails the connect.
    """

    def upgraded(self) -> None:
        pass  # not in its rooms yet

    def text(self, now: float, payload: bytes) -> None:
        if payload[:2] == b"42":
            self.recorder.add(now, payload)
        elif payload == b"2":
            self.send_text(b"3")
        elif payload[:2] == b"40":
            if not self.opened.done():
                self.ready()
        elif payload[:1] == b"0":
            self.send_text(b"40")
        elif payload[:2] == b"44" and not self.opened.done():
            self.opened.set_exception(ConnectionRefusedError(f"namespace refused: {payload[:60]!r}"))
            self.abort()
        else:
            self.recorder.other += 1


class Api:
    """Keep-alive connections to the business API; ``connect_url`` runs freeim's connect flow."""

    def __init__(self, host: str, port: int, path: str, secret: str) -> None:
        self.host, self.port, self.path, self.secret = host, port, path, secret
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(API_CONNECTIONS):
            self.idle.put_nowait(None)  # opened on first use

    async def connect_url(self, client_id: int) -> str:
        stream = await self.idle.get()
        try:
            if stream is None:
                stream = await asyncio.open_connection(self.host, self.port)
            reader, writer = stream
            headers = {"Authorization": credential(self.secret, client_id)}
            writer.write(wire.post_request(self.host, self.port, self.path, {"meta": "bench"}, headers))
            head = await reader.readuntil(b"\r\n\r\n")
            body = await self._body(reader, head)
            if (wire.header_of(head, b"connection") or b"").lower() == b"close":
                writer.close()
                stream = None
        except BaseException:
            if stream is not None:
                stream[1].close()
            stream = None
            raise
        finally:
            self.idle.put_nowait(stream)
        if wire.status_of(head) != 200:
            raise ConnectionRefusedError(f"connect answered {wire.status_of(head)}: {body[:100]!r}")
        return json.loads(body)["url"]

    @staticmethod
    async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
        length = wire.header_of(head, b"content-length")
        if length is not None:
            return await reader.readexactly(int(length))
        chunks = []
        while size := int((await reader.readline()).strip() or b"0", 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return b"".join(chunks)


class Loadgen:
    """The commands the controller sends: ``open``, ``stats``, ``take``, ``close``."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.recorder = Recorder()
        self.sockets: set[Client] = set()
        self.api: Api | None = None
        self.errors: Counter[str] = Counter()
        self.steps: dict[str, array] = {"rest": array("d"), "handshake": array("d")}  # seconds per successful step
        self.sockets_made = itertools.count()

    def source(self) -> str:
        """The loopback address the next socket binds to: each in turn. (Not by client id: a process's ids
        share their remainder by the number of processes, which crowded 4 processes' sockets onto 2
        addresses each, and the kernel's search for a free port to bind made 50,000 connects 5x slower.)"""
        return f"127.0.{self.index + 1}.{1 + next(self.sockets_made) % SOURCES_PER_PROCESS}"

    async def open(self, target: dict[str, Any], ids: list[int], concurrency: int) -> dict[str, Any]:
        """Connect ``ids`` with ``concurrency`` requests in flight; return when all are done.

        Chunk by chunk: first every connect URL of the chunk (the REST step), then every
        WebSocket of it, so each step's rate is measured on its own (a client whose
        socket fails starts over with a fresh URL).
        """
        if target["kind"] == "freeim" and self.api is None:
            self.api = Api(*target["api"], target["secret"])
        gate = asyncio.Semaphore(concurrency)
        started = time.time()
        times: list[float | None] = []
        phases = {"rest_seconds": 0.0, "handshake_seconds": 0.0}
        for first in range(0, len(ids), CHUNK):
            chunk = ids[first:first + CHUNK]
            begun = time.time()
            addresses = await asyncio.gather(*(self._prefetch(target, c, gate) for c in chunk))
            asked = time.time()
            times += await asyncio.gather(*(self._open_one(target, c, gate, a)
                                            for c, a in zip(chunk, addresses, strict=True)))
            phases["rest_seconds"] += asked - begun
            phases["handshake_seconds"] += time.time() - asked
        opened = array("d", sorted(t for t in times if t is not None))
        steps, self.steps = self.steps, {name: array("d") for name in self.steps}
        return {"started": started, "opened": opened, "failed": len(ids) - len(opened), "errors": dict(self.errors),
                **steps, **phases}

    async def _prefetch(self, target: dict[str, Any], client_id: int, gate: asyncio.Semaphore) -> Address | None:
        async with gate:
            try:
                return await self._address(target, client_id)
            except (OSError, ValueError, KeyError, asyncio.IncompleteReadError) as error:
                self.errors[str(error)[:60] or type(error).__name__] += 1
                return None

    async def _open_one(self, target: dict[str, Any], client_id: int, gate: asyncio.Semaphore,
                        address: Address | None) -> float | None:
        loop = asyncio.get_running_loop()
        protocol = SocketIOClient if target["kind"] == "socketio" else Client
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0.2, 0.5 * 2 ** attempt))  # back off like freeim.js
            async with gate:
                client = None
                try:
                    host, port, path = address or await self._address(target, client_id)
                    address = None  # a retry asks for a fresh URL (its token was used)
                    asked = time.time()
                    request = wire.upgrade_request(host, port, path)
                    _, client = await loop.create_connection(
                        lambda r=request: protocol(r, self.recorder, self.sockets), host, port,
                        local_addr=(self.source(), 0))
                    await asyncio.wait_for(client.opened, HANDSHAKE_TIMEOUT)
                    done = time.time()
                    self.steps["handshake"].append(done - asked)
                    return done
                except (OSError, TimeoutError, ValueError, KeyError, asyncio.IncompleteReadError) as error:
                    self.errors[str(error)[:60] or type(error).__name__] += 1
                    if client is not None:
                        client.abort()
        return None

    async def _address(self, target: dict[str, Any], client_id: int) -> Address:
        if self.api is not None:
            began = time.time()
            address = wire.split_ws_url(await self.api.connect_url(client_id))
            self.steps["rest"].append(time.time() - began)
            return address
        host, port = target["nodes"][client_id % len(target["nodes"])]
        return host, port, target["path"].format(id=client_id)

    async def stats(self) -> dict[str, Any]:
        recorder = self.recorder
        return {"open": len(self.sockets), "frames": len(recorder.recv), "other": recorder.other,
                "closes": dict(recorder.closes), "last": recorder.recv[-1] if recorder.recv else 0.0}

    async def take(self) -> dict[str, Any]:
        """The frames recorded since the last ``take``."""
        recorder = self.recorder
        taken = {"recv": recorder.recv, "ts": recorder.ts, "seq": recorder.seq}
        recorder.reset()
        return taken

    async def close(self) -> dict[str, Any]:
        for client in list(self.sockets):
            client.abort()
        await asyncio.sleep(0.2)
        return {"open": len(self.sockets)}


def serve(conn: Connection, index: int) -> None:
    """The process's entry point: run commands ``(name, kwargs)`` from ``conn`` until ``None``."""
    try:
        import uvloop
    except ImportError:
        uvloop = None

    async def main() -> None:
        loadgen = Loadgen(index)
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) is not None:
            name, kwargs = command
            conn.send(await getattr(loadgen, name)(**kwargs))

    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())
