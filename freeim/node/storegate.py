"""Lets a node's store updates run side by side, or its rebuild run alone.

A node that lost its registration drops what the store has of it but its live connections, and writes
those back. An attach or a detach whose store update lands in the middle
would be counted twice or not at all, and presence would stay wrong after the
storm that caused it. So attaches, detaches and late releases are *shared* users
of the gate, and the rebuild its *exclusive* user: it waits for the shared ones
in flight, and new ones wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class StoreGate:
    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._open.is_set():  # re-checked: a rebuild may start before this waiter runs
            await self._open.wait()
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        self._open.clear()
        try:
            await self._idle.wait()
            yield
        finally:
            self._open.set()
