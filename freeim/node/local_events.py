"""Online/offline events of the embedded mode, sent as Django signals in the node's own process,
one at a time, in order, off the connect path (a cluster has an events stream instead:
:mod:`freeim.events`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..events import dispatch
from ..ids import ClientId

logger = logging.getLogger("freeim.events")


class LocalEvents:
    """A queue and one task that dispatches its events one at a time, in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, ClientId, str, str]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="freeim-events")

    def put(self, kind: str, client_id: ClientId, meta: str, server: str) -> None:
        self._queue.put_nowait((kind, client_id, meta, server))

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await dispatch(*event)
            finally:
                self._queue.task_done()

    async def settled(self) -> None:
        """Wait until every event put so far was dispatched."""
        await self._queue.join()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for queued events, then stop the task."""
        try:
            await asyncio.wait_for(self.settled(), timeout)
        except TimeoutError:
            logger.warning("freeim: %d events not dispatched at shutdown", self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
