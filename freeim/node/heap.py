"""Keep Python's cyclic garbage collector out of a node's way.

A node holds thousands of long-lived objects per thousand sockets. CPython's
full collection walks all of them: 0.4-0.7 s at 5,000 connections on a
2-core machine (the project's benchmark machine), a stall for every socket of the
node, and a node under a reconnect storm ran such collections over and over
(py-spy: 42 % of samples). So the node freezes what it holds (``gc.freeze``:
the collector stops looking at those objects) once a second when its
connections changed, after collecting the young generations (a small
collection: frozen and old objects are not walked). Frozen objects are still
freed by reference counting when their socket closes; what a closed socket (or
a refused handshake) leaves in a reference cycle waits for the rare full
collection this keeper runs once as many sockets closed (or were refused) as the
node holds, and at least ``FULL_AFTER``.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

PERIOD = 1.0
FULL_AFTER = 1000


class HeapKeeper:
    """Counts a node's attaches and detaches, and freezes and collects accordingly."""

    def __init__(self) -> None:
        self.changed = False
        self.closed_since_full = 0

    def attached(self) -> None:
        self.changed = True

    def detached(self) -> None:
        self.changed = True
        self.closed_since_full += 1

    def tend(self, live: int) -> str | None:
        """Collect and freeze if anything changed; which collection ran ("full", "recent") or None."""
        if not self.changed:
            return None
        self.changed = False
        if self.closed_since_full >= max(FULL_AFTER, live):
            gc.unfreeze()
            self.closed_since_full = 0
            gc.collect()
            gc.freeze()
            return "full"
        # Only the young generations: collecting everything not yet frozen would walk all
        # the objects of the sockets that came since the last freeze (0.2 s after 15,000
        # connected), and the garbage that got old meanwhile waits for the full collection.
        gc.collect(1)
        gc.freeze()
        return "recent"

    async def run(self, live: Callable[[], int]) -> None:
        """Freeze what the process holds now (Django, the server, the app), then tend every second."""
        gc.collect()
        gc.freeze()
        while True:
            await asyncio.sleep(PERIOD)
            self.tend(live())
