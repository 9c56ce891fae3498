"""Stop taking new connections while the node's loop is overloaded (daphne only).

In a reconnect storm Twisted accepts every connection the kernel queued, as fast as it can (it even
raises its accept batch by 20 each time it fills one), and starts each handshake. With thousands in
progress at once every loop iteration took seconds: each handshake needs several iterations, so all
of them outlived their one-time tokens (their default life was 10 s then; ``TOKEN_TTL`` is 30 s
since) and their terminals' patience, and were retried and done again for nothing; a 20,000-client
storm never settled. So the gate measures how late a short sleep wakes up, stops accepting (the
listening ports stop reading) while that lag is high, and resumes once it is low again. Meanwhile
new connections wait in the kernel's listen queue, which costs the node nothing, and past it their
SYNs are retried by the terminals' TCP stack.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ... import measures

logger = logging.getLogger("freeim.node")

TICK = 0.05
#: Loop lag (s) above which the node stops accepting, and below which it accepts again.
PAUSE_ABOVE = 0.2
RESUME_BELOW = 0.05
#: Never paused longer than this: a loop that stays busy (never under ``RESUME_BELOW``) still
#: takes a batch of new connections a second, rather than none for as long as it is busy.
MAX_PAUSE = 1.0
#: At most so many connections accepted per readable event (Twisted grows it without bound).
ACCEPT_BATCH = 50


def listening_ports(reactor: Any) -> list[Any]:
    """The reactor's listening TCP (and UNIX) ports."""
    from twisted.internet import tcp

    return [reader for reader in reactor.getReaders() if isinstance(reader, tcp.Port)]


class AcceptGate:
    """Pauses and resumes ``ports`` from the lag of the running loop."""

    def __init__(self, ports: list[Any]) -> None:
        self.ports = ports
        self.paused_at: float | None = None
        self.pauses = 0

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def observe(self, lag: float, now: float) -> None:
        """Act on one lag sample (seconds), taken at ``now`` (the loop's clock)."""
        for port in self.ports:
            port.numberAccepts = min(port.numberAccepts, ACCEPT_BATCH)
        if self.paused_at is None:
            if lag > PAUSE_ABOVE:
                self.paused_at = now
                self.pauses += 1
                measures.ACCEPT_PAUSES.inc()
                for port in self.ports:
                    port.stopReading()
        elif lag < RESUME_BELOW or now - self.paused_at >= MAX_PAUSE:
            measures.ACCEPT_PAUSED.inc(amount=now - self.paused_at)
            self.paused_at = None
            for port in self.ports:
                port.startReading()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK)
            now = loop.time()
            self.observe(now - asked - TICK, now)


def time_out_requests(ports: list[Any], seconds: float) -> int:
    """Have a connection dropped that stalls for ``seconds`` before its request is complete, or whose
    request headers are not complete ``seconds`` after it opened; how many ports it set.

    daphne's own timeouts start too late for that: ``--http-timeout`` once a request was
    read whole, ``--websocket_connect_timeout`` once its upgrade was. Before, only Twisted's
    idle timeout of the HTTP channel applies (``HTTPFactory.timeOut``: one minute, public),
    restarted by every byte received; it is set here. Twisted turns it off while a request
    is being handled, which for a WebSocket is for as long as it is open. As it restarts with
    every byte, a client trickling one byte a second would hold its socket for good, so the
    first request's headers also get a deadline of their own (:func:`_deadline_headers`).
    """
    from twisted.internet import reactor
    from twisted.web.http import HTTPFactory

    factories = [port.factory for port in ports if isinstance(getattr(port, "factory", None), HTTPFactory)]
    for factory in factories:
        factory.timeOut = seconds
        _deadline_headers(factory, seconds, reactor)
    return len(factories)


def _deadline_headers(factory: Any, seconds: float, reactor: Any) -> None:
    """Abort each connection ``factory`` builds whose request headers are not all in ``seconds`` after
    it opened (``HTTPChannel.allHeadersReceived``, called once they are, cancels the deadline).

    Twisted wraps the ``HTTPChannel`` it builds in a protocol that can switch to HTTP/2
    (``_GenericHTTPChannelProtocol``); the hook goes on the channel inside, where it is called.
    """
    build = factory.buildProtocol
    if getattr(build, "freeim_deadline", False):
        return

    def build_with_deadline(address: Any) -> Any:
        channel = build(address)
        inner = getattr(channel, "_channel", channel)
        received = getattr(inner, "allHeadersReceived", None)
        if callable(received):
            deadline = reactor.callLater(seconds, _abort, inner)

            def all_headers_received() -> None:
                if deadline.active():
                    deadline.cancel()
                received()

            inner.allHeadersReceived = all_headers_received
        return channel

    build_with_deadline.freeim_deadline = True  # type: ignore[attr-defined]
    factory.buildProtocol = build_with_deadline


def _abort(channel: Any) -> None:
    transport = getattr(channel, "transport", None)
    if transport is not None and getattr(transport, "connected", False):
        transport.abortConnection()


async def guard_accepts(reactor: Any, handshake_timeout: float) -> None:
    """Find the server's listening ports once they listen, time out stalled requests, then gate them forever."""
    while not (ports := listening_ports(reactor)):
        await asyncio.sleep(TICK)
    timed = time_out_requests(ports, handshake_timeout)
    logger.info("freeim: accepting on %d port(s) only while the loop keeps up; requests stalled for %s s "
                "dropped on %d", len(ports), handshake_timeout, timed)
    await AcceptGate(ports).run()
