"""freeim.servers.daphne.sockets and .footprint on a real daphne Server, real autobahn protocols and Twisted's
StringTransport."""

import asyncio
import functools
import gc
import select
import socket as sockets
import weakref
from collections import deque

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet import reactor, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from freeim.protocol import MAX_INBOUND_BYTES
from freeim.servers import daphne
from freeim.servers.daphne.footprint import HANDSHAKE_LEFTOVERS, lighten_queue
from freeim.servers.daphne.sockets import DaphneSocket, count_control_frames, protocol_behind

HANDSHAKE = (b"GET /ws?token=t0 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             b"Origin: http://127.0.0.1:8000\r\nCookie: sessionid=abc\r\n\r\n")


class Owner:
    """What a node's connection offers its socket: a pause flag, a rate, a resume callback."""

    def __init__(self, tokens=100):
        self.paused = False
        self.tokens = tokens
        self.resumes = 0

    def admit(self):
        self.tokens -= 1
        return self.tokens >= 0

    def resumed(self):
        self.resumes += 1


@pytest.fixture
def server(loop):
    """daphne's server, never run: it only keeps its connections and starts an application per socket."""
    server = Server(application=started_application, endpoints=["tcp:port=0:interface=127.0.0.1"],
                    signal_handlers=False)
    server.connections = {}  # what run() would have set
    return server


@pytest.fixture
def loop():
    """The current event loop of a synchronous test, which daphne starts each socket's application on."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def started_application(scope, receive, send):
    """The application daphne starts for a socket: done at once (the tests play the consumer's part)."""
    done = asyncio.get_event_loop().create_future()
    done.set_result(None)
    return done


@pytest.fixture
def protocol(server):
    return open_protocol(server)


def open_protocol(server):
    """A daphne WebSocket protocol on a string transport, as daphne builds it, opened by a real handshake."""
    factory = WebSocketFactory(server, server="Daphne")
    factory.setProtocolOptions(maxFramePayloadSize=1048576, maxMessagePayloadSize=1048576)
    built = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    built.makeConnection(StringTransport())
    built._raw_query_string = b"token=t0"  # daphne's HTTP protocol passes it on with the upgrade
    built.dataReceived(HANDSHAKE)
    built.handle_reply({"type": "websocket.accept"})  # what the consumer's accept() does
    assert built.state == built.STATE_OPEN
    built.transport.clear()  # the handshake's response
    for timer in reactor.getDelayedCalls():
        timer.cancel()  # autobahn's handshake timeouts and daphne's pings: the reactor never runs here
    return built


def test_the_protocol_is_found_behind_daphnes_send_and_nowhere_else(server, protocol):
    assert protocol_behind(functools.partial(server.handle_reply, protocol)) is protocol
    assert protocol_behind(lambda message: None) is None
    assert protocol_behind(functools.partial(print, protocol)) is None  # not daphne's handle_reply


def test_a_daphne_socket_takes_over_backpressure_and_bounds_frames_once_open(protocol):
    owner = Owner()
    socket = DaphneSocket(protocol, owner)
    transport = protocol.transport
    assert transport.producer is socket and transport.streaming
    socket.opened()
    assert protocol.maxFramePayloadSize == protocol.maxMessagePayloadSize == 4 * MAX_INBOUND_BYTES
    socket.pauseProducing()  # Twisted: the write buffer is full
    assert owner.paused and transport.producerState == "paused"  # and the socket is not read meanwhile
    socket.resumeProducing()
    assert not owner.paused and transport.producerState == "producing" and owner.resumes == 1


def test_frames_are_written_to_the_transport_while_the_socket_is_open(protocol):
    socket = DaphneSocket(protocol, Owner())
    socket.write(b"\x81\x02hi")
    assert protocol.transport.value() == b"\x81\x02hi" and socket.is_open()
    protocol.state = protocol.STATE_CLOSING
    assert not socket.is_open()


@pytest.fixture
def tcp_transport(protocol):
    """Twisted's own TCP transport of the protocol, on one end of a socket pair; and the other end, the terminal."""
    ours, terminal = sockets.socketpair()
    ours.setblocking(False)
    terminal.settimeout(5)
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 5000), None, 1, reactor)
    protocol.transport = transport
    yield transport, terminal
    reactor.removeWriter(transport)
    ours.close()
    terminal.close()


def unsent(transport):
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def nothing_to_read(terminal):
    return not select.select([terminal], [], [], 0)[0]


def test_a_frame_goes_out_at_once_unless_twisted_holds_bytes_unsent_and_then_after_them(protocol, tcp_transport):
    """Twisted's write only buffers, and the loop sent the bytes on its next turn, after registering a writer: three
    system calls per socket written to, most of a broadcast's time."""
    transport, terminal = tcp_transport
    socket = DaphneSocket(protocol, Owner())
    socket.write(b"one")
    assert terminal.recv(100) == b"one" and unsent(transport) == 0  # sent, and nothing left for the loop to do
    transport.write(b"two")  # autobahn's own write (a pong): held until the loop finds the socket writable
    socket.write(b"three")
    assert nothing_to_read(terminal)  # nothing overtook it
    transport.doWrite()
    assert terminal.recv(100) == b"twothree"


def test_what_the_kernel_does_not_take_is_left_to_twisted_in_order(protocol, tcp_transport):
    transport, terminal = tcp_transport
    socket = DaphneSocket(protocol, Owner())
    frame = bytes(range(256)) * 40_000  # 10 MB: more than the socket pair's buffers take
    socket.write(frame)
    assert 0 < unsent(transport) < len(frame)
    socket.write(b"tail")
    received = bytearray()
    while len(received) < len(frame) + 4:
        received += terminal.recv(1 << 20)
        transport.doWrite()
    assert received == frame + b"tail" and unsent(transport) == 0


def test_a_socket_on_another_transport_than_twisted_s_plain_tcp_one_leaves_every_write_to_it(protocol):
    """Such as TLS's, which must encrypt what goes out (here a string transport)."""
    socket = DaphneSocket(protocol, Owner())
    assert not socket.sends_at_once
    socket.write(b"one")
    assert protocol.transport.value() == b"one"


def test_a_closing_socket_is_never_read_again(protocol):
    socket = DaphneSocket(protocol, Owner())
    socket.stop_reading()
    assert protocol.transport.producerState == "paused" and not socket.pause_reading()
    socket.resume_reading()
    assert protocol.transport.producerState == "paused"


def test_pings_count_against_the_owner_before_autobahn_answers_them(protocol):
    owner = Owner(tokens=2)
    socket = DaphneSocket(protocol, owner)
    socket.opened()
    socket.opened()  # once is enough: each ping is counted once
    protocol.transport.clear()
    for payload in (b"1", b"2", b"3"):
        protocol.onPing(payload)
    pongs = protocol.transport.value()
    assert pongs.count(b"\x8a") == 2 and b"3" not in pongs  # the third ping is past the owner's rate


def test_a_protocol_whose_pings_are_counted_is_forgotten_with_its_owner(server):
    """The map from protocol to connection held each connection, which holds its protocol: no entry
    ever went, so a node kept every socket it ever had."""
    protocol, owner = open_protocol(server), Owner()
    owner.holds = protocol  # as a connection holds its socket
    assert count_control_frames(protocol, owner)
    gone = weakref.ref(protocol)
    del protocol, owner
    server.connections.clear()  # daphne forgets a socket once it closed and its application ended
    gc.collect()
    assert gone() is None


def test_daphne_4_is_used_directly_and_another_version_falls_back(monkeypatch):
    assert daphne.unsupported() is None and "directly" in daphne.write_path()
    daphne.unsupported.cache_clear()
    monkeypatch.setattr(daphne, "version", lambda package: "5.0.0")
    assert "daphne 5.0.0 is not a version freeim knows" in daphne.unsupported()
    assert daphne.write_path().startswith("frames sent through ASGI send")


def test_no_socket_is_taken_over_where_the_internals_are_not_as_expected(server, protocol, monkeypatch):
    monkeypatch.setattr(daphne, "version", lambda package: "5.0.0")
    assert daphne.socket_for(functools.partial(server.handle_reply, protocol), Owner()) is None
    assert protocol.transport.producer is None


def test_an_open_socket_keeps_only_what_it_reads_and_behaves_as_before(server):
    """Each protocol copied ~30 options of its factory and kept its parsed handshake (the request, its
    headers and cookies, twice, and the response): ~100 attributes, a 3.3 KB ``__dict__`` per socket."""
    protocol, owner = open_protocol(server), Owner(tokens=1)
    factory, queue = protocol.factory, protocol.application_queue
    DaphneSocket(protocol, owner).opened()
    kept = vars(protocol)
    assert not HANDSHAKE_LEFTOVERS & kept.keys() and len(kept) < 30
    assert b"sessionid" not in repr(kept).encode() and "sessionid" not in repr(kept)
    assert protocol.autoPingInterval == factory.autoPingInterval and protocol.versions is factory.versions
    assert protocol.request.path == "/ws" and not isinstance(protocol.send_queue, deque)
    assert queue is protocol.application_queue and queue.get_nowait() == {"type": "websocket.connect"}
    protocol.onPing(b"1")
    protocol.onPing(b"2")  # past the owner's rate
    assert protocol.transport.value() == b"\x8a\x011"
    protocol.handle_reply({"type": "websocket.send", "text": "hi"})
    protocol.handle_reply({"type": "websocket.close", "code": 4002})
    assert protocol.transport.value().endswith(b"\x81\x02hi\x88\x02\x0f\xa2")  # its text, then a close with 4002
    assert protocol.state == protocol.STATE_CLOSING
    protocol.connectionLost(Failure(ConnectionDone()))  # daphne logs the path, and tells the application
    assert queue.get_nowait()["type"] == "websocket.disconnect" and "disconnected" in server.connections[protocol]
    fresh = open_protocol(server)  # a socket of the same factory, still in its handshake, is as autobahn made it
    assert "http_headers" in vars(fresh) and "autoPingInterval" in vars(fresh)


async def test_daphnes_lightened_input_queue_hands_over_events_in_order_and_wakes_its_consumer():
    queue: asyncio.Queue[int] = asyncio.Queue()
    queue.put_nowait(0)
    assert lighten_queue(queue)
    assert not any(isinstance(held, deque) for held in (*vars(queue).values(), *vars(queue._finished).values()))
    assert await queue.get() == 0
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    for event in (1, 2, 3):
        queue.put_nowait(event)
    assert await waiting == 1 and queue.qsize() == 2
    assert [await queue.get(), queue.get_nowait()] == [2, 3]
    gave_up = asyncio.ensure_future(queue.get())  # a consumer cancelled while it waits
    await asyncio.sleep(0)
    gave_up.cancel()
    await asyncio.gather(gave_up, return_exceptions=True)
    assert not queue._getters
    queue.put_nowait(4)
    assert await asyncio.wait_for(queue.get(), 1) == 4


def test_a_queue_not_shaped_as_daphnes_is_left_as_it_is():
    bounded = asyncio.Queue(maxsize=2)
    assert not lighten_queue(bounded) and isinstance(bounded._getters, deque)
    assert not lighten_queue(asyncio.LifoQueue()) and not lighten_queue(None)
