"""A flooding, non-reading or stalling terminal costs a real daphne node a bounded amount of memory and time.

One node serves the module, with the inbound rate limit raised out of the way (so what bounds
a flood here is backpressure alone; the limit has its test in test_daphne.py) and a short
handshake timeout. The flooder is a raw socket: it writes masked frames, as a client must,
and never reads what the node answers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import multiprocessing
import os
import socket
import struct
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.daphne_server import PASSWORD, DaphneServer, serve

pytest_plugins = ["tests.e2e.daphne_server"]

USERS = {"flooder": False, "canary": False}
HANDSHAKE_TIMEOUT = 2
#: What the flooder tries to write: the issue's 100 MB...
FLOOD_BYTES = 100 * 1024 * 1024
#: ...unless the node stops reading it: no byte taken for this long ends the flood...
STALLED_AFTER = 1.0
#: ...and a node that keeps reading (and answering) for this long has failed anyway.
FLOOD_DEADLINE = 20.0
MAX_RSS_GROWTH = 10 * 1024 * 1024
MAX_CANARY_P99 = 0.050
CANARY_EVERY = 0.01
#: A ping with the largest payload a control frame may carry: its pong is as large.
PING_PAYLOAD = b"p" * 125


@pytest.fixture(scope="module")
def node() -> Iterator[DaphneServer]:
    yield from serve(USERS, handshake_timeout=HANDSHAKE_TIMEOUT, FREEIM_MAX_INBOUND_RATE="1000000")


def ticket(server: DaphneServer, name: str) -> str:
    """A one-time WebSocket URL for ``name``, through the REST API (Basic auth)."""
    credentials = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(f"{server.base}/im/connect/", data=b"{}", method="POST", headers={
        "Authorization": f"Basic {credentials}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())["url"]


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client-to-server frame (FIN set, masked, payload under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


PING = masked_frame(0x9, PING_PAYLOAD)
APP_PING = masked_frame(0x1, b'{"type":"ping"}')


class RawTerminal:
    """A WebSocket client on a plain socket: it opens, then only writes."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          .encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(4096)
            assert chunk, f"the node closed the handshake: {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 101"), answer

    def flood(self, frame: bytes, total: int) -> tuple[int, float, str]:
        """Write ``frame`` over and over, ``total`` bytes at most; ``(bytes taken, seconds, how it ended)``."""
        block = memoryview(frame * (65536 // len(frame)))
        self.sock.settimeout(STALLED_AFTER)
        sent, started = 0, time.monotonic()
        ended = "all written"
        while sent < total:
            if time.monotonic() - started > FLOOD_DEADLINE:
                ended = "deadline"
                break
            try:
                sent += self.sock.send(block[sent % len(block):])
            except TimeoutError:
                ended = "the node stopped reading"
                break
            except OSError as error:
                ended = f"the node closed it ({error.__class__.__name__})"
                break
        return sent, time.monotonic() - started, ended

    def close(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset: nothing to flush
        self.sock.close()


def flood(url: str, frame: bytes, total: int) -> tuple[int, float, str]:
    """Open a raw terminal at ``url``, flood it (:meth:`RawTerminal.flood`) and reset it.

    Run in a process of its own: sending over loopback costs the sender as much CPU as the
    node, which the canary's loop must not share.
    """
    terminal = RawTerminal(url)
    try:
        return terminal.flood(frame, total)
    finally:
        terminal.close()


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def round_trip(ws: ClientConnection) -> float:
    started = time.perf_counter()
    await ws.send('{"type":"ping"}')
    assert await asyncio.wait_for(ws.recv(), 5) == '{"type":"pong"}'
    return time.perf_counter() - started


async def ping_until(ws: ClientConnection, done: asyncio.Event) -> list[float]:
    """The canary's round trips, one every ``CANARY_EVERY`` s, until ``done``."""
    rtts = []
    while not done.is_set():
        rtts.append(await round_trip(ws))
        await asyncio.sleep(CANARY_EVERY)
    return rtts


async def peak_rss(pid: int, done: asyncio.Event) -> int:
    peak = rss(pid)
    while not done.is_set():
        await asyncio.sleep(0.02)
        peak = max(peak, rss(pid))
    return peak


def p99(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.99)]


@dataclasses.dataclass
class Flood:
    """What a flood did, and what it cost the node."""

    sent: int  # bytes the node (and the kernel's buffers) took
    seconds: float
    ended: str
    growth: int  # of the node's RSS, in bytes
    rtts: list[float]  # the canary's round trips meanwhile

    def __str__(self) -> str:
        return (f"{self.sent / 2**20:.1f} MiB taken in {self.seconds:.1f} s ({self.ended}); RSS +"
                f"{self.growth / 2**20:.1f} MiB; canary p99 {p99(self.rtts) * 1000:.1f} ms over {len(self.rtts)} pings")


async def flood_beside_a_canary(node: DaphneServer, frame: bytes) -> Flood:
    """Flood ``node`` with ``frame`` from a terminal that never reads while a canary pings it."""
    pid = node.process.pid
    flooder = await asyncio.to_thread(ticket, node, "flooder")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        async with connect(await asyncio.to_thread(ticket, node, "canary"), proxy=None) as canary:
            for _ in range(20):  # warm up the canary's path before taking the baseline
                await round_trip(canary)
            before = rss(pid)
            done = asyncio.Event()
            rtts, peak = asyncio.create_task(ping_until(canary, done)), asyncio.create_task(peak_rss(pid, done))
            try:
                sent, seconds, ended = await asyncio.get_running_loop().run_in_executor(
                    pool, flood, flooder, frame, FLOOD_BYTES)
            finally:
                done.set()
            result = Flood(sent, seconds, ended, max(await peak, rss(pid)) - before, await rtts)
            print(f"flood of {'protocol' if frame is PING else 'app'} pings: {result}")
            assert await round_trip(canary) < 1  # the canary is still served
    return result


@pytest.mark.parametrize("frame", [PING, APP_PING], ids=["protocol pings", "app pings"])
async def test_a_ping_flood_from_a_terminal_that_never_reads_costs_the_node_little(node, frame):
    flood = await flood_beside_a_canary(node, frame)
    assert flood.growth < MAX_RSS_GROWTH, f"{flood}"
    assert p99(flood.rtts) < MAX_CANARY_P99, f"{flood}"


async def test_a_handshake_that_stalls_is_dropped_after_the_timeout(node):
    with socket.create_connection(("127.0.0.1", node.port), timeout=HANDSHAKE_TIMEOUT * 3) as stalled:
        stalled.sendall(b"GET /ws?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")  # and nothing more
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while stalled.recv(4096):  # until the node closes it (a timeout here fails the test)
                pass
        waited = time.monotonic() - started
    assert HANDSHAKE_TIMEOUT * 0.8 < waited < HANDSHAKE_TIMEOUT + 1.5


def ends_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the node closes ``sock`` within ``seconds`` (whatever it writes before)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError) as error:
        return isinstance(error, ConnectionResetError)
    return True


async def test_a_frame_larger_than_any_a_terminal_may_send_is_refused_at_its_header(node):
    """daphne lets a frame grow to 1 MiB, and the node kept each half-sent one: 200 sockets holding
    one cost 206 MiB. A terminal may send 4,096 characters; the node refuses a longer frame when its
    header announces it, before buffering any of it."""
    terminal = await asyncio.to_thread(RawTerminal, await asyncio.to_thread(ticket, node, "flooder"))
    try:
        mask = os.urandom(4)
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, 1_000_000) + mask  # text, masked, under daphne's 1 MiB
        start = bytes(byte ^ mask[index % 4] for index, byte in enumerate(b"x" * 1000))  # valid UTF-8, masked
        terminal.sock.sendall(header + start)  # and nothing more of it
        assert await asyncio.to_thread(ends_within, terminal.sock, 5)
    finally:
        terminal.close()


async def test_a_handshake_trickled_a_byte_at_a_time_is_dropped_after_the_timeout(node):
    """Twisted's idle timeout restarts with every byte: a request sent a byte every second stayed open
    for good (500 of them held 500 of the node's file descriptors). Its headers must be complete within
    HANDSHAKE_TIMEOUT of the connection's start."""
    request = b"GET /ws?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

    def trickle() -> float:
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
            started = time.monotonic()
            for byte in request:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return time.monotonic() - started
                if time.monotonic() - started > HANDSHAKE_TIMEOUT * 4:
                    return float("inf")
                sock.settimeout(0.5)
                try:
                    if not sock.recv(4096):
                        return time.monotonic() - started
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    return time.monotonic() - started
        return float("inf")

    waited = await asyncio.to_thread(trickle)
    assert waited < HANDSHAKE_TIMEOUT + 1.5
