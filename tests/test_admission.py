"""The accept gate (fake ports: its decisions are pure) and autobahn's deferred debug formatting."""

import pytest
import txaio

from freeim import admission, autobahn_logging


class Port:
    def __init__(self):
        self.reading = True
        self.numberAccepts = 500

    def stopReading(self):
        self.reading = False

    def startReading(self):
        self.reading = True


def test_the_gate_stops_accepting_under_lag_and_resumes_once_the_loop_keeps_up():
    ports = [Port(), Port()]
    gate = admission.AcceptGate(ports)
    gate.observe(0.01, now=0.0)
    assert all(p.reading for p in ports) and all(p.numberAccepts == admission.ACCEPT_BATCH for p in ports)
    gate.observe(0.5, now=1.0)
    assert not any(p.reading for p in ports) and gate.paused
    gate.observe(0.1, now=1.1)  # better, not good enough yet
    assert gate.paused
    gate.observe(0.01, now=1.2)
    assert all(p.reading for p in ports) and not gate.paused and gate.pauses == 1


def test_a_loop_that_stays_busy_still_takes_new_connections_after_a_while():
    ports = [Port()]
    gate = admission.AcceptGate(ports)
    gate.observe(0.3, now=10.0)
    gate.observe(0.1, now=10.5)
    assert gate.paused
    gate.observe(0.1, now=10.0 + admission.MAX_PAUSE)
    assert ports[0].reading and not gate.paused
    gate.observe(0.3, now=11.1)  # and pauses again if it must
    assert gate.paused and gate.pauses == 2


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
