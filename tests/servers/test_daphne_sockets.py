"""freeim.servers.daphne.sockets on a real daphne Server, a real autobahn protocol and Twisted's StringTransport."""

import functools
import gc
import weakref

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from freeim.protocol import MAX_INBOUND_BYTES
from freeim.servers import daphne
from freeim.servers.daphne.sockets import DaphneSocket, count_control_frames, protocol_behind


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
def server():
    return Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"], signal_handlers=False)  # never run


@pytest.fixture
def protocol(server):
    return open_protocol(server)


def open_protocol(server):
    """An open daphne WebSocket protocol on a string transport, as daphne builds it."""
    factory = WebSocketFactory(server, server="Daphne")
    factory.setProtocolOptions(maxFramePayloadSize=1048576, maxMessagePayloadSize=1048576)
    built = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    built.makeConnection(StringTransport())
    built.state = built.STATE_OPEN
    return built


def test_the_protocol_is_found_behind_daphnes_send_and_nowhere_else(server, protocol):
    assert protocol_behind(functools.partial(server.handle_reply, protocol)) is protocol
    assert protocol_behind(lambda message: None) is None
    assert protocol_behind(functools.partial(print, protocol)) is None  # not daphne's handle_reply


def test_a_daphne_socket_takes_over_backpressure_and_bounds_frames(protocol):
    owner = Owner()
    socket = DaphneSocket(protocol, owner)
    transport = protocol.transport
    assert transport.producer is socket and transport.streaming
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


def test_a_closing_socket_is_never_read_again(protocol):
    socket = DaphneSocket(protocol, Owner())
    socket.stop_reading()
    assert protocol.transport.producerState == "paused" and not socket.pause_reading()
    socket.resume_reading()
    assert protocol.transport.producerState == "paused"


def test_pings_count_against_the_owner_before_autobahn_answers_them(protocol):
    owner = Owner(tokens=2)
    DaphneSocket(protocol, owner)
    protocol.transport.clear()
    for payload in (b"1", b"2", b"3"):
        protocol.onPing(payload)
    pongs = protocol.transport.value()
    assert pongs.count(b"\x8a") == 2 and b"3" not in pongs  # the third ping is past the owner's rate


def test_a_protocol_whose_pings_are_counted_is_forgotten_with_its_owner(server):
    """The map from protocol to connection held each connection, which holds its protocol: no entry
    ever went, so a node kept every socket it ever had."""
    timers = set(reactor.getDelayedCalls())
    protocol, owner = open_protocol(server), Owner()
    for timer in set(reactor.getDelayedCalls()) - timers:
        timer.cancel()  # autobahn's handshake timeout holds the protocol until it fires
    owner.holds = protocol  # as a connection holds its socket
    assert count_control_frames(protocol, owner)
    gone = weakref.ref(protocol)
    del protocol, owner
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
