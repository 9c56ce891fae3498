"""Concurrent sends in one event loop share their round trips.

Each ``asend_message`` is two Redis round trips and redis-py's cost per call, which bound one
business process far below what Redis and the nodes take. When many coroutines of one loop send
at once (the requests of an async server, a task's fan-out), their messages go together: those
queued while a batch is on its way leave as the next batch, one store round trip and one write per
node for them all, as :func:`freeim.im.send_messages` does for a list. A lone send leaves at once.
Each caller still gets its own ids, its own error, and nothing before its messages are sent; a
batch stays within ``MAX_FANOUT_BYTES``.
"""

from __future__ import annotations

import asyncio
import weakref

from ..backends import Backend
from ..conf import conf
from .operations import Prepared, Sent, deliver_messages

Waiter = tuple[Prepared, "asyncio.Future[Sent]"]


class Coalescer:
    """The send batches of one backend in one event loop."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._queue: list[Waiter] = []
        self._sending: asyncio.Future[None] | None = None  # held: the loop keeps only a weak reference to a task

    async def deliver(self, prepared: Prepared) -> Sent:
        """Send ``prepared`` with whatever else is queued when its turn comes; what it sent."""
        future: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
        self._queue.append((prepared, future))
        if self._sending is None:
            # A task, so it starts after the coroutines already ready in this turn of the loop queued theirs.
            self._sending = asyncio.ensure_future(self._send_all())
        return await future

    async def _send_all(self) -> None:
        try:
            while self._queue:
                queue, self._queue = self._queue, []
                for batch in _within_fanout(queue):
                    await self._send(batch)
        finally:
            self._sending = None

    async def _send(self, batch: list[Waiter]) -> None:
        merged = Prepared([m for p, _ in batch for m in p.messages], [f for p, _ in batch for f in p.frames],
                          [r for p, _ in batch for r in p.receipts], sum(p.fanout for p, _ in batch))
        try:
            sent = await deliver_messages(self.backend, merged)
        except Exception as error:
            for _prepared, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # the loop is going away: so are its callers
            for _prepared, future in batch:
                future.cancel()
            raise
        for prepared, future in batch:
            mine = {message.message_id for message in prepared.messages}
            if not future.done():  # a caller cancelled meanwhile: its messages are sent all the same
                future.set_result(Sent(prepared.messages, [w for w in sent.waiting if w.message_id in mine]))


def _within_fanout(queue: list[Waiter]) -> list[list[Waiter]]:
    """``queue`` in order, in batches of at most ``MAX_FANOUT_BYTES`` in flight (each call alone fits)."""
    batches: list[list[Waiter]] = [[]]
    fanout = 0
    for waiter in queue:
        if batches[-1] and fanout + waiter[0].fanout > conf.MAX_FANOUT_BYTES:
            batches.append([])
            fanout = 0
        batches[-1].append(waiter)
        fanout += waiter[0].fanout
    return batches


_coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer] = weakref.WeakKeyDictionary()


def coalescer(backend: Backend) -> Coalescer:
    """The running loop's coalescer for ``backend``."""
    loop = asyncio.get_running_loop()
    found = _coalescers.get(loop)
    if found is None or found.backend is not backend:
        found = _coalescers[loop] = Coalescer(backend)
    return found
