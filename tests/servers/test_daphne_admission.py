"""freeim.servers.daphne.admission on real Twisted listening ports (the reactor daphne installs, not running),
and autobahn's deferred debug formatting."""

import functools

import pytest
import txaio
from prometheus_client import REGISTRY
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPFactory

from freeim.servers.daphne import admission, autobahn_logging


@pytest.fixture
def ports():
    """Two listening HTTP ports, as daphne opens them."""
    opened = [reactor.listenTCP(0, HTTPFactory(), interface="127.0.0.1") for _ in range(2)]
    yield opened
    for port in opened:
        port.stopListening()


def reading(port):
    return port in reactor.getReaders()


def test_the_listening_ports_are_found_on_the_reactor(ports):
    assert set(ports) <= set(admission.listening_ports(reactor))


def test_the_gate_stops_accepting_under_lag_and_resumes_once_the_loop_keeps_up(ports):
    gate = admission.AcceptGate(ports)
    gate.observe(0.01, now=0.0)
    assert all(reading(p) for p in ports) and all(p.numberAccepts <= admission.ACCEPT_BATCH for p in ports)
    gate.observe(0.5, now=1.0)
    assert not any(reading(p) for p in ports) and gate.paused
    gate.observe(0.1, now=1.1)  # better, not good enough yet
    assert gate.paused
    gate.observe(0.01, now=1.2)
    assert all(reading(p) for p in ports) and not gate.paused and gate.pauses == 1


def test_pauses_and_the_time_paused_are_counted(ports):
    before = [REGISTRY.get_sample_value(name) for name in ("freeim_accept_pauses_total",
                                                            "freeim_accept_paused_seconds_total")]
    gate = admission.AcceptGate(ports)
    gate.observe(0.5, now=1.0)
    gate.observe(0.01, now=1.25)
    gate.observe(0.5, now=2.0)
    gate.observe(0.1, now=2.0 + admission.MAX_PAUSE)
    after = [REGISTRY.get_sample_value(name) for name in ("freeim_accept_pauses_total",
                                                           "freeim_accept_paused_seconds_total")]
    assert after[0] - before[0] == 2 and after[1] - before[1] == pytest.approx(0.25 + admission.MAX_PAUSE)


def test_a_loop_that_stays_busy_still_takes_new_connections_after_a_while(ports):
    gate = admission.AcceptGate(ports[:1])
    gate.observe(0.3, now=10.0)
    gate.observe(0.1, now=10.5)
    assert gate.paused
    gate.observe(0.1, now=10.0 + admission.MAX_PAUSE)
    assert reading(ports[0]) and not gate.paused
    gate.observe(0.3, now=11.1)  # and pauses again if it must
    assert gate.paused and gate.pauses == 2


def connect(factory, port):
    """A connection ``factory`` built, on a string transport; and the reactor calls it scheduled."""
    before = set(reactor.getDelayedCalls())
    channel = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    scheduled = [call for call in reactor.getDelayedCalls() if call not in before]
    transport = StringTransport()
    transport.connected = True
    channel.makeConnection(transport)
    return channel, transport, scheduled


def test_stalled_requests_time_out_and_headers_have_a_deadline(ports):
    assert admission.time_out_requests(ports, 7) == 2
    factory = ports[0].factory
    assert factory.timeOut == 7
    channel, _transport, [deadline] = connect(factory, 5000)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the headers arrive in time
    assert not deadline.active()
    assert admission.time_out_requests(ports, 7) == 2  # set twice: still one deadline per connection
    channel, transport, [deadline] = connect(factory, 5001)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost")  # trickled, never finished
    expire = functools.partial(deadline.func, *deadline.args, **deadline.kw)
    deadline.cancel()  # this reactor never runs: the test runs what it would when the deadline passes
    expire()
    assert transport.disconnecting  # aborted
    channel.connectionLost(None)


@pytest.fixture
def log_level():
    before = txaio.get_global_log_level()
    yield txaio.set_global_log_level
    txaio.set_global_log_level(before)


def test_autobahn_formats_debug_details_only_while_debugging(log_level):
    from autobahn.websocket import protocol

    autobahn_logging.format_only_when_debugging()
    log_level("info")
    assert protocol.pformat([("openHandshakeTimeout", 5)]) == autobahn_logging.NOT_FORMATTED
    log_level("debug")
    assert protocol.pformat([("openHandshakeTimeout", 5)]) == "[('openHandshakeTimeout', 5)]"
