"""What a test asserts on: the messages sent (as ``mail.outbox`` holds the mail), the signals received,
and a condition that comes true."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from django.dispatch import Signal

from .. import signals
from ..messaging.operations import SentBroadcast, SentChanMessage, SentMessage

Sent = SentMessage | SentChanMessage | SentBroadcast


@contextlib.contextmanager
def captured_sends() -> Iterator[list[Sent]]:
    """A list that gets every message this process hands to the nodes while inside (``message_sent``), in
    order: a :class:`SentMessage`, :class:`SentChanMessage` or :class:`SentBroadcast` each. The messages
    are still sent."""
    outbox: list[Sent] = []

    def record(message: Sent, **kwargs: Any) -> None:
        outbox.append(message)

    signals.message_sent.connect(record, weak=False)
    try:
        yield outbox
    finally:
        signals.message_sent.disconnect(record)


class SignalRecorder:
    """Records the keyword arguments of every ``client_online``, ``client_offline`` and ``message_stored``
    (or the signals given) sent while it is connected; :meth:`wait` for one that matches."""

    def __init__(self, *watched: Signal) -> None:
        self.watched = watched or (signals.client_online, signals.client_offline, signals.message_stored)
        self.received: list[tuple[Signal, dict[str, Any]]] = []

    def _record(self, signal: Signal, sender: Any = None, **kwargs: Any) -> None:
        self.received.append((signal, kwargs))

    def connect(self) -> None:
        for signal in self.watched:
            signal.connect(self._record, weak=False)

    def disconnect(self) -> None:
        for signal in self.watched:
            signal.disconnect(self._record)

    def of(self, signal: Signal, **match: Any) -> list[dict[str, Any]]:
        """The kwargs of each ``signal`` received so far whose items include ``match``."""
        return [kwargs for sent, kwargs in self.received
                if sent is signal and all(kwargs.get(key) == value for key, value in match.items())]

    async def wait(self, signal: Signal, timeout: float = 2.0, **match: Any) -> dict[str, Any]:
        """The kwargs of the first ``signal`` whose items include ``match``, once one has been received (the
        node sends presence signals off the connect path, so they may come after the socket opened or closed).
        """
        await eventually(lambda: bool(self.of(signal, **match)), timeout,
                         f"no such signal with {match!r} within {timeout} s; received {self.received!r}")
        return self.of(signal, **match)[0]


@contextlib.contextmanager
def recorded_signals(*watched: Signal) -> Iterator[SignalRecorder]:
    """A connected :class:`SignalRecorder` (of ``watched``, or of freeim's presence and stored signals)."""
    recorder = SignalRecorder(*watched)
    recorder.connect()
    try:
        yield recorder
    finally:
        recorder.disconnect()


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, failure: str = "",
                     step: float = 0.02) -> None:
    """Return once ``check()`` (awaited if it is a coroutine) is true; raise ``AssertionError`` after
    ``timeout`` seconds. Waits on a condition, never for a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(failure or f"still not true after {timeout} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(step)
