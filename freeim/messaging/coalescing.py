"""Concurrent sends in one event loop share their round trips.

Each ``asend_message`` is two Redis round trips and redis-py's cost per call, which bound one
business process far below what Redis and the nodes take. When many coroutines of one loop send
at once (the requests of an async server, a task's fan-out), their messages go together: those
queued while a batch is stored leave as the next batch, one store round trip and one write per
node for them all, as :func:`freeim.im.send_messages` does for a list. A lone send leaves at once.

A batch is stored while the one before is handed to the nodes (callers that came meanwhile need not wait for
it), so the process computes, Redis stores and the nodes are written to at the same time; batches are stored
one after the other and handed over in that order, so each client's messages reach its sockets in the order of
their inbox positions. A batch takes whatever is queued: capped at 50 messages, 100 callers sending in a loop
split into batches that took turns between the two steps, which cost more round trips than the overlap saved
on a busy 2-core machine (20 % fewer sends/s in three runs side by side). Each caller still gets its own ids,
its own error, and nothing before its messages are handed over; a batch stays within ``MAX_FANOUT_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Iterator

from ..backends import Backend
from ..conf import conf
from .operations import Prepared, Sent, Stored, hand_over, store_prepared

Waiter = tuple[Prepared, "asyncio.Future[Sent]"]
#: Batches stored and not yet handed over, at most: a slow hand-over holds the next store back.
HANDING_OVER = 2


class Coalescer:
    """The send batches of one backend in one event loop."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._queue: list[Waiter] = []
        self._sending: asyncio.Future[None] | None = None  # held: the loop keeps only a weak reference to a task
        self._handing: deque[asyncio.Future[None]] = deque()  # the hand-overs under way, oldest first

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
                while self._handing and (self._handing[0].done() or len(self._handing) >= HANDING_OVER):
                    await asyncio.wait([self._handing.popleft()])  # what it raised, its own callers got
                batch = self._next_batch()
                stored = await self._store(batch)
                if stored is not None:
                    before = self._handing[-1] if self._handing else None
                    self._handing.append(asyncio.ensure_future(self._hand_over(before, batch, stored)))
        finally:
            self._sending = None

    def _next_batch(self) -> list[Waiter]:
        """The oldest queued calls within ``MAX_FANOUT_BYTES`` (the first always)."""
        fanout = 0
        most = conf.MAX_FANOUT_BYTES
        for taken, (prepared, _future) in enumerate(self._queue):
            if taken and fanout + prepared.fanout > most:
                break
            fanout += prepared.fanout
        else:
            taken = len(self._queue)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _store(self, batch: list[Waiter]) -> Stored | None:
        merged = Prepared([m for p, _ in batch for m in p.messages], [f for p, _ in batch for f in p.frames],
                          [r for p, _ in batch for r in p.receipts], sum(p.fanout for p, _ in batch))
        with _answering(batch):
            return await store_prepared(self.backend, merged)
        return None

    async def _hand_over(self, before: asyncio.Future[None] | None, batch: list[Waiter], stored: Stored) -> None:
        with _answering(batch):
            if before is not None:
                with contextlib.suppress(Exception):  # its own callers got it
                    await before
            sent = await hand_over(self.backend, stored)
            for prepared, future in batch:
                mine = {message.message_id for message in prepared.messages}
                if not future.done():  # a caller cancelled meanwhile: its messages are sent all the same
                    future.set_result(Sent(prepared.messages, [w for w in sent.waiting if w.message_id in mine]))


@contextlib.contextmanager
def _answering(batch: list[Waiter]) -> Iterator[None]:
    """Hand an error of a batch's step to each of its callers (and go on with the next batch); callers of a batch
    cut short by the loop going away are cancelled with it."""
    try:
        yield
    except Exception as error:
        for _prepared, future in batch:
            if not future.done():
                future.set_exception(error)
    except BaseException:
        for _prepared, future in batch:
            future.cancel()
        raise


_coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer] = weakref.WeakKeyDictionary()


def coalescer(backend: Backend) -> Coalescer:
    """The running loop's coalescer for ``backend``."""
    loop = asyncio.get_running_loop()
    found = _coalescers.get(loop)
    if found is None or found.backend is not backend:
        found = _coalescers[loop] = Coalescer(backend)
    return found
